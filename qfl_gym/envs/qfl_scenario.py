"""Scenario of ``qfl_gym/QFL-v0``: the uplink, the learning task and the round settings.

:class:`QFLScenario` combines an :class:`~qfl_gym.wireless.config.UplinkConfig`, a
:class:`~qfl_gym.learning.config.LearningConfig` and the settings of a federated round
(deadline, packet errors, reward, episode length). It is frozen and validated like its
parts; :func:`qfl_scenario` builds one from a preset name plus flat overrides, routing
each override to the part that owns the field.

Time scale: one environment step is one federated round, so the uplink's ``slot_s`` is
the **round period** (default 1 s: local training plus upload), which is what the
Gauss-Markov fading correlation ``J0(2 pi f_d slot_s)`` between consecutive decisions
uses. At 3.5 GHz and 1 m/s, ``f_d = 11.7 Hz`` and the fading of consecutive rounds is
independent (``rho = 0``); slower devices or shorter rounds correlate it.

Security parts (defaults: off): :class:`~qfl_gym.learning.privacy.PrivacyConfig`
(``privacy``: DP clipping and noise, ``dp_*`` overrides) and
:class:`~qfl_gym.learning.attacks.PoisoningConfig` (``poisoning``: malicious devices and
the robust rules' tolerance); eavesdroppers are uplink fields
(:mod:`qfl_gym.wireless.secrecy`), and ``secure_upload`` sends updates at the secrecy
rate.

Quantum hardware part (default: ideal): :class:`~qfl_gym.learning.noise.QuantumNoiseConfig`
(``quantum_noise``: gate-layer depolarizing and amplitude-damping channels, measurement
shots when evaluating, per-device qubit budgets; overrides ``depolarizing_p``,
``amplitude_damping_gamma``, ``shots``, ``qubit_budget``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from qfl_gym.config_fields import check_field_names, check_keywords, param, part, preset
from qfl_gym.learning.attacks import PoisoningConfig, check_robustness
from qfl_gym.learning.config import LearningConfig
from qfl_gym.learning.data import check_enough_samples
from qfl_gym.learning.noise import QuantumNoiseConfig
from qfl_gym.learning.privacy import PrivacyConfig, check_privacy_rule
from qfl_gym.validation import check_bool, check_choice, check_float, check_int
from qfl_gym.wireless.config import UPLINK_PRESETS, UplinkConfig
from qfl_gym.wireless.delivery import CHEN_WATERFALL_THRESHOLD_DB
from qfl_gym.wireless.problem import DELIVERIES_RATE_WEIGHT, OBJECTIVES  # noqa: F401

REWARDS = ("loss", "accuracy", "sum-rate", "secrecy-sum-rate", "loss-rate")
#: How a round hears the devices: until a deadline, or every update (full participation).
PARTICIPATION = ("deadline", "full")

#: QFLScenario fields that are neither the uplink nor the learning config.
ROUND_FIELDS = (
    "rounds",
    "deadline_s",
    "waterfall_threshold_db",
    "packet_errors",
    "reward",
    "energy_cost",
    "target_accuracy",
    "secure_upload",
    "participation",
    "max_round_s",
    "local_compute_s",
    "objective",
)


@dataclass(frozen=True)
class QFLScenario:
    """A quantum-federated-learning scenario: uplink + learning task + round settings.

    The defaults are the ``small`` preset.
    """

    uplink: UplinkConfig = part(
        lambda: UplinkConfig(num_devices=8, num_subchannels=4, num_power_levels=4, slot_s=1.0),
        "the radio uplink; slot_s is the round period",
    )
    learning: LearningConfig = part(LearningConfig, "data, VQC model and local training")
    rounds: int = param(30, "rounds", "episode length R (truncation)", "reference study: ~30")
    deadline_s: float = param(
        0.1,
        "s",
        "upload deadline T_max per round (must be <= uplink.slot_s)",
        "chosen: required rate update_bits / deadline_s = 1 Mbit/s (1 bit/s/Hz)",
    )
    waterfall_threshold_db: float = param(
        CHEN_WATERFALL_THRESHOLD_DB,
        "dB",
        "waterfall threshold m of the packet error rate q = 1 - exp(-m / SINR)",
        "Chen et al., IEEE TWC 2021",
    )
    packet_errors: bool = param(True, "-", "draw packet errors (False: delivered iff on time)")
    reward: str = param(
        "loss",
        "-",
        "'loss': decrease of the global test loss (nats); 'accuracy': gain of test "
        "accuracy; 'sum-rate': sum rate (Mbit/s); 'secrecy-sum-rate': secrecy sum rate "
        "(Mbit/s, needs eavesdroppers); 'loss-rate': decrease of the global test loss "
        "per second of the round (nats/s)",
    )
    energy_cost: float = param(
        0.0, "reward/J", "reward penalty per joule transmitted, p_k min(latency, deadline)"
    )
    target_accuracy: float | None = param(
        None, "-", "terminate the episode once the global test accuracy reaches it"
    )
    objective: str = param(
        "sum-rate",
        "-",
        "objective of info['problem'] (what optimizer agents maximize): 'sum-rate' "
        "(Mbit/s, the reference study's), 'deliveries' (expected updates delivered "
        "within deadline_s + 0.01 x sum rate in Mbit/s), 'round-time' (slowest rate in "
        "Mbit/s + 0.001 x mean rate: shortest slowest upload) or 'min-rate' (sum rate - "
        "min_rate_penalty x Mbit/s short of min_rate_bps); the uplink's objective "
        "follows it",
    )
    participation: str = param(
        "deadline",
        "-",
        "'deadline': a round lasts slot_s and aggregates the updates uploaded within "
        "deadline_s without packet error; 'full': every update is aggregated and the round "
        "lasts local_compute_s + the slowest upload (retransmitted after packet errors), "
        "devices slower than max_round_s dropped",
        "full: the reference study's convergence analysis (arXiv 2603.01222); round "
        "latency as Yang et al., IEEE TWC 2021",
    )
    max_round_s: float = param(
        10.0,
        "s",
        "full participation: round-time cap; an upload not finished by then is dropped",
        "chosen: 10x the deadline model's 1 s round",
    )
    local_compute_s: float = param(
        0.0,
        "s",
        "full participation: local training time added to every round (same on all devices)",
        "chosen: 0, so round times compare uplink allocations alone",
    )
    secure_upload: bool = param(
        False,
        "-",
        "updates are wiretap-coded at the secrecy rate: upload time update_bits / "
        "[r_k - r_k,eve]^+ (needs eavesdroppers)",
        "Wyner 1975; Bloch et al. 2008",
    )
    privacy: PrivacyConfig = part(PrivacyConfig, "differential privacy of the updates")
    poisoning: PoisoningConfig = part(
        PoisoningConfig, "malicious devices and the robust rules' tolerance"
    )
    quantum_noise: QuantumNoiseConfig = part(
        QuantumNoiseConfig,
        "noise channels, measurement shots and qubit budgets of the devices' VQCs",
    )

    def __post_init__(self) -> None:
        if not isinstance(self.uplink, UplinkConfig):
            raise ValueError(f"uplink must be an UplinkConfig, got {type(self.uplink).__name__}")
        if not isinstance(self.learning, LearningConfig):
            raise ValueError(
                f"learning must be a LearningConfig, got {type(self.learning).__name__}"
            )
        check_int("rounds", self.rounds, low=1)
        check_float("deadline_s", self.deadline_s, low=0.0, low_inclusive=False)
        if self.deadline_s > self.uplink.slot_s:
            raise ValueError(
                f"deadline_s must be <= slot_s (the round period), got deadline_s="
                f"{self.deadline_s} > slot_s={self.uplink.slot_s}"
            )
        check_float("waterfall_threshold_db", self.waterfall_threshold_db, low=-50.0, high=50.0)
        check_bool("packet_errors", self.packet_errors)
        check_choice("reward", self.reward, REWARDS)
        check_choice("participation", self.participation, PARTICIPATION)
        check_float("max_round_s", self.max_round_s, low=0.0, low_inclusive=False)
        check_float("local_compute_s", self.local_compute_s, low=0.0)
        check_choice("objective", self.objective, OBJECTIVES)
        check_float("energy_cost", self.energy_cost, low=0.0)
        if self.target_accuracy is not None:
            check_float(
                "target_accuracy", self.target_accuracy, low=0.0, high=1.0, low_inclusive=False
            )
        check_enough_samples(self.learning, self.uplink.num_devices)
        self._check_security()
        if not isinstance(self.quantum_noise, QuantumNoiseConfig):
            raise ValueError(
                "quantum_noise must be a QuantumNoiseConfig, got "
                f"{type(self.quantum_noise).__name__}"
            )
        self.quantum_noise.check_learning(self.learning, self.uplink.num_devices)
        if self.uplink.horizon != self.rounds:  # keep the uplink's horizon consistent
            object.__setattr__(self, "uplink", self.uplink.replace(horizon=self.rounds))
        if self.uplink.objective != self.objective:  # and its objective
            object.__setattr__(self, "uplink", self.uplink.replace(objective=self.objective))

    def _check_security(self) -> None:
        if not isinstance(self.privacy, PrivacyConfig):
            raise ValueError(f"privacy must be a PrivacyConfig, got {type(self.privacy).__name__}")
        if not isinstance(self.poisoning, PoisoningConfig):
            raise ValueError(
                f"poisoning must be a PoisoningConfig, got {type(self.poisoning).__name__}"
            )
        check_bool("secure_upload", self.secure_upload)
        needs_eve = [
            n
            for n, on in (
                ("secure_upload", self.secure_upload),
                ("reward='secrecy-sum-rate'", self.reward == "secrecy-sum-rate"),
            )
            if on
        ]
        if needs_eve and not self.uplink.num_eavesdroppers:
            raise ValueError(
                f"{needs_eve[0]} needs eavesdroppers: set num_eavesdroppers >= 1 or "
                "eavesdropper_positions_m"
            )
        if self.uplink.secrecy_reward:
            raise ValueError(
                "secrecy_reward is ChannelPower-v0's reward switch; QFL-v0 uses "
                "reward='secrecy-sum-rate' (or secure_upload=True)"
            )
        check_privacy_rule(self.privacy, self.learning.aggregation)
        check_robustness(self.learning.aggregation, self.poisoning, self.uplink.num_devices)

    # ----------------------------------------------------------------- derived
    @property
    def num_devices(self) -> int:
        """K."""
        return self.uplink.num_devices

    @property
    def waterfall_threshold(self) -> float:
        """Linear waterfall threshold ``m`` (0 when packet errors are off)."""
        if not self.packet_errors:
            return 0.0
        return float(10.0 ** (self.waterfall_threshold_db / 10.0))

    @property
    def required_rate_bps(self) -> float:
        """Rate an upload needs to meet the deadline, ``update_bits / deadline_s``, bit/s."""
        return self.uplink.update_bits / self.deadline_s

    def replace(self, **changes: Any) -> QFLScenario:
        """A validated copy; flat names are routed like :func:`qfl_scenario`."""
        return qfl_scenario(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain values (for reports and JSON)."""
        out = {name: getattr(self, name) for name in ROUND_FIELDS}
        out["uplink"] = self.uplink.to_dict()
        out["learning"] = self.learning.to_dict()
        out["privacy"] = self.privacy.to_dict()
        out["poisoning"] = self.poisoning.to_dict()
        out["quantum_noise"] = self.quantum_noise.to_dict()
        return out


