"""``qfl_gym/QFL-v0`` as a native batched :class:`gymnasium.vector.VectorEnv`.

A QFL-v0 round is almost all local VQC training (~7 ms of a ~7.5 ms ``small`` round;
the uplink takes tens of microseconds), and the fast simulator already trains the
``(K, P)`` parameters of K devices in one forward/backward pass. So the vector env
trains the ``n x K`` devices of all its sub-environments as one ``(n K, P)`` batch
(:class:`~qfl_gym.learning.federated.LearnerBatch`), and runs the uplink of all
sub-environments in batched numpy (:class:`~qfl_gym.wireless.channel_batch.UplinkChannelBatch`,
NOMA/SIC rates with an environment axis).

Imports torch at module import (the learning task), as :mod:`qfl_gym.envs.qfl`;
``import qfl_gym`` and ``import qfl_gym.vector`` do not import this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, ClassVar

import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from qfl_gym.envs.action import ActionCodec
from qfl_gym.envs.observation import LOSS_FEATURE_BOUND, qfl_layout, rate_features, snr_features
from qfl_gym.envs.qfl import problem_constants, round_reward, security_info
from qfl_gym.envs.qfl_scenario import QFLScenario, qfl_scenario
from qfl_gym.learning.federated import FederatedLearner, LearnerBatch
from qfl_gym.validation import check_int
from qfl_gym.vector.uplink_base import UplinkVectorEnv
from qfl_gym.wireless import noma
from qfl_gym.wireless.channel_batch import UplinkChannelBatch
from qfl_gym.wireless.delivery import (
    draw_delivery,
    packet_error_probability,
    upload_energy_j,
    upload_latency_s,
)
from qfl_gym.wireless.problem import AllocationProblem
from qfl_gym.wireless.secrecy import EavesdropperChannel


class QFLVectorEnv(UplinkVectorEnv):
    """``num_envs`` copies of QFL-v0 whose federated rounds run as one batch.

    ## Description

    The environment of :class:`~qfl_gym.envs.qfl.QFLEnv` (same scenario arguments,
    spaces, rewards, observation layout and ``info`` keys) for ``n`` independent
    cells, each with its own devices, data shards, global model and generators.
    Create it with::

        gym.make_vec("qfl_gym/QFL-v0", num_envs=n,
                     vectorization_mode="vector_entry_point", scenario="small")

    (or ``QFLVectorEnv(n, ...)``). It is the id's default ``make_vec`` mode;
    ``vectorization_mode="sync"``/``"async"`` give gymnasium's generic vector envs of
    ``QFLEnv`` copies.

    ## What is batched

    One ``step`` is one federated round of every sub-environment:

    1. uplink, batched over the environments: the fading of all cells
       (:class:`~qfl_gym.wireless.channel_batch.UplinkChannelBatch`), SIC SINRs and
       rates, upload latencies, packet error probabilities and energies; the delivery
       draws use each sub-environment's own generator (a loop of ``n`` tiny draws), as
       do the eavesdroppers' channels (one
       :class:`~qfl_gym.wireless.secrecy.EavesdropperChannel` per sub-environment);
    2. local training of all ``n x K`` devices as one ``(n K, P)`` batch: one
       forward/backward pass of the simulator per minibatch step for every
       sub-environment (:class:`~qfl_gym.learning.training.StackedTrainer`), the
       main saving: small circuits are bound by per-op overhead, which is paid once;
    3. aggregation and test evaluation, per sub-environment (its own rule, privacy,
       attackers, shots), cheap next to training.

    Every QFL-v0 option runs on this path (DP, poisoning and robust rules, quantum
    noise channels, shots, qubit budgets, eavesdroppers and secure upload, every
    reward); PennyLane backends (``backend="default.qubit"`` ...) run too, but gain
    nothing: their simulator loops over devices anyway.

    ## Equivalence with single environments

    Sub-environment ``i`` reset with seed ``s_i`` follows the trajectory of
    ``gym.make("qfl_gym/QFL-v0").reset(seed=s_i)`` under the same actions: it keeps
    its own ``np_random`` (``gymnasium.utils.seeding.np_random(s_i)``) and draws from
    it exactly what the single environment draws, in the same order (the learner and
    delivery seeds, the channel's uniforms, the eavesdroppers' spawned stream), and
    its learner trains on minibatches drawn from its own generator. Discrete outcomes
    (deliveries, terminations, truncations, rounds) agree exactly; channel quantities
    (gains, rates, SINRs, latencies) to relative 1e-12 (the single channel runs the
    fading recursion of a block as one matrix product); the learning (parameters,
    losses, accuracies, rewards) to float rounding: bit for bit in every case
    measured (presets, single and double precision, noise channels), except the
    reported ``local_loss`` when small shards cap some sub-environments' minibatch
    size below the others' (a sum over a padded minibatch, ~1e-7 relative in single
    precision). Tests check it against ``SyncVectorEnv`` and single envs, with a
    1e-5 relative tolerance on learning quantities (bit-for-bit agreement depends on
    torch's kernels).

    ## Spaces

    ``single_action_space`` is QFL-v0's ``MultiDiscrete([N]*K + [L]*K)``, actions of
    shape ``(n, 2K)``; ``single_observation_space`` QFL-v0's ``Box`` of ``K*N + 3K + 2``
    float32 features, observations of shape ``(n, K*N + 3K + 2)``. Rewards are float64
    ``(n,)``.

    ## Autoreset

    ``autoreset_mode`` as :class:`~qfl_gym.vector.channel_power.ChannelPowerVectorEnv`
    (Gymnasium 1.x): ``NEXT_STEP`` (default) resets an ended sub-environment on the
    next ``step`` (its action ignored, reward 0, the reset observation and reset
    ``info``); ``SAME_STEP`` resets it within the step that ends it (last observation
    and info in ``info["final_obs"]`` / ``info["final_info"]``; the SB3 convention,
    :mod:`qfl_gym.vector.sb3`); ``DISABLED`` leaves it to
    ``reset(options={"reset_mask": mask})``. Episodes end by truncation after
    ``rounds`` rounds, or by termination once ``target_accuracy`` is reached (then
    sub-environments end on different steps).

    ## Info

    Batched as ``SyncVectorEnv`` batches the single env's ``info``: every key of
    :class:`~qfl_gym.envs.qfl.QFLEnv`'s ``info`` maps to an array with a leading ``n``
    axis (``problem``: an object array of
    :class:`~qfl_gym.wireless.problem.AllocationProblem`) and a boolean mask
    ``info["_key"]`` of the sub-environments that report it; a sub-environment reset
    in a step reports its reset ``info``.

    ## Seeding

    ``reset(seed=s)`` seeds sub-environment ``i`` with ``s + i``; ``reset(seed=[s_0,
    ..., s_{n-1}])`` seeds each (``None`` entries: fresh entropy). Unseeded resets
    continue each sub-environment's generator.

    ## Arguments

    ``num_envs`` (int >= 1), ``scenario`` and ``**overrides`` as for QFL-v0 (a preset
    of :data:`~qfl_gym.envs.qfl_scenario.QFL_PRESETS` or a
    :class:`~qfl_gym.envs.qfl_scenario.QFLScenario`, and flat field overrides),
    ``autoreset_mode`` (``AutoresetMode`` or its value string). ``render_mode`` must
    be None (the single env renders ``ansi`` / ``rgb_array``).

    ## Version History

    * v0: initial release.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        "render_modes": [],
    }

    def __init__(
        self,
        num_envs: int = 1,
        scenario: str | QFLScenario = "small",
        *,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        self.num_envs = n = check_int("num_envs", num_envs, low=1)
        if "max_episode_steps" in overrides:
            raise ValueError(
                "max_episode_steps is not supported by the native vector env; set the "
                f"episode length with rounds=... (got max_episode_steps="
                f"{overrides['max_episode_steps']!r})"
            )
        self.scenario = sc = qfl_scenario(scenario, **overrides)
        self._init_modes(render_mode, autoreset_mode)

        self.config = cfg = sc.uplink
        self.learning_config = sc.learning
        self.num_devices = K = cfg.num_devices
        self.num_subchannels = N = cfg.num_subchannels
        self.codec = ActionCodec(K, N, cfg.num_power_levels)
        self.single_action_space = self.codec.space()
        self.action_space = batch_space(self.single_action_space, n)
        self.observation_layout = qfl_layout(K, N)
        self.single_observation_space = self.observation_layout.space()
        self.observation_space = batch_space(self.single_observation_space, n)

        p_max_over_noise = float(cfg.power_levels_w[-1]) / float(cfg.noise_w)
        self.channel = UplinkChannelBatch(
            cfg, n, features=partial(snr_features, scale=p_max_over_noise)
        )
        self._constants = const = problem_constants(sc)
        self._noise = const.uniform_noise_w or const.noise_w
        self._levels_w = np.asarray(const.power_levels_w, dtype=np.float64)
        #: one federated learner per sub-environment
        self.learners = [
            FederatedLearner(
                sc.learning,
                K,
                privacy=sc.privacy,
                poisoning=sc.poisoning,
                quantum_noise=sc.quantum_noise,
            )
            for _ in range(n)
        ]
        self._rounds = LearnerBatch()
        #: one EavesdropperChannel per sub-environment (None: none configured)
        self.eavesdroppers = (
            [EavesdropperChannel(cfg) for _ in range(n)] if cfg.num_eavesdroppers else None
        )
        self._loss_scale = 1.0 / np.log(sc.learning.num_classes)
        self._obs_dim = K * N + 3 * K + 2
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._seeds: list[int | None] = [None] * n
        self._delivery_rngs: list[np.random.Generator | None] = [None] * n
        self._t = np.zeros(n, dtype=np.int64)
        self._staleness = np.zeros((n, K), dtype=np.int64)
        self._reported_loss = np.zeros((n, K))
        self._global_loss = np.zeros(n)
        self._global_accuracy = np.zeros(n)
        self._rate_features = np.zeros((n, K))
        self._problems = np.full(n, None, dtype=object)
        self._init_action_bounds()
        self._autoreset = np.zeros(n, dtype=bool)
        self._needs_reset = True

    # ------------------------------------------------------------------ API
    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all sub-environments (or those of ``options["reset_mask"]``).

        Parameters
        ----------
        seed : int, sequence of int or None, optional
            ``s`` seeds sub-environment ``i`` with ``s + i``; a sequence gives one seed
            (or None) per sub-environment; None keeps the current generators.
        options : dict, optional
            ``{"reset_mask": mask}`` (bool array of shape (n,)) resets only the
            sub-environments where ``mask`` is True; other keys are ignored.

        Returns
        -------
        observations : ndarray, shape (n, K*N + 3K + 2)
        info : dict
            The reset sub-environments' QFL-v0 reset ``info``, batched with masks.
        """
        idx, _ = self._rows_to_reset(seed, options)
        info = self._reset_envs(idx, whole=len(idx) == self.num_envs, info={})
        self._autoreset[idx] = False
        self._needs_reset = False
        return self._observe(), info

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One federated round of every sub-environment; see the class docstring."""
        if self._needs_reset:
            raise ValueError("call reset() before step()")
        n, K = self.num_envs, self.num_devices
        pending = self._autoreset.copy()
        if pending.any():
            if self.autoreset_mode is AutoresetMode.DISABLED:
                raise ValueError(
                    f"sub-environments {np.flatnonzero(pending).tolist()} ended; with "
                    "autoreset_mode=DISABLED call reset(options={'reset_mask': mask}) "
                    "before stepping them again"
                )
            actions = np.array(actions, copy=True)  # NEXT_STEP: those reset instead
            if actions.shape == (n, 2 * K):
                actions[pending] = 0
        a = self._validate(actions)
        active = np.flatnonzero(~pending)
        reward = np.zeros(n)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        info: dict[str, Any] = {}
        if len(active):
            info = self._round(a, active, pending, reward, terminated, truncated)
        else:
            self.channel.step(skip=pending)
        if pending.any():
            self._reset_envs(np.flatnonzero(pending), whole=not len(active), info=info)
        obs = self._observe()
        done = terminated | truncated
        if done.any() and self.autoreset_mode is AutoresetMode.SAME_STEP:
            obs, info = self._reset_same_step(done, obs, info)
            self._autoreset[:] = False
        else:
            self._autoreset = done
        return obs, reward, terminated, truncated, info

    # -------------------------------------------------------------- helpers
    def problem(self, index: int) -> AllocationProblem:
        """The next decision's :class:`AllocationProblem` of sub-environment ``index``."""
        i = check_int("index", index, low=0, high=self.num_envs - 1)
        if self._problems[i] is None:
            raise RuntimeError(f"QFLVectorEnv.problem({i}): call reset() first")
        return self._problems[i]

    # ------------------------------------------------------------ internals
    def _reset_envs(self, idx: np.ndarray, whole: bool, info: dict[str, Any]) -> dict[str, Any]:
        """Reset sub-environments ``idx`` as ``QFLEnv.reset`` does; add their reset info.

        Per sub-environment, in the single env's order: the learner and delivery
        seeds from ``np_random``, the channel (batched), the learner, the
        eavesdroppers (a spawned stream).
        """
        rows = idx.tolist()
        learner_seeds = []
        for i in rows:
            learner_seed, delivery_seed = self._rngs[i].integers(0, 2**63, size=2)
            self._delivery_rngs[i] = np.random.default_rng(int(delivery_seed))
            learner_seeds.append(int(learner_seed))
        generators = [self._rngs[i] for i in rows]
        gains = self.channel.reset(generators, None if whole else idx)
        const = self._constants
        for i, learner_seed in zip(rows, learner_seeds, strict=True):
            problem = AllocationProblem._trusted(gains[i], const)
            self._problems[i] = problem
            start = self.learners[i].reset(np.random.default_rng(learner_seed))
            self._t[i] = 0
            self._staleness[i] = 0
            self._reported_loss[i] = start["local_loss"]
            self._global_loss[i] = start["global_loss"]
            self._global_accuracy[i] = start["global_accuracy"]
            self._rate_features[i] = 0.0
            env_info = {
                "problem": problem,
                "global_loss": start["global_loss"],
                "global_accuracy": start["global_accuracy"],
                "local_loss": start["local_loss"],
                "round": 0,
            }
            if self.eavesdroppers is not None:
                env_info["eavesdropper_gains"] = self.eavesdroppers[i].reset(
                    self._rngs[i].spawn(1)[0], self.channel.positions_m[i]
                )
            security_info(self.learners[i], env_info)
            info = self._add_info(info, env_info, i)
        return info

    def _round(
        self,
        a: np.ndarray,
        active: np.ndarray,
        pending: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> dict[str, Any]:
        """One round of the ``active`` sub-environments (fills reward/terminated/truncated)."""
        sc = self.scenario
        cfg = self.config
        n, K = self.num_envs, self.num_devices
        rows = active.tolist()
        # ---- uplink, batched over the environments (pending rows computed, unused)
        channels, levels = a[:, :K], a[:, K:]
        power = self._levels_w.take(levels)
        s = power * np.take_along_axis(self.channel.gains, channels[..., None], 2)[..., 0]
        sinr = noma.sic_sinr(s, channels, self._noise, cfg.sic_residual)
        rate = noma.rates_bps(sinr, cfg.bandwidth_hz)
        sum_rate = rate.sum(axis=1)
        sinr_db = np.maximum(sinr, 1e-30)
        np.log10(sinr_db, out=sinr_db)
        sinr_db *= 10.0
        outage = rate < cfg.min_rate_bps
        eves = self.eavesdroppers
        secrecy: dict[str, np.ndarray] = {}
        if eves is not None:  # secrecy of this round (eavesdroppers' current channels)
            secrecy = {
                "eavesdropper_rate_bps": np.zeros((n, K)),
                "secrecy_rate_bps": np.zeros((n, K)),
                "secrecy_sum_rate_bps": np.zeros(n),
            }
            for i in rows:
                for key, value in eves[i].outcome(channels[i], power[i], rate[i]).items():
                    secrecy[key][i] = value
        upload_rate = secrecy["secrecy_rate_bps"] if sc.secure_upload else rate
        latency = upload_latency_s(upload_rate, cfg.update_bits)
        # the single env derives the packet error rate from the reported SINR in dB
        per = packet_error_probability(10.0 ** (sinr_db / 10.0), sc.waterfall_threshold)
        delivered = np.zeros((n, K), dtype=bool)
        for i in rows:
            delivered[i] = draw_delivery(self._delivery_rngs[i], latency[i], per[i], sc.deadline_s)
        if sc.quantum_noise.qubit_budget is not None:  # too few qubits: nothing to upload
            delivered &= np.stack([learner.capable for learner in self.learners])
        energy = upload_energy_j(power, latency, sc.deadline_s)
        # ---- learning: local training of every active env's devices as one batch
        results = self._rounds.run_round(
            [self.learners[i] for i in rows], [delivered[i] for i in rows]
        )
        new_loss = np.array([r.global_loss for r in results])
        new_acc = np.array([r.global_accuracy for r in results])
        local_loss = np.stack([r.local_loss for r in results])
        # ---- rewards and state
        reward[active] = round_reward(
            sc,
            loss_before=self._global_loss[active],
            loss_after=new_loss,
            accuracy_before=self._global_accuracy[active],
            accuracy_after=new_acc,
            sum_rate_bps=sum_rate[active],
            secrecy_sum_rate_bps=secrecy["secrecy_sum_rate_bps"][active] if secrecy else None,
            energy_j=energy[active].sum(axis=1),
        )
        got = delivered[active]
        self._t[active] += 1
        stale = self._staleness[active] + 1
        stale[got] = 0
        self._staleness[active] = stale
        reported = self._reported_loss[active]
        reported[got] = local_loss[got]
        self._reported_loss[active] = reported
        self._global_loss[active] = new_loss
        self._global_accuracy[active] = new_acc
        self._rate_features[active] = rate_features(rate[active], cfg.bandwidth_hz)
        gains = self.channel.step(skip=pending if pending.any() else None)
        const = self._constants
        for i in rows:
            self._problems[i] = AllocationProblem._trusted(gains[i], const)
        if sc.target_accuracy is not None:
            terminated[active] = new_acc >= sc.target_accuracy
        truncated[active] = self._t[active] >= sc.rounds
        # ---- info, batched as SyncVectorEnv batches QFLEnv's
        values: dict[str, Any] = {
            "rate_bps": rate,
            "sinr_db": sinr_db,
            "sum_rate_bps": sum_rate,
            "energy_j": energy,
            "outage": outage,
            **secrecy,
        }
        if eves is not None:
            moved = self.channel.positions_m if cfg.mobility else None
            eve_gains = np.zeros((n, *eves[0].shape))
            for i in rows:
                eve_gains[i] = eves[i].step(None if moved is None else moved[i])
            values["eavesdropper_gains"] = eve_gains
        per_env = [security_info(self.learners[i], {}) for i in rows]
        for key in per_env[0]:
            column = np.stack([np.asarray(d[key]) for d in per_env])
            values[key] = np.zeros((n, *column.shape[1:]), dtype=column.dtype)
            values[key][active] = column
        values.update(
            delivered=delivered,
            latency_s=latency,
            packet_error_prob=per,
            num_delivered=delivered.sum(axis=1),
            global_loss=self._global_loss.copy(),
            global_accuracy=self._global_accuracy.copy(),
            local_loss=_scatter(local_loss, active, n),
            round=self._t.copy(),
            problem=self._problems.copy(),
        )
        info: dict[str, Any] = {}
        partial_step = len(active) < n
        for key, value in values.items():
            if partial_step:  # rows of envs that reset this step: zero / None
                value = value.copy()
                value[pending] = None if value.dtype == object else 0
            info[key] = value
            info[f"_{key}"] = ~pending
        return info

    def _reset_same_step(
        self, done: np.ndarray, obs: np.ndarray, info: dict[str, Any]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """SAME_STEP autoreset of the sub-environments in ``done``."""
        info, finals = self._split_for_same_step(done, obs, info)
        info = self._reset_envs(np.flatnonzero(done), whole=bool(done.all()), info=info)
        info.update(finals)
        return self._observe(), info

    def _observe(self) -> np.ndarray:
        n, K, N = self.num_envs, self.num_devices, self.num_subchannels
        rounds = self.scenario.rounds
        scale = self._loss_scale
        obs = np.empty((n, self._obs_dim), dtype=np.float32)
        KN = K * N
        obs[:, :KN] = self.channel.features.reshape(n, KN)
        obs[:, KN : KN + K] = self._rate_features
        obs[:, KN + K] = np.minimum(self._global_loss * scale, LOSS_FEATURE_BOUND)
        obs[:, KN + K + 1 : KN + 2 * K + 1] = np.minimum(
            self._reported_loss * scale, LOSS_FEATURE_BOUND
        )
        obs[:, KN + 2 * K + 1 : KN + 3 * K + 1] = self._staleness / rounds
        obs[:, -1] = self._t / rounds
        return obs


def _scatter(rows: np.ndarray, active: np.ndarray, n: int) -> np.ndarray:
    """``rows`` (len(active), ...) placed at ``active`` of a zero array with n rows."""
    out = np.zeros((n, *rows.shape[1:]), dtype=rows.dtype)
    out[active] = rows
    return out
