"""``qfl_gym/QFL-v0``: one step is one round of quantum federated learning over the uplink.

Imports torch (the learning task) at module import; ``import qfl_gym`` does not import
this module (the env is registered by a string entry point).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, ClassVar

import numpy as np

from qfl_gym.envs.action import ActionCodec
from qfl_gym.envs.allocation_env import AllocationEnv
from qfl_gym.envs.channel_power import allocation_image
from qfl_gym.envs.observation import LOSS_FEATURE_BOUND, qfl_layout, rate_features, snr_features
from qfl_gym.envs.qfl_scenario import DELIVERIES_RATE_WEIGHT, QFLScenario, qfl_scenario
from qfl_gym.learning.federated import FederatedLearner, RoundResult
from qfl_gym.wireless.channel import UplinkChannel
from qfl_gym.wireless.delivery import (
    draw_delivery,
    packet_error_probability,
    upload_energy_j,
    upload_latency_s,
)
from qfl_gym.wireless.problem import (
    STEP_INFO_KEYS,
    AllocationProblem,
    ProblemConstants,
    uplink_outcome,
)
from qfl_gym.wireless.secrecy import EavesdropperChannel


def problem_constants(sc: QFLScenario) -> ProblemConstants:
    """Constants of QFL-v0's ``info["problem"]``: the uplink's, plus the objective.

    ``objective="deliveries"`` makes the problem's reward the expected number of updates
    delivered on time, ``sum_k [S / r_k <= T_max] exp(-m / SINR_k)``, plus 0.01 x the
    sum rate in Mbit/s as a tie-break.
    """
    const = ProblemConstants.from_config(sc.uplink)
    if sc.objective == "deliveries":
        const = dataclasses.replace(
            const,
            rate_weight=DELIVERIES_RATE_WEIGHT,
            delivery_weight=1.0,
            update_bits=float(sc.uplink.update_bits),
            deadline_s=float(sc.deadline_s),
            waterfall_m=sc.waterfall_threshold,
        )
    return const


def round_reward(
    sc: QFLScenario,
    *,
    loss_before: Any,
    loss_after: Any,
    accuracy_before: Any,
    accuracy_after: Any,
    sum_rate_bps: Any,
    secrecy_sum_rate_bps: Any,
    energy_j: Any,
) -> Any:
    """QFL-v0's reward of one round (scalars, or arrays with an environment axis).

    ``sc.reward``: "loss" (decrease of the global test loss), "accuracy" (increase of
    the global test accuracy), "sum-rate" / "secrecy-sum-rate" (Mbit/s); minus
    ``sc.energy_cost`` x the round's upload energy ``energy_j`` (J, summed over devices).
    ``secrecy_sum_rate_bps`` may be None unless the reward is "secrecy-sum-rate".
    """
    mode = sc.reward
    if mode == "loss":
        value = loss_before - loss_after
    elif mode == "accuracy":
        value = accuracy_after - accuracy_before
    elif mode == "secrecy-sum-rate":
        value = secrecy_sum_rate_bps * 1e-6
    else:
        value = sum_rate_bps * 1e-6
    if sc.energy_cost:
        value = value - sc.energy_cost * energy_j
    return value


def security_info(learner: FederatedLearner, info: dict[str, Any]) -> dict[str, Any]:
    """Add the DP and attacker keys of ``learner`` to ``info`` (only when configured)."""
    if learner.dp is not None:
        info["dp_epsilon"] = learner.dp_epsilon
        info["dp_epsilon_per_device"] = learner.dp_epsilon_per_device
    if learner.num_attackers:
        info["malicious"] = learner.malicious.copy()
    return info


class QFLEnv(AllocationEnv):
    r"""Allocate sub-channels and transmit powers so federated VQC training converges fast.

    ## Description

    ``K`` quantum edge devices each hold a private shard of a scikit-learn dataset and
    train a variational quantum circuit (angle embedding, StronglyEntanglingLayers,
    ``<Z>`` readout, cross-entropy; :mod:`qfl_gym.learning.model`). One step is one
    federated round:

    1. the agent assigns every device a sub-channel and a transmit-power level (the
       action, as in ``ChannelPower-v0``);
    2. the base station broadcasts the global model; every device trains ``E`` local
       epochs (minibatch Adam/SGD) on its shard;
    3. each device uploads its update of ``update_bits`` bits over the NOMA uplink
       (rates from SIC decoding, :mod:`qfl_gym.wireless.noma`); the update arrives if
       the upload time ``update_bits / r_k`` is within ``deadline_s`` and the packet is
       not lost, with packet error probability ``q_k = 1 - exp(-m / SINR_k)`` (Chen et
       al., IEEE TWC 2021; :mod:`qfl_gym.wireless.delivery`);
    4. the base station aggregates the delivered updates with FedAvg (weights = sample
       counts; nothing delivered: the model stays) and evaluates the global model on
       the held-out test set.

    The channel then fades to the next round (Gauss-Markov with Jakes' correlation over
    the round period ``slot_s``).

    ## Action Space

    ``MultiDiscrete([N]*K + [L]*K)``, as ``ChannelPower-v0``: entries ``0..K-1`` are each
    device's sub-channel, ``K..2K-1`` each device's power-level index (ascending power).
    ``encode_action`` / ``decode_action`` convert; invalid actions raise ``ValueError``.

    ## Observation Space

    ``Box(low, high, (K*N + 3K + 2,), float32)``:

    ==============================  ===================================================
    index                           meaning
    ==============================  ===================================================
    ``0 .. K*N-1``                  full-power SNR of device k on sub-channel n for the
                                    next round, ``(SNR_dB - 20) / 20``, in [-16, 16]
    ``K*N .. K*N+K-1``              each device's rate in the previous round,
                                    ``r_k / B / 10`` in [0, 12] (0 after reset)
    ``K*N+K``                       global test loss ``/ ln C`` in [0, 16] (1 = uniform
                                    guess over C classes)
    ``K*N+K+1 .. K*N+2K``           each device's latest *reported* local training loss
                                    ``/ ln C`` in [0, 16]: updated when its update
                                    arrives (reset: the initial model's loss on its
                                    shard)
    ``K*N+2K+1 .. K*N+3K``          rounds since each device's update last arrived,
                                    ``/ rounds``, in [0, 1] (0 after reset)
    ``K*N+3K+1``                    elapsed fraction of the episode, ``t / rounds``
    ==============================  ===================================================

    Loss features are capped at 16 (a loss of ``16 ln C``; no preset gets near it).

    ## Rewards

    ``reward="loss"`` (default): the decrease of the global test loss this round,
    ``L_{t-1} - L_t`` (nats; positive when the model improves), so an episode's return
    is ``L_0 - L_R``. ``"accuracy"``: ``A_t - A_{t-1}``. ``"sum-rate"``: the round's sum
    rate in Mbit/s; ``secrecy-sum-rate``: the secrecy sum rate in Mbit/s (needs
    eavesdroppers). Every mode subtracts ``energy_cost * sum_k E_k`` with the round's
    transmit energy ``E_k = p_k min(latency_k, deadline_s)`` (J; ``energy_cost`` 0 by
    default).

    ## Starting State

    Devices are dropped and fading is drawn as in ``ChannelPower-v0``; the dataset is
    split into train/test sets, the training set partitioned over the devices (IID or
    Dirichlet label skew) and the global model initialized, all from the reset seed
    (or from ``data_seed`` when set, which fixes split, partition and initial model).

    ## Episode End

    Truncation after ``rounds`` rounds (30 by default). With ``target_accuracy`` set,
    termination once the global test accuracy reaches it.

    ## Info

    Reset and step: ``problem`` (an
    :class:`~qfl_gym.wireless.problem.AllocationProblem` for the *next* round's
    decision, as in ``ChannelPower-v0``), ``global_loss``, ``global_accuracy``,
    ``local_loss`` (K,; reset: the initial model's loss on each shard), ``round``.
    After a step also: ``rate_bps`` (K,), ``sinr_db`` (K,), ``sum_rate_bps``,
    ``energy_j`` (K,; ``p_k min(latency_k, deadline_s)``), ``outage`` (K,; rate below
    ``min_rate_bps``), ``delivered`` (K,) bool, ``latency_s`` (K,; upload time,
    ``inf`` at rate 0), ``packet_error_prob`` (K,), ``num_delivered``.

    Security options add keys (absent when the option is off):

    - eavesdroppers (uplink ``num_eavesdroppers`` / ``eavesdropper_positions_m``): reset
      and step ``eavesdropper_gains`` (E, K, N) for the next round; after a step
      ``eavesdropper_rate_bps`` (K,, strongest eavesdropper), ``secrecy_rate_bps`` (K,,
      ``[r_k - r_k,eve]^+``), ``secrecy_sum_rate_bps``. With ``secure_upload=True`` the
      upload time is ``update_bits / secrecy_rate`` (``latency_s``; ``inf`` at secrecy
      rate 0), so an update arrives only if it can be sent securely in time;
    - DP (``dp_clip_norm``): ``dp_epsilon`` (largest device-level epsilon at
      ``dp_delta`` so far) and ``dp_epsilon_per_device`` (K,);
    - attackers (``attacker_fraction`` / ``attackers``): ``malicious`` (K,) bool.

    ## Arguments

    ``gym.make("qfl_gym/QFL-v0", scenario="small", **overrides)``: ``scenario`` is a
    preset of :data:`qfl_gym.envs.qfl_scenario.QFL_PRESETS` (``small``, ``case-study``,
    and the security presets ``secrecy``, ``private``, ``byzantine``; the quantum
    hardware preset ``noisy-nisq``)
    or a :class:`~qfl_gym.envs.qfl_scenario.QFLScenario`; ``overrides`` set round
    settings (``rounds``, ``deadline_s``, ``reward``, ``energy_cost``,
    ``target_accuracy``, ``waterfall_threshold_db``, ``packet_errors``,
    ``secure_upload``), uplink fields (``num_devices``, ``slot_s``, ``update_bits``,
    ``num_eavesdroppers``, ...), learning fields (``n_qubits``, ``dataset``,
    ``partition``, ``backend``, ``aggregation``, ...), privacy fields (``dp_clip_norm``,
    ``dp_noise_multiplier``, ...), poisoning fields (``attacker_fraction``,
    ``attack``, ...) or quantum-noise fields (``depolarizing_p``,
    ``amplitude_damping_gamma``, ``shots``, ``qubit_budget``); unknown names raise
    ``ValueError`` listing the valid ones. ``render_mode="ansi"`` returns a text
    summary of the last round (per device: sub-channel, power, rate, latency, delivered,
    local loss); ``"rgb_array"`` the channel/assignment image of ``ChannelPower-v0``.

    ## Quantum noise and hardware limits

    ``quantum_noise`` (:class:`~qfl_gym.learning.noise.QuantumNoiseConfig`; preset
    ``noisy-nisq``): depolarizing / amplitude-damping channels after every gate layer
    of the VQC (training and evaluation then run the batched density-matrix simulator,
    :mod:`qfl_gym.learning.density`), ``shots`` measurements per test sample for the
    global loss and accuracy (the ``loss``/``accuracy`` rewards carry shot noise), and
    ``qubit_budget``: devices with fewer qubits than ``n_qubits``
    (``env.unwrapped.learner.capable`` False) never deliver an update (``delivered``
    False; their assigned sub-channel and power still count on the uplink). The
    channel realizations do not depend on these options.

    ## Version History

    * v0: initial release.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        scenario: str | QFLScenario = "small",
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        self.scenario = sc = qfl_scenario(scenario, **overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"unknown render_mode {render_mode!r}; valid: None, "
                f"{', '.join(map(repr, self.metadata['render_modes']))}"
            )
        self.render_mode = render_mode
        self.config = cfg = sc.uplink  # the uplink, as ChannelPower-v0's ``config``
        self.learning_config = sc.learning
        K, N, L = cfg.num_devices, cfg.num_subchannels, cfg.num_power_levels
        self.codec = ActionCodec(K, N, L)
        self.action_space = self.codec.space()
        self.observation_layout = qfl_layout(K, N)
        self.observation_space = self.observation_layout.space()
        p_max_over_noise = float(cfg.power_levels_w[-1]) / float(cfg.noise_w)
        self.channel = UplinkChannel(cfg, features=partial(snr_features, scale=p_max_over_noise))
        self._constants = problem_constants(sc)
        self._problem: AllocationProblem | None = None
        self.learner = FederatedLearner(
            sc.learning,
            K,
            privacy=sc.privacy,
            poisoning=sc.poisoning,
            quantum_noise=sc.quantum_noise,
        )
        # passive eavesdroppers (None: none configured)
        self.eavesdroppers = EavesdropperChannel(cfg) if cfg.num_eavesdroppers else None
        self._loss_scale = 1.0 / np.log(sc.learning.num_classes)
        # observation layout (slices, not views: views would not survive pickling)
        self._obs = np.zeros(K * N + 3 * K + 2, dtype=np.float32)
        self._sl_gains = slice(0, K * N)
        self._sl_rates = slice(K * N, K * N + K)
        self._i_global = K * N + K
        self._sl_local = slice(K * N + K + 1, K * N + 2 * K + 1)
        self._sl_stale = slice(K * N + 2 * K + 1, K * N + 3 * K + 1)
        self._t = 0
        self._staleness = np.zeros(K, dtype=np.int64)
        self._reported_loss = np.zeros(K)
        self._global_loss = 0.0
        self._global_accuracy = 0.0
        self._last: dict[str, Any] | None = None

    # ------------------------------------------------------------------ API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        learner_seed, delivery_seed = self.np_random.integers(0, 2**63, size=2)
        self._delivery_rng = np.random.default_rng(int(delivery_seed))
        gains = self.channel.reset(self.np_random)
        self._set_problem(gains)
        start = self.learner.reset(np.random.default_rng(int(learner_seed)))
        self._t = 0
        self._staleness[:] = 0
        self._reported_loss = start["local_loss"].copy()
        self._global_loss = start["global_loss"]
        self._global_accuracy = start["global_accuracy"]
        self._obs[self._sl_rates] = 0.0
        self._last = None
        info = {
            "problem": self._problem,
            "global_loss": self._global_loss,
            "global_accuracy": self._global_accuracy,
            "local_loss": start["local_loss"],
            "round": 0,
        }
        if self.eavesdroppers is not None:
            # own stream, spawned: draws nothing from np_random (same legitimate channel)
            info["eavesdropper_gains"] = self.eavesdroppers.reset(
                self.np_random.spawn(1)[0], self.channel.positions_m
            )
        security_info(self.learner, info)
        return self._observation(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = self.codec.validate(action)
        sc = self.scenario
        K = sc.num_devices
        channels, levels = a[:K], a[K:]
        out = uplink_outcome(self._problem.gains, channels, levels, self._constants)
        info = {key: out[key] for key in STEP_INFO_KEYS}
        eve = self.eavesdroppers
        if eve is not None:  # secrecy of this round (eavesdroppers' current channels)
            power = self._constants.power_levels_w.take(levels)
            info.update(eve.outcome(channels, power, info["rate_bps"]))
        # uplink: upload time, packet errors, delivery
        upload_rate = info["secrecy_rate_bps"] if sc.secure_upload else info["rate_bps"]
        latency = upload_latency_s(upload_rate, sc.uplink.update_bits)
        sinr = 10.0 ** (info["sinr_db"] / 10.0)
        per = packet_error_probability(sinr, sc.waterfall_threshold)
        delivered = draw_delivery(self._delivery_rng, latency, per, sc.deadline_s)
        if sc.quantum_noise.qubit_budget is not None:  # too few qubits: nothing to upload
            delivered &= self.learner.capable
        energy = upload_energy_j(
            self._constants.power_levels_w.take(levels), latency, sc.deadline_s
        )
        # learning: local training on every device, FedAvg over the delivered updates
        result: RoundResult = self.learner.run_round(delivered)
        reward = float(
            round_reward(
                sc,
                loss_before=self._global_loss,
                loss_after=result.global_loss,
                accuracy_before=self._global_accuracy,
                accuracy_after=result.global_accuracy,
                sum_rate_bps=info["sum_rate_bps"],
                secrecy_sum_rate_bps=info.get("secrecy_sum_rate_bps"),
                energy_j=float(energy.sum()),
            )
        )
        self._t += 1
        self._staleness += 1
        self._staleness[delivered] = 0
        self._reported_loss[delivered] = result.local_loss[delivered]
        self._global_loss, self._global_accuracy = result.global_loss, result.global_accuracy
        self._obs[self._sl_rates] = rate_features(info["rate_bps"], sc.uplink.bandwidth_hz)
        self._set_problem(self.channel.step())
        if eve is not None:
            moved = self.channel.positions_m if self.config.mobility else None
            info["eavesdropper_gains"] = eve.step(moved)
        security_info(self.learner, info)
        info.update(
            energy_j=energy,
            delivered=delivered,
            latency_s=latency,
            packet_error_prob=per,
            num_delivered=int(delivered.sum()),
            global_loss=result.global_loss,
            global_accuracy=result.global_accuracy,
            local_loss=result.local_loss,
            round=self._t,
            problem=self._problem,
        )
        self._last = {"action": a, **info}
        terminated = sc.target_accuracy is not None and result.global_accuracy >= sc.target_accuracy
        truncated = self._t >= sc.rounds
        return self._observation(), reward, bool(terminated), truncated, info

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "rgb_array":
            last = None if self._last is None else self._last["action"]
            return allocation_image(self.channel.features, last, self.config)
        if self.render_mode != "ansi":
            return None
        sc = self.scenario
        lines = [
            f"round {self._t}/{sc.rounds}  K={sc.num_devices} N={sc.uplink.num_subchannels}  "
            f"test loss {self._global_loss:.4f}  accuracy {self._global_accuracy:.3f}"
        ]
        if self._last is None:
            lines.append("(no round yet)")
            return "\n".join(lines)
        ch, lv = self.decode_action(self._last["action"])
        for k in range(sc.num_devices):
            lines.append(
                f"device {k:>3}: sub-channel {ch[k]} @ {sc.uplink.levels_dbm[lv[k]]:5.1f} dBm  "
                f"rate {self._last['rate_bps'][k] / 1e6:7.3f} Mbit/s  "
                f"latency {self._last['latency_s'][k]:9.4f} s  "
                f"{'delivered' if self._last['delivered'][k] else 'lost':>9}  "
                f"local loss {self._last['local_loss'][k]:.4f}"
            )
        return "\n".join(lines)

    # ------------------------------------------------------------ internals
    def _observation(self) -> np.ndarray:
        sc = self.scenario
        obs = self._obs
        obs[self._sl_gains] = self.channel.features.ravel()
        scale = self._loss_scale
        obs[self._i_global] = min(self._global_loss * scale, LOSS_FEATURE_BOUND)
        obs[self._sl_local] = np.minimum(self._reported_loss * scale, LOSS_FEATURE_BOUND)
        obs[self._sl_stale] = self._staleness / sc.rounds
        obs[-1] = self._t / sc.rounds
        return obs.copy()