#: uplink fields set by flat overrides (a name that is also a round setting, objective,
#: is the round setting's: the uplink follows it)
_UPLINK_FIELDS = tuple(
    f.name for f in dataclasses.fields(UplinkConfig) if f.name not in ROUND_FIELDS
)
_LEARNING_FIELDS = tuple(f.name for f in dataclasses.fields(LearningConfig))
_PRIVACY_FIELDS = tuple(f.name for f in dataclasses.fields(PrivacyConfig))
_POISONING_FIELDS = tuple(f.name for f in dataclasses.fields(PoisoningConfig))
_NOISE_FIELDS = tuple(f.name for f in dataclasses.fields(QuantumNoiseConfig))


#: The learning task of ``case-study-full``: digits 0-4 (about 14 training samples per
#: device at K = 50), 6-qubit 2-layer VQCs with a linear readout, 2 local epochs.
CASE_STUDY_FULL_LEARNING = LearningConfig(
    dataset="digits",
    classes=(0, 1, 2, 3, 4),
    n_qubits=6,
    n_layers=2,
    readout="linear",
    partition="dirichlet",
    dirichlet_alpha=0.5,
    local_epochs=2,
)

QFL_PRESETS: dict[str, QFLScenario] = {
    # Fast enough for RL (the defaults): 8 devices on 4 sub-channels, 4-qubit 2-layer
    # VQCs classifying digits 0-3, label-skewed shards (72 samples per device on average).
    "small": QFLScenario(),
    # The reference study's scale: 50 devices on 4 NOMA sub-channels (imperfect SIC
    # eps = 0.05), about 30 rounds; all ten digits on 8-qubit 3-layer VQCs with a
    # linear readout head, about 29 samples per device.
    "case-study": QFLScenario(
        uplink=UPLINK_PRESETS["case-study"].replace(slot_s=1.0),
        learning=LearningConfig(
            dataset="digits",
            classes=None,
            n_qubits=8,
            n_layers=3,
            readout="linear",
            partition="dirichlet",
            dirichlet_alpha=0.5,
        ),
        rounds=30,
        deadline_s=0.2,
    ),
    # The reference study's setting: 50 devices on 4 NOMA sub-channels (imperfect SIC
    # eps = 0.05), full participation, 30 rounds; optimizers minimize the round time
    # (max-min rate), RL is rewarded by the loss decrease per second. Every update is
    # aggregated unless its upload (packet errors retransmitted) misses the 10 s round
    # cap; a round lasts 0.8 s of local training (the deadline model's 1 s period minus
    # its 0.2 s upload window) plus the slowest upload. The update is the VQC's 71
    # parameters as float32 (2272 bit). Task with headroom: digits 0-4 on 6-qubit
    # 2-layer VQCs with a linear head, 2 local epochs, Dirichlet(0.5) shards of ~14
    # samples (error-free uplink: ~0.86 test accuracy after 30 rounds; 5 updates per
    # round: ~0.75). docs/provenance.md lists the source of every value.
    "case-study-full": QFLScenario(
        uplink=UPLINK_PRESETS["case-study"].replace(
            slot_s=1.0, update_bits=float(CASE_STUDY_FULL_LEARNING.num_parameters * 32)
        ),
        learning=CASE_STUDY_FULL_LEARNING,
        rounds=30,
        deadline_s=0.2,
        participation="full",
        max_round_s=10.0,
        local_compute_s=0.8,
        objective="round-time",
        reward="loss-rate",
    ),
    # `small` with two passive eavesdroppers at fixed positions; updates are
    # wiretap-coded at the secrecy rate (secure_upload), so only updates whose secrecy
    # rate meets the deadline count, and the loss reward prices eavesdropping.
    "secrecy": QFLScenario(
        uplink=UplinkConfig(
            num_devices=8,
            num_subchannels=4,
            num_power_levels=4,
            slot_s=1.0,
            eavesdropper_positions_m=((150.0, 0.0), (-175.0, 175.0)),
        ),
        secure_upload=True,
    ),
    # `small` with DP-FedAvg: updates clipped to C = 0.5 (the honest update norms of
    # this task are ~0.5-1 rad: most are clipped), central Gaussian noise z = 1,
    # epsilon at delta = 1e-5 per device over the rounds its update was aggregated.
    "private": QFLScenario(privacy=PrivacyConfig(dp_clip_norm=0.5, dp_noise_multiplier=1.0)),
    # `small` with 2 of 8 devices flipping and amplifying their updates (sign-flip,
    # s = 4), defended by the coordinate-wise median.
    "byzantine": QFLScenario(
        learning=LearningConfig(aggregation="median"),
        poisoning=PoisoningConfig(attacker_fraction=0.25),
    ),
    # `small` on NISQ hardware: after every gate layer each qubit is depolarized
    # (p = 0.01, about a two-qubit gate error) and damped (gamma = 0.005: T1 ~ 100 us,
    # ~0.5 us per layer); the test set is evaluated with 1000 shots per sample; every
    # fourth device has a 3-qubit processor and cannot run the 4-qubit VQC.
    "noisy-nisq": QFLScenario(
        quantum_noise=QuantumNoiseConfig(
            depolarizing_p=0.01,
            amplitude_damping_gamma=0.005,
            shots=1000,
            qubit_budget=(4, 4, 4, 3),
        )
    ),
}


