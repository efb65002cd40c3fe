"""``qfl_gym/QFL-v0`` as a native batched :class:`gymnasium.vector.VectorEnv`.

A QFL-v0 round is almost all local VQC training (the uplink is a small fraction of
it; figures on the docs' benchmarks page), and the fast simulator already trains the
``(K, P)`` parameters of K devices in one forward/backward pass. So the vector env
trains the ``n x K`` devices of all its sub-environments as one ``(n K, P)`` batch
(:class:`~qfl_gym.learning.federated.LearnerBatch`), and runs the uplink of all
sub-environments in batched numpy (:class:`~qfl_gym.wireless.channel_batch.UplinkChannelBatch`,
NOMA/SIC rates with an environment axis).

Imports torch at module import (the learning task), as :mod:`qfl_gym.envs.qfl`;
``import qfl_gym`` and ``import qfl_gym.vector`` do not import this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from qfl_gym.envs.federated_round import FederatedRounds
from qfl_gym.envs.observation import ObservationLayout, snr_feature_fn
from qfl_gym.envs.qfl_scenario import QFLScenario, qfl_scenario
from qfl_gym.validation import check_bool, check_int
from qfl_gym.vector.uplink_base import UplinkVectorEnv, reject_max_episode_steps
from qfl_gym.wireless.channel_batch import UplinkChannelBatch
from qfl_gym.wireless.problem import AllocationProblem, ProblemConstants


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
       rates, upload latencies, packet error probabilities and energies, and the
       eavesdroppers' channels and secrecy rates
       (:class:`~qfl_gym.wireless.secrecy.EavesdropperChannelBatch`); the delivery draws
       use each sub-environment's own generator (a loop of ``n`` tiny draws);
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
    ``autoreset_mode`` (``AutoresetMode`` or its value string), ``include_problem``
    (bool, default True; False leaves ``problem`` out of ``info``, for tools that
    batch only arrays, ``problem(i)`` still works). ``render_mode`` must be None (the
    single env renders ``ansi`` / ``rgb_array``).

    The round is :class:`~qfl_gym.envs.federated_round.FederatedRounds`, the same code
    that runs the single env (as its one-cell case).

    ## Example

    >>> import gymnasium as gym
    >>> import qfl_gym
    >>> envs = gym.make_vec(
    ...     "qfl_gym/QFL-v0", num_envs=2, num_devices=4, n_qubits=3, dataset="iris",
    ...     classes=None, rounds=2,
    ... )
    >>> type(envs).__name__
    'QFLVectorEnv'
    >>> obs, info = envs.reset(seed=0)
    >>> obs.shape
    (2, 30)
    >>> obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())
    >>> info["num_delivered"].shape
    (2,)

    ## Version History

    * v0: initial release.
    """

    def __init__(
        self,
        num_envs: int = 1,
        scenario: str | QFLScenario = "small",
        *,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        include_problem: bool = True,
        **overrides: Any,
    ) -> None:
        reject_max_episode_steps(overrides, "rounds")
        self.include_problem = check_bool("include_problem", include_problem)
        self.scenario = sc = qfl_scenario(scenario, **overrides)
        self.learning_config = sc.learning
        super().__init__(num_envs, sc.uplink, render_mode, autoreset_mode)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)

    def _build(self) -> None:
        cfg = self.config
        self.channel = UplinkChannelBatch(cfg, self.num_envs, features=snr_feature_fn(cfg))
        #: the federated rounds of every sub-environment, run as one batch
        self.rounds = FederatedRounds(self.scenario, self.channel)
        #: one federated learner per sub-environment
        self.learners = self.rounds.learners
        #: every sub-environment's eavesdroppers (None: none configured)
        self.eavesdroppers = self.rounds.eavesdroppers

    def _make_layout(self) -> ObservationLayout:
        return self.rounds.layout

    def _make_constants(self) -> ProblemConstants:
        return self.rounds.constants

    # ------------------------------------------------------------------ API
    def _reset_selected(self, idx: np.ndarray, masked: bool) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset sub-environments ``idx``; info: their QFL-v0 reset ``info``, batched."""
        info = self._reset_envs(idx, whole=len(idx) == self.num_envs, info={})
        self._autoreset[idx] = False
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
        info: dict[str, Any] = {}
        if len(active):
            skip = pending if pending.any() else None
            reward, terminated, truncated, values = self.rounds.round(a, active, skip)
            info = self._batch_info(values, pending)
        else:
            reward = np.zeros(n)
            terminated = np.zeros(n, dtype=bool)
            truncated = np.zeros(n, dtype=bool)
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
        if self.rounds.problems[i] is None:
            raise RuntimeError(f"QFLVectorEnv.problem({i}): call reset() first")
        return self.rounds.problems[i]

    # ------------------------------------------------------------ internals
    def _reset_envs(self, idx: np.ndarray, whole: bool, info: dict[str, Any]) -> dict[str, Any]:
        """Reset sub-environments ``idx`` as ``QFLEnv.reset`` does; add their reset info."""
        infos = self.rounds.reset(idx, [self._rngs[i] for i in idx.tolist()], whole)
        for i, env_info in zip(idx.tolist(), infos, strict=True):
            if not self.include_problem:
                env_info.pop("problem")
            info = self._add_info(info, env_info, i)
        return info

    def _batch_info(self, values: dict[str, Any], pending: np.ndarray) -> dict[str, Any]:
        """The round's ``info``, batched as SyncVectorEnv batches QFLEnv's (rows of
        sub-environments that reset this step: zero / None, masked out)."""
        info: dict[str, Any] = {}
        partial_step = bool(pending.any())
        if not self.include_problem:
            values.pop("problem")
        for key, value in values.items():
            if partial_step:
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
        return self.rounds.observe()
