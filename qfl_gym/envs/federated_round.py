r"""QFL-v0's federated round, written once for ``n`` cells.

:class:`FederatedRounds` is the whole system QFL-v0 wraps, for ``n`` independent cells
at once: their uplink channels, eavesdroppers, federated learners and round state. A
round is a fixed sequence of array operations over a leading cell axis:

1. the uplink outcome of every cell's allocation (SIC rates, SINRs, energies, the
   objective: :func:`~qfl_gym.wireless.problem.uplink_outcome`), and the secrecy rates
   when eavesdroppers listen;
2. who is heard and how long the round lasts (:func:`round_uploads`), under the
   scenario's participation model:

   - ``participation="deadline"``: an update arrives if its upload time
     ``update_bits / r_k`` is within ``deadline_s`` and its packet is not lost
     (probability :math:`q_k = 1 - e^{-m/\mathrm{SINR}_k}`); the round lasts the round
     period ``slot_s``;
   - ``participation="full"``: every device uploads until its packet arrives (a
     geometric number of transmissions, success probability :math:`1 - q_k`), taking
     :math:`\tau_k = N_k \, S / r_k`; the round lasts ``local_compute_s`` plus the
     slowest upload, at most ``max_round_s``, and an upload not finished by then is
     dropped;

3. local training of every device of every cell as one batch and FedAvg of the updates
   that arrived (:class:`~qfl_gym.learning.federated.LearnerBatch`);
4. the reward (:func:`round_reward`), the state update (staleness, reported losses,
   elapsed time) and the channels' next realization.

:class:`~qfl_gym.envs.qfl.QFLEnv` is the ``n = 1`` case (its channel seen as a batch of
one, :class:`~qfl_gym.wireless.channel_batch.SingleCellBatch`);
:class:`~qfl_gym.vector.qfl.QFLVectorEnv` adds automatic resets and batched ``info``.

Imports torch (the learning task) at module import.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qfl_gym.envs.observation import (
    LOSS_FEATURE_BOUND,
    ObservationLayout,
    qfl_layout,
    rate_features,
)
from qfl_gym.envs.qfl_scenario import QFLScenario
from qfl_gym.learning.federated import FederatedLearner, LearnerBatch
from qfl_gym.wireless.delivery import (
    draw_attempts,
    draw_delivery,
    packet_error_probability,
    upload_energy_j,
    upload_latency_s,
)
from qfl_gym.wireless.problem import (
    STEP_INFO_KEYS,
    AllocationProblem,
    ProblemConstants,
    objective_constants,
    uplink_outcome,
)
from qfl_gym.wireless.secrecy import EavesdropperChannelBatch

#: ``info`` values that are scalars in the single env (Python floats or ints there)
SCALAR_INFO = {
    "sum_rate_bps": float,
    "secrecy_sum_rate_bps": float,
    "num_delivered": int,
    "global_loss": float,
    "global_accuracy": float,
    "round": int,
    "round_time_s": float,
    "wall_time_s": float,
    "dp_epsilon": float,
}


def problem_constants(sc: QFLScenario) -> ProblemConstants:
    """Constants of QFL-v0's ``info["problem"]``: the uplink's, plus ``sc.objective``.

    The objective (:func:`~qfl_gym.wireless.problem.objective_constants`) with QFL-v0's
    round deadline and waterfall threshold (``deliveries``: expected updates delivered
    on time, ``sum_k [S / r_k <= T_max] exp(-m / SINR_k)``, plus 0.01 x the sum rate in
    Mbit/s as a tie-break).
    """
    return objective_constants(
        sc.objective, sc.uplink, deadline_s=sc.deadline_s, waterfall_m=sc.waterfall_threshold
    )


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
    round_time_s: Any,
) -> Any:
    """QFL-v0's reward of one round (arrays with a cell axis, or scalars).

    ``sc.reward``: "loss" (decrease of the global test loss, nats), "loss-rate" (that
    decrease per second of the round, nats/s), "accuracy" (increase of the global test
    accuracy), "sum-rate" / "secrecy-sum-rate" (Mbit/s); minus ``sc.energy_cost`` x the
    round's upload energy ``energy_j`` (J, summed over devices).
    ``secrecy_sum_rate_bps`` may be None unless the reward is "secrecy-sum-rate".
    """
    mode = sc.reward
    if mode == "loss":
        value = loss_before - loss_after
    elif mode == "loss-rate":
        value = (loss_before - loss_after) / round_time_s
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


def round_uploads(
    sc: QFLScenario,
    rngs: list[np.random.Generator],
    rows: list[int],
    upload_rate_bps: np.ndarray,
    sinr_db: np.ndarray,
    power_w: np.ndarray,
) -> dict[str, np.ndarray]:
    """Who is heard this round, and how long it lasts, for every cell (n, K arrays).

    Each cell in ``rows`` draws K uniforms from its own delivery generator ``rngs[i]``
    (whatever the outcome, so trajectories stay aligned across allocations); other
    rows are computed but meaningless.

    Returns
    -------
    dict
        ``delivered`` (n, K) bool, ``latency_s`` (n, K) upload time (s; ``inf`` at rate
        0; full participation: including retransmissions), ``packet_error_prob``
        (n, K), ``energy_j`` (n, K; ``p_k`` times the upload time, at most the deadline
        or the round cap) and ``round_time_s`` (n,).
    """
    update_bits = sc.uplink.update_bits
    # from the reported SINR in dB, as every env always has
    per = packet_error_probability(10.0 ** (sinr_db / 10.0), sc.waterfall_threshold)
    n, K = per.shape
    latency = upload_latency_s(upload_rate_bps, update_bits)
    if sc.participation == "full":
        attempts = np.ones((n, K))
        for i in rows:
            attempts[i] = draw_attempts(rngs[i], per[i])
        with np.errstate(invalid="ignore"):  # inf x 0 cannot occur: attempts >= 1
            latency = latency * attempts
        delivered = latency <= sc.max_round_s
        slowest = np.minimum(latency.max(axis=1), sc.max_round_s)
        round_time = sc.local_compute_s + slowest
        energy = upload_energy_j(power_w, latency, sc.max_round_s)
    else:
        delivered = np.zeros((n, K), dtype=bool)
        for i in rows:
            delivered[i] = draw_delivery(rngs[i], latency[i], per[i], sc.deadline_s)
        round_time = np.full(n, float(sc.uplink.slot_s))
        energy = upload_energy_j(power_w, latency, sc.deadline_s)
    return {
        "delivered": delivered,
        "latency_s": latency,
        "packet_error_prob": per,
        "energy_j": energy,
        "round_time_s": round_time,
    }


class FederatedRounds:
    """The QFL-v0 system of ``n`` cells and its federated round.

    Parameters
    ----------
    scenario : QFLScenario
        Uplink, learning task and round settings, shared by every cell.
    channel : UplinkChannelBatch or SingleCellBatch
        The cells' channels (``gains`` (n, K, N), ``features``, ``positions_m``,
        ``reset(generators, indices)``, ``step(skip)``).
    eavesdroppers : EavesdropperChannelBatch, optional
        The cells' eavesdroppers when the uplink has some (default: a new batch).

    Attributes
    ----------
    layout : ObservationLayout
        QFL-v0's observation layout (with the ``wall_time`` segment under full
        participation).
    learners : list of FederatedLearner
        One per cell.
    problems : ndarray of object, shape (n,)
        Every cell's :class:`AllocationProblem` for the next round.
    """

    def __init__(
        self,
        scenario: QFLScenario,
        channel: Any,
        eavesdroppers: EavesdropperChannelBatch | None = None,
    ) -> None:
        self.scenario = sc = scenario
        self.channel = channel
        self.num_envs = n = channel.num_envs
        cfg = sc.uplink
        self.num_devices = K = cfg.num_devices
        self.layout: ObservationLayout = qfl_layout(
            K, cfg.num_subchannels, wall_time=sc.participation == "full"
        )
        self.constants = problem_constants(sc)
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
        self._batch = LearnerBatch()
        #: every cell's eavesdroppers (None: none configured)
        self.eavesdroppers = None
        if cfg.num_eavesdroppers:
            self.eavesdroppers = eavesdroppers or EavesdropperChannelBatch(cfg, n)
        self._moving = bool(cfg.mobility) and cfg.speed_mps > 0.0
        self._loss_scale = 1.0 / np.log(sc.learning.num_classes)
        self._time_scale = 1.0 / (sc.rounds * (sc.local_compute_s + sc.max_round_s))
        self._delivery_rngs: list[np.random.Generator | None] = [None] * n
        self.t = np.zeros(n, dtype=np.int64)
        self.staleness = np.zeros((n, K), dtype=np.int64)
        self.reported_loss = np.zeros((n, K))
        self.global_loss = np.zeros(n)
        self.global_accuracy = np.zeros(n)
        self.wall_time_s = np.zeros(n)
        self.rate_features = np.zeros((n, K))
        self.problems = np.full(n, None, dtype=object)

    # ------------------------------------------------------------------ reset
    def reset(
        self, rows: np.ndarray, generators: list[np.random.Generator], whole: bool
    ) -> list[dict[str, Any]]:
        """Reset cells ``rows`` from their generators; return each one's reset ``info``.

        Per cell, in this order: the learner and delivery seeds from its generator, its
        channel (batched), its learner, its eavesdroppers (a spawned stream).
        """
        rows_l = rows.tolist()
        learner_seeds = []
        for i, rng in zip(rows_l, generators, strict=True):
            learner_seed, delivery_seed = rng.integers(0, 2**63, size=2)
            self._delivery_rngs[i] = np.random.default_rng(int(delivery_seed))
            learner_seeds.append(int(learner_seed))
        gains = self.channel.reset(generators, None if whole else rows)
        eve_gains = None
        if self.eavesdroppers is not None:  # own streams, spawned: draw nothing from rng
            eve_gains = self.eavesdroppers.reset(
                [rng.spawn(1)[0] for rng in generators],
                self.channel.positions_m,
                None if whole else rows,
            )
        infos = []
        for i, learner_seed in zip(rows_l, learner_seeds, strict=True):
            problem = AllocationProblem._trusted(gains[i], self.constants)
            self.problems[i] = problem
            start = self.learners[i].reset(np.random.default_rng(learner_seed))
            self.t[i] = 0
            self.staleness[i] = 0
            self.reported_loss[i] = start["local_loss"]
            self.global_loss[i] = start["global_loss"]
            self.global_accuracy[i] = start["global_accuracy"]
            self.wall_time_s[i] = 0.0
            self.rate_features[i] = 0.0
            info = {
                "problem": problem,
                "global_loss": start["global_loss"],
                "global_accuracy": start["global_accuracy"],
                "local_loss": start["local_loss"],
                "round": 0,
                "wall_time_s": 0.0,
            }
            if eve_gains is not None:
                info["eavesdropper_gains"] = eve_gains[i]
            infos.append(security_info(self.learners[i], info))
        return infos

    # ------------------------------------------------------------------ round
    def round(
        self, actions: np.ndarray, active: np.ndarray, skip: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """One federated round of the cells ``active`` under validated ``actions`` (n, 2K).

        ``skip`` (bool, (n,)) marks cells about to be reset instead (their channel
        draws nothing). Returns ``(reward, terminated, truncated, values)``: (n,)
        arrays (zero for inactive cells) and every ``info`` value with a leading cell
        axis (rows of inactive cells meaningless).
        """
        sc = self.scenario
        n, K = self.num_envs, self.num_devices
        rows = active.tolist()
        channels, levels = actions[:, :K], actions[:, K:]
        # ---- uplink
        out = uplink_outcome(self.channel.gains, channels, levels, self.constants)
        values: dict[str, Any] = {key: out[key] for key in STEP_INFO_KEYS}
        rate = out["rate_bps"]
        secrecy: dict[str, np.ndarray] = {}
        eves = self.eavesdroppers
        if eves is not None:  # secrecy of this round (eavesdroppers' current channels)
            secrecy = eves.outcome(channels, out["power_w"], rate)
            values.update(secrecy)
        upload_rate = secrecy["secrecy_rate_bps"] if sc.secure_upload else rate
        uploads = round_uploads(
            sc, self._delivery_rngs, rows, upload_rate, out["sinr_db"], out["power_w"]
        )
        delivered = uploads["delivered"]
        if sc.quantum_noise.qubit_budget is not None:  # too few qubits: nothing to upload
            delivered &= np.stack([learner.capable for learner in self.learners])
        values.update(uploads)
        # ---- learning: local training of every active cell's devices as one batch
        results = self._batch.run_round(
            [self.learners[i] for i in rows], [delivered[i] for i in rows]
        )
        new_loss = np.array([r.global_loss for r in results])
        new_acc = np.array([r.global_accuracy for r in results])
        local_loss = np.zeros((n, K))
        local_loss[active] = np.stack([r.local_loss for r in results])
        # ---- reward and state
        reward = np.zeros(n)
        round_time = uploads["round_time_s"]
        reward[active] = round_reward(
            sc,
            loss_before=self.global_loss[active],
            loss_after=new_loss,
            accuracy_before=self.global_accuracy[active],
            accuracy_after=new_acc,
            sum_rate_bps=out["sum_rate_bps"][active],
            secrecy_sum_rate_bps=secrecy["secrecy_sum_rate_bps"][active] if secrecy else None,
            energy_j=uploads["energy_j"][active].sum(axis=1),
            round_time_s=round_time[active],
        )
        got = delivered[active]
        self.t[active] += 1
        stale = self.staleness[active] + 1
        stale[got] = 0
        self.staleness[active] = stale
        reported = self.reported_loss[active]
        reported[got] = local_loss[active][got]
        self.reported_loss[active] = reported
        self.global_loss[active] = new_loss
        self.global_accuracy[active] = new_acc
        self.wall_time_s[active] += round_time[active]
        self.rate_features[active] = rate_features(rate[active], sc.uplink.bandwidth_hz)
        gains = self.channel.step(skip=skip)
        for i in rows:
            self.problems[i] = AllocationProblem._trusted(gains[i], self.constants)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        if sc.target_accuracy is not None:
            terminated[active] = new_acc >= sc.target_accuracy
        truncated[active] = self.t[active] >= sc.rounds
        # ---- info values
        if eves is not None:
            moved = self.channel.positions_m if self._moving else None
            values["eavesdropper_gains"] = eves.step(moved, skip=skip)
        per_cell = [security_info(self.learners[i], {}) for i in rows]
        for key in per_cell[0]:
            column = np.stack([np.asarray(d[key]) for d in per_cell])
            values[key] = np.zeros((n, *column.shape[1:]), dtype=column.dtype)
            values[key][active] = column
        values.update(
            num_delivered=delivered.sum(axis=1),
            global_loss=self.global_loss.copy(),
            global_accuracy=self.global_accuracy.copy(),
            local_loss=local_loss,
            round=self.t.copy(),
            wall_time_s=self.wall_time_s.copy(),
            problem=self.problems.copy(),
        )
        return reward, terminated, truncated, values

    # ------------------------------------------------------------ observation
    def observe(self) -> np.ndarray:
        """Observations (n, layout.size) float32 of every cell (QFL-v0's layout)."""
        layout = self.layout
        obs = layout.new(self.num_envs)
        part = layout.split(obs)
        scale = self._loss_scale
        part["snr"][:] = self.channel.features
        part["rate"][:] = self.rate_features
        part["global_loss"][:, 0] = np.minimum(self.global_loss * scale, LOSS_FEATURE_BOUND)
        part["local_loss"][:] = np.minimum(self.reported_loss * scale, LOSS_FEATURE_BOUND)
        rounds = self.scenario.rounds
        part["staleness"][:] = self.staleness / rounds
        part["time"][:, 0] = self.t / rounds
        if "wall_time" in part:
            part["wall_time"][:, 0] = np.minimum(self.wall_time_s * self._time_scale, 1.0)
        return obs


def single_info(values: dict[str, Any], row: int = 0) -> dict[str, Any]:
    """One cell's ``info`` from batched values: the single env's types (scalars as Python
    floats and ints, arrays as (K,) rows)."""
    info = {}
    for key, value in values.items():
        item = value[row]
        cast = SCALAR_INFO.get(key)
        info[key] = cast(item) if cast is not None else item
    return info