def valid_override_names() -> tuple[str, ...]:
    """Every name :func:`qfl_scenario` accepts as an override."""
    uplink = tuple(n for n in _UPLINK_FIELDS if n != "horizon")
    return (
        "uplink",
        "learning",
        "privacy",
        "poisoning",
        *ROUND_FIELDS,
        *uplink,
        *_LEARNING_FIELDS,
        *_PRIVACY_FIELDS,
        *_POISONING_FIELDS,
        "quantum_noise",
        *_NOISE_FIELDS,
    )


def qfl_scenario(scenario: str | QFLScenario = "small", **overrides: Any) -> QFLScenario:
    """The named preset (or a given scenario) with flat ``overrides`` applied.

    Each override goes to the part that owns the name: a round setting (``rounds``,
    ``deadline_s``, ...), an :class:`UplinkConfig` field (``num_devices``,
    ``slot_s``, ...), a :class:`LearningConfig` field (``n_qubits``, ``dataset``, ...), a
    :class:`PrivacyConfig` field (``dp_clip_norm``, ...) or a :class:`PoisoningConfig`
    field (``attacker_fraction``, ...) or a :class:`QuantumNoiseConfig` field
    (``depolarizing_p``, ``shots``, ...); ``uplink=`` / ``learning=`` / ``privacy=`` /
    ``poisoning=`` / ``quantum_noise=`` replace a whole part (field overrides then apply
    on top).
    An unknown name raises ``TypeError`` in Python's wording (``qfl_scenario() got an
    unexpected keyword argument ...``) listing the valid ones; a bad value raises
    ``ValueError``.
    """
    base = preset(scenario, QFL_PRESETS, QFLScenario)
    if not overrides:
        return base
    if "horizon" in overrides:
        raise ValueError("horizon: QFL-v0 episodes last `rounds` federated rounds; set rounds=")
    check_keywords("qfl_scenario", overrides, valid_override_names())
    uplink = overrides.pop("uplink", base.uplink)
    learning = overrides.pop("learning", base.learning)
    if not isinstance(uplink, UplinkConfig):
        raise ValueError(f"uplink must be an UplinkConfig, got {type(uplink).__name__}")
    if not isinstance(learning, LearningConfig):
        raise ValueError(f"learning must be a LearningConfig, got {type(learning).__name__}")
    privacy = overrides.pop("privacy", base.privacy)
    poisoning = overrides.pop("poisoning", base.poisoning)
    if not isinstance(privacy, PrivacyConfig):
        raise ValueError(f"privacy must be a PrivacyConfig, got {type(privacy).__name__}")
    if not isinstance(poisoning, PoisoningConfig):
        raise ValueError(f"poisoning must be a PoisoningConfig, got {type(poisoning).__name__}")
    # a name of both (objective) is the round setting's; the uplink follows it
    up = {
        k: overrides.pop(k)
        for k in list(overrides)
        if k in _UPLINK_FIELDS and k not in ROUND_FIELDS
    }
    le = {k: overrides.pop(k) for k in list(overrides) if k in _LEARNING_FIELDS}
    pr = {k: overrides.pop(k) for k in list(overrides) if k in _PRIVACY_FIELDS}
    po = {k: overrides.pop(k) for k in list(overrides) if k in _POISONING_FIELDS}
    quantum_noise = overrides.pop("quantum_noise", base.quantum_noise)
    if not isinstance(quantum_noise, QuantumNoiseConfig):
        raise ValueError(
            f"quantum_noise must be a QuantumNoiseConfig, got {type(quantum_noise).__name__}"
        )
    qn = {k: overrides.pop(k) for k in list(overrides) if k in _NOISE_FIELDS}
    check_field_names(QFLScenario, overrides, caller="qfl_scenario")
    return dataclasses.replace(
        base,
        uplink=uplink.replace(**up) if up else uplink,
        learning=learning.replace(**le) if le else learning,
        privacy=privacy.replace(**pr) if pr else privacy,
        poisoning=poisoning.replace(**po) if po else poisoning,
        quantum_noise=quantum_noise.replace(**qn) if qn else quantum_noise,
        **overrides,
    )
