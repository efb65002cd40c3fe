"""``qfl_gym/QFL-v0``: one step is one round of quantum federated learning over the uplink.

The round itself (uplink, deliveries, training, reward, state) is
:class:`~qfl_gym.envs.federated_round.FederatedRounds`, shared with the vector env; this
module is the single-environment shell around one cell of it.

Imports torch (the learning task) at module import; ``import qfl_gym`` does not import
this module (the env is registered by a string entry point).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from qfl_gym.envs.allocation_env import AllocationEnv
from qfl_gym.envs.channel_power import allocation_image
from qfl_gym.envs.federated_round import (
    FederatedRounds,
    problem_constants,
    round_reward,
    security_info,
    single_info,
)
from qfl_gym.envs.observation import ObservationLayout, snr_feature_fn
from qfl_gym.envs.qfl_scenario import QFLScenario, qfl_scenario
from qfl_gym.wireless.channel import UplinkChannel
from qfl_gym.wireless.channel_batch import SingleCellBatch
from qfl_gym.wireless.problem import ProblemConstants
from qfl_gym.wireless.secrecy import EavesdropperChannel

__all__ = ["QFLEnv", "problem_constants", "round_reward", "security_info"]

_ONLY_CELL = np.zeros(1, dtype=np.int64)


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

    That is the default participation model, ``participation="deadline"`` (a round
    lasts the round period ``slot_s``). With ``participation="full"`` (preset
    ``case-study-full``, the reference study's setting) every device's update is
    aggregated: a device re-sends after each packet error (a geometric number of
    transmissions), its upload takes ``tau_k = N_k update_bits / r_k``, and the round
    lasts ``local_compute_s + max_k tau_k``, capped at ``max_round_s`` (an upload not
    finished by then is dropped). The allocation then decides how long rounds take,
    and agents are compared on accuracy versus (simulated) time. The round itself is
    :class:`~qfl_gym.envs.federated_round.FederatedRounds`, shared with the vector env.

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
    ``K*N+3K+2``                    full participation only: simulated time elapsed
                                    ``/ (rounds (local_compute_s + max_round_s))``,
                                    in [0, 1]
    ==============================  ===================================================

    The layout is ``env.unwrapped.observation_layout``
    (:class:`~qfl_gym.envs.observation.ObservationLayout`: named segments, per-device
    features for equivariant policies).

    Loss features are capped at 16 (a loss of ``16 ln C``; no preset gets near it).

    ## Rewards

    ``reward="loss"`` (default): the decrease of the global test loss this round,
    ``L_{t-1} - L_t`` (nats; positive when the model improves), so an episode's return
    is ``L_0 - L_R``. ``"accuracy"``: ``A_t - A_{t-1}``. ``"sum-rate"``: the round's sum
    rate in Mbit/s; ``secrecy-sum-rate``: the secrecy sum rate in Mbit/s (needs
    eavesdroppers); ``"loss-rate"``: the loss decrease per second of the round,
    ``(L_{t-1} - L_t) / round_time_s`` (nats/s; for full participation). Every mode
    subtracts ``energy_cost * sum_k E_k`` with the round's
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
    ``inf`` at rate 0; full participation: including retransmissions),
    ``packet_error_prob`` (K,), ``num_delivered``, ``round_time_s`` (this round's
    duration, s) and ``wall_time_s`` (simulated time since reset, s; also at reset).

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
    ``case-study-full`` (the reference study's setting: full participation, round-time
    objective), the security presets ``secrecy``, ``private``, ``byzantine``; the
    quantum hardware preset ``noisy-nisq``)
    or a :class:`~qfl_gym.envs.qfl_scenario.QFLScenario`; ``overrides`` set round
    settings (``rounds``, ``deadline_s``, ``reward``, ``energy_cost``, ``participation``,
    ``max_round_s``, ``local_compute_s``, ``objective``,
    ``target_accuracy``, ``waterfall_threshold_db``, ``packet_errors``,
    ``secure_upload``), uplink fields (``num_devices``, ``slot_s``, ``update_bits``,
    ``num_eavesdroppers``, ...), learning fields (``n_qubits``, ``dataset``,
    ``partition``, ``backend``, ``aggregation``, ...), privacy fields (``dp_clip_norm``,
    ``dp_noise_multiplier``, ...), poisoning fields (``attacker_fraction``,
    ``attack``, ...) or quantum-noise fields (``depolarizing_p``,
    ``amplitude_damping_gamma``, ``shots``, ``qubit_budget``); an unknown name raises
    ``TypeError`` (Python's wording) listing the valid ones. ``render_mode="ansi"`` returns a text
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

    ## Example

    >>> import gymnasium as gym
    >>> import qfl_gym
    >>> env = gym.make(
    ...     "qfl_gym/QFL-v0", num_devices=4, n_qubits=3, dataset="iris", classes=None, rounds=2
    ... )
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape  # K*N + 3K + 2 with K=4 devices on N=4 sub-channels
    (30,)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> info["delivered"].shape, info["round"]
    ((4,), 1)

    ## Version History

    * v0: initial release; ``participation``, ``round_time_s`` / ``wall_time_s`` and the
      ``loss-rate`` reward added later (defaults unchanged, same trajectories).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        scenario: str | QFLScenario = "small",
        render_mode: str | None = None,
        include_problem: bool = True,
        **overrides: Any,
    ) -> None:
        self.scenario = sc = qfl_scenario(scenario, **overrides)
        self.learning_config = sc.learning
        # ``config``: the uplink, as ChannelPower-v0's
        super().__init__(sc.uplink, render_mode, include_problem)
        self._last: dict[str, Any] | None = None

    def _build(self) -> None:
        cfg = self.config
        self.channel = UplinkChannel(cfg, features=snr_feature_fn(cfg))
        #: passive eavesdroppers (None: none configured)
        self.eavesdroppers = EavesdropperChannel(cfg) if cfg.num_eavesdroppers else None
        eve_batch = None if self.eavesdroppers is None else self.eavesdroppers.batch
        #: the federated round of this one cell
        self.rounds = FederatedRounds(self.scenario, SingleCellBatch(self.channel), eve_batch)
        self.learner = self.rounds.learners[0]

    def _make_layout(self) -> ObservationLayout:
        return self.rounds.layout

    def _make_constants(self) -> ProblemConstants:
        return self.rounds.constants

    # ------------------------------------------------------------------ API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        info = self.rounds.reset(_ONLY_CELL, [self.np_random], whole=True)[0]
        self._problem = info["problem"]
        self._last = None
        return self.rounds.observe()[0], self._info(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._problem is None:
            raise RuntimeError("QFLEnv.step: call reset() first")
        a = self.codec.validate(action)
        reward, terminated, truncated, values = self.rounds.round(a[None], _ONLY_CELL, None)
        info = single_info(values)
        self._problem = info["problem"]
        self._last = {"action": a, **info}
        obs = self.rounds.observe()[0]
        return obs, float(reward[0]), bool(terminated[0]), bool(truncated[0]), self._info(info)

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "rgb_array":
            last = None if self._last is None else self._last["action"]
            return allocation_image(self.channel.features, last, self.config)
        if self.render_mode != "ansi":
            return None
        sc = self.scenario
        r = self.rounds
        lines = [
            f"round {int(r.t[0])}/{sc.rounds}  K={sc.num_devices} "
            f"N={sc.uplink.num_subchannels}  test loss {r.global_loss[0]:.4f}  "
            f"accuracy {r.global_accuracy[0]:.3f}"
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
