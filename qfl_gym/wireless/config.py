"""Scenario configuration of the shared 6G uplink, with named presets.

:class:`UplinkConfig` is a frozen dataclass validated at construction: a bad value
raises :class:`ValueError` naming the field, the value and what is allowed. Each field
carries its unit and the source of its default in ``dataclasses.fields(...)[i].metadata``,
from which the README's parameter table and ``qfl-gym envs`` are generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from qfl_gym.config_fields import ConfigFields, check_field_names, param, preset
from qfl_gym.validation import (
    check_bool,
    check_choice,
    check_float,
    check_float_tuple,
    check_int,
)
from qfl_gym.wireless.problem import OBJECTIVES
from qfl_gym.wireless.propagation import (
    PATHLOSS_MODELS,
    dbm_to_w,
    jakes_correlation,
    noise_power_w,
)

FADING_MODELS = ("rayleigh", "rician")
#: How a passive eavesdropper decodes the devices (see qfl_gym.wireless.secrecy).
EAVESDROPPER_DECODING = ("sic", "interference", "genie")

MAX_DEVICES = 1024
MAX_SUBCHANNELS = 64
MAX_POWER_LEVELS = 64
MAX_EAVESDROPPERS = 64
MAX_EAVESDROPPER_RANGE_M = 1e5


@dataclass(frozen=True)
class UplinkConfig(ConfigFields):
    """Parameters of the multi-channel NOMA uplink of one cell.

    Devices are dropped uniformly (by area) in an annulus around the base station;
    each picks one sub-channel and one transmit-power level per decision slot.
    """

    num_devices: int = param(10, "-", "devices K sharing the uplink")
    num_subchannels: int = param(4, "-", "NOMA sub-channels N", "reference study: 4")
    p_min_dbm: float = param(0.0, "dBm", "lowest transmit power level")
    p_max_dbm: float = param(23.0, "dBm", "highest transmit power level", "3GPP UE power class 3")
    num_power_levels: int = param(4, "-", "power levels L, equally spaced in dBm")
    power_levels_dbm: tuple[float, ...] | None = param(
        None, "dBm", "explicit power levels (overrides p_min/p_max/L when given)"
    )
    bandwidth_hz: float = param(
        1e6, "Hz", "bandwidth per sub-channel", "LTE RB 180 kHz to 1 MHz; 1 MHz chosen"
    )
    noise_psd_dbm_hz: float = param(-174.0, "dBm/Hz", "thermal noise PSD", "kT at 290 K")
    noise_figure_db: float = param(5.0, "dB", "base-station receiver noise figure", "TR 36.814")
    cell_radius_m: float = param(500.0, "m", "cell radius", "TR 36.814: ISD 500 m macro")
    min_distance_m: float = param(35.0, "m", "minimum device-BS distance", "TR 36.814")
    pathloss_model: str = param(
        "3gpp-uma-nlos", "-", f"one of {', '.join(PATHLOSS_MODELS)}", "TR 36.814"
    )
    pathloss_intercept_db: float = param(128.1, "dB", "path loss at 1 km (log-distance)")
    pathloss_exponent: float = param(3.76, "-", "path-loss exponent (log-distance)")
    shadowing_std_db: float = param(8.0, "dB", "log-normal shadowing sigma", "TR 36.814")
    shadowing_decorrelation_m: float = param(
        50.0, "m", "shadowing decorrelation distance (mobility)", "Gudmundson 1991; 3GPP"
    )
    fading: str = param("rayleigh", "-", f"small-scale fading: {', '.join(FADING_MODELS)}")
    rician_k_db: float = param(6.0, "dB", "Rician K-factor (fading='rician')")
    carrier_hz: float = param(3.5e9, "Hz", "carrier frequency", "6G/NR mid-band n78")
    speed_mps: float = param(1.0, "m/s", "device speed (Doppler; movement if mobility)")
    slot_s: float = param(0.01, "s", "time between decisions (one env step)")
    mobility: bool = param(False, "-", "move devices at speed_mps (random walk in the cell)")
    sic_residual: float = param(0.0, "-", "imperfect-SIC residual eps in [0, 1]")
    update_bits: float = param(1e5, "bit", "model-update size uploaded per round (QFL)")
    min_rate_bps: float = param(1e5, "bit/s", "minimum rate; below it a device is in outage")
    energy_weight: float = param(0.0, "(Mbit/s)/J", "reward penalty per joule transmitted")
    outage_penalty: float = param(0.0, "Mbit/s", "reward penalty per device in outage")
    objective: str = param(
        "sum-rate",
        "-",
        "allocation objective: the reward and info['problem'].reward (what optimizers "
        "maximize): 'sum-rate' (Mbit/s), 'deliveries' (expected updates of update_bits "
        "delivered within slot_s, Chen et al. packet errors, + 0.01 x sum rate), "
        "'round-time' (slowest rate in Mbit/s + 0.001 x mean rate), 'min-rate' (sum rate "
        "- min_rate_penalty x Mbit/s short of min_rate_bps); energy and outage prices "
        "apply to each",
    )
    min_rate_penalty: float = param(
        10.0,
        "-",
        "objective='min-rate': penalty (Mbit/s) per Mbit/s a device falls short of min_rate_bps",
    )
    horizon: int = param(100, "steps", "episode length (truncation)")
    # ----------------------------------------- eavesdropping (qfl_gym.wireless.secrecy)
    num_eavesdroppers: int = param(
        0,
        "-",
        "passive eavesdroppers E (0: none), dropped uniformly in the cell annulus at "
        "every reset unless eavesdropper_positions_m is given",
    )
    eavesdropper_positions_m: tuple[tuple[float, float], ...] | None = param(
        None,
        "m",
        "fixed eavesdropper positions (x, y), base station at the origin; sets num_eavesdroppers",
    )
    eavesdropper_noise_figure_db: float = param(
        9.0, "dB", "eavesdropper receiver noise figure", "TR 36.814: UE noise figure 9 dB"
    )
    eavesdropper_decoding: str = param(
        "sic",
        "-",
        "'sic': own SIC in descending received power (residual sic_residual); "
        "'interference': co-channel devices are noise; 'genie': no interference",
    )
    secrecy_reward: bool = param(
        False,
        "-",
        "ChannelPower-v0 reward: secrecy sum rate sum_k [r_k - r_k,eve]^+ instead of "
        "the sum rate (needs eavesdroppers)",
    )

    def __post_init__(self) -> None:
        check_int("num_devices", self.num_devices, low=1, high=MAX_DEVICES)
        check_int("num_subchannels", self.num_subchannels, low=1, high=MAX_SUBCHANNELS)
        check_float("p_min_dbm", self.p_min_dbm, low=-100.0, high=60.0)
        check_float("p_max_dbm", self.p_max_dbm, low=-100.0, high=60.0)
        check_int("num_power_levels", self.num_power_levels, low=1, high=MAX_POWER_LEVELS)
        if self.power_levels_dbm is not None:
            levels = check_float_tuple(
                "power_levels_dbm", self.power_levels_dbm, strictly_increasing=True
            )
            if len(levels) > MAX_POWER_LEVELS:
                raise ValueError(
                    f"power_levels_dbm must hold at most {MAX_POWER_LEVELS} levels, "
                    f"got {len(levels)}"
                )
            for i, v in enumerate(levels):
                check_float(f"power_levels_dbm[{i}]", v, low=-100.0, high=60.0)
            object.__setattr__(self, "power_levels_dbm", levels)
            object.__setattr__(self, "num_power_levels", len(levels))
            object.__setattr__(self, "p_min_dbm", levels[0])
            object.__setattr__(self, "p_max_dbm", levels[-1])
        elif self.p_min_dbm > self.p_max_dbm:
            raise ValueError(
                f"p_min_dbm must be <= p_max_dbm, got p_min_dbm={self.p_min_dbm} > "
                f"p_max_dbm={self.p_max_dbm}"
            )
        elif self.num_power_levels > 1 and self.p_min_dbm == self.p_max_dbm:
            raise ValueError(
                f"p_min_dbm == p_max_dbm ({self.p_min_dbm}) leaves no room for "
                f"num_power_levels={self.num_power_levels} distinct levels; "
                "use num_power_levels=1 or widen the range"
            )
        check_float("bandwidth_hz", self.bandwidth_hz, low=0.0, low_inclusive=False)
        check_float("noise_psd_dbm_hz", self.noise_psd_dbm_hz, low=-250.0, high=0.0)
        check_float("noise_figure_db", self.noise_figure_db, low=0.0, high=30.0)
        check_float("cell_radius_m", self.cell_radius_m, low=0.0, low_inclusive=False)
        check_float("min_distance_m", self.min_distance_m, low=0.0, low_inclusive=False)
        if self.min_distance_m >= self.cell_radius_m:
            raise ValueError(
                f"min_distance_m must be < cell_radius_m, got min_distance_m="
                f"{self.min_distance_m} >= cell_radius_m={self.cell_radius_m}"
            )
        check_choice("pathloss_model", self.pathloss_model, PATHLOSS_MODELS)
        check_float("pathloss_intercept_db", self.pathloss_intercept_db, low=0.0, high=300.0)
        check_float("pathloss_exponent", self.pathloss_exponent, low=1.0, high=8.0)
        check_float("shadowing_std_db", self.shadowing_std_db, low=0.0, high=30.0)
        check_float(
            "shadowing_decorrelation_m",
            self.shadowing_decorrelation_m,
            low=0.0,
            low_inclusive=False,
        )
        check_choice("fading", self.fading, FADING_MODELS)
        check_float("rician_k_db", self.rician_k_db, low=-50.0, high=50.0)
        check_float("carrier_hz", self.carrier_hz, low=0.0, low_inclusive=False)
        check_float("speed_mps", self.speed_mps, low=0.0, high=500.0)
        check_float("slot_s", self.slot_s, low=0.0, low_inclusive=False)
        check_bool("mobility", self.mobility)
        check_float("sic_residual", self.sic_residual, low=0.0, high=1.0)
        check_float("update_bits", self.update_bits, low=0.0, low_inclusive=False)
        check_float("min_rate_bps", self.min_rate_bps, low=0.0)
        check_float("energy_weight", self.energy_weight, low=0.0)
        check_float("outage_penalty", self.outage_penalty, low=0.0)
        check_choice("objective", self.objective, OBJECTIVES)
        check_float("min_rate_penalty", self.min_rate_penalty, low=0.0)
        check_int("horizon", self.horizon, low=1)
        self._check_eavesdroppers()

    def _check_eavesdroppers(self) -> None:
        if self.eavesdropper_positions_m is not None:
            pos = self.eavesdropper_positions_m
            if isinstance(pos, str | bytes) or not hasattr(pos, "__iter__"):
                raise ValueError(
                    f"eavesdropper_positions_m must be a sequence of (x, y) pairs in m or "
                    f"None, got {pos!r}"
                )
            pairs = []
            for i, xy in enumerate(pos):
                if isinstance(xy, str | bytes) or not hasattr(xy, "__len__") or len(xy) != 2:
                    raise ValueError(
                        f"eavesdropper_positions_m[{i}] must be an (x, y) pair in m, got {xy!r}"
                    )
                pairs.append(
                    tuple(
                        check_float(
                            f"eavesdropper_positions_m[{i}][{j}]",
                            v,
                            low=-MAX_EAVESDROPPER_RANGE_M,
                            high=MAX_EAVESDROPPER_RANGE_M,
                        )
                        for j, v in enumerate(xy)
                    )
                )
            if not 1 <= len(pairs) <= MAX_EAVESDROPPERS:
                raise ValueError(
                    f"eavesdropper_positions_m must hold 1..{MAX_EAVESDROPPERS} positions "
                    f"(None: no fixed positions), got {len(pairs)}"
                )
            object.__setattr__(self, "eavesdropper_positions_m", tuple(pairs))
            object.__setattr__(self, "num_eavesdroppers", len(pairs))
        check_int("num_eavesdroppers", self.num_eavesdroppers, low=0, high=MAX_EAVESDROPPERS)
        check_float(
            "eavesdropper_noise_figure_db", self.eavesdropper_noise_figure_db, low=0.0, high=30.0
        )
        check_choice("eavesdropper_decoding", self.eavesdropper_decoding, EAVESDROPPER_DECODING)
        check_bool("secrecy_reward", self.secrecy_reward)
        if self.secrecy_reward and self.objective != "sum-rate":
            raise ValueError(
                "secrecy_reward=True makes the reward the secrecy sum rate; it needs "
                f"objective='sum-rate', got objective={self.objective!r}"
            )
        if self.secrecy_reward and not self.num_eavesdroppers:
            raise ValueError(
                "secrecy_reward=True needs eavesdroppers: set num_eavesdroppers >= 1 or "
                "eavesdropper_positions_m"
            )

    # ----------------------------------------------------------------- derived
    @cached_property
    def levels_dbm(self) -> np.ndarray:
        """Transmit power levels in dBm, shape (L,), ascending."""
        if self.power_levels_dbm is not None:
            return np.asarray(self.power_levels_dbm, dtype=float)
        if self.num_power_levels == 1:
            return np.asarray([self.p_max_dbm])
        return np.linspace(self.p_min_dbm, self.p_max_dbm, self.num_power_levels)

    @cached_property
    def power_levels_w(self) -> np.ndarray:
        """Transmit power levels in W, shape (L,), ascending, read-only."""
        out = np.asarray(dbm_to_w(self.levels_dbm), dtype=float)
        out.flags.writeable = False
        return out

    @cached_property
    def noise_w(self) -> float:
        """Noise power per sub-channel, W."""
        return noise_power_w(self.noise_psd_dbm_hz, self.noise_figure_db, self.bandwidth_hz)

    @cached_property
    def fading_correlation(self) -> float:
        """Gauss-Markov coefficient rho between consecutive slots (Jakes)."""
        return jakes_correlation(self.speed_mps, self.carrier_hz, self.slot_s)

    def _related_changes(self, changes: dict[str, Any]) -> dict[str, Any]:
        """A level count or range clears explicit levels; a count clears fixed positions."""
        if "power_levels_dbm" not in changes and (
            {"p_min_dbm", "p_max_dbm", "num_power_levels"} & changes.keys()
        ):
            changes["power_levels_dbm"] = None
        if "num_eavesdroppers" in changes and "eavesdropper_positions_m" not in changes:
            changes["eavesdropper_positions_m"] = None  # a count: randomly dropped ones
        return changes


UPLINK_PRESETS: dict[str, UplinkConfig] = {
    # The benchmark scale: K=10, N=4, L=4, perfect SIC.
    "default": UplinkConfig(),
    # Small enough for exhaustive search and QAOA without block decomposition:
    # (N*L)^K = 4^4 = 256 assignments, 8 qubits in binary encoding.
    "small": UplinkConfig(num_devices=4, num_subchannels=2, num_power_levels=2),
    # With imperfect SIC the residual interference makes power control matter:
    # full power everywhere is no longer optimal.
    "imperfect-sic": UplinkConfig(sic_residual=0.1),
    # The reference study's scale: 50 devices on 4 NOMA sub-channels.
    "case-study": UplinkConfig(num_devices=50, num_subchannels=4, sic_residual=0.05),
    # Many devices, moving, with an energy price and a minimum-rate requirement.
    "dense-mobile": UplinkConfig(
        num_devices=64,
        num_subchannels=8,
        speed_mps=3.0,
        mobility=True,
        energy_weight=200.0,
        outage_penalty=1.0,
        sic_residual=0.02,
    ),
    # Two passive eavesdroppers at fixed positions inside the cell (one 150 m east, one
    # 250 m north-west of the base station); the reward is the secrecy sum rate.
    "secrecy": UplinkConfig(
        eavesdropper_positions_m=((150.0, 0.0), (-175.0, 175.0)),
        secrecy_reward=True,
    ),
}


def uplink_config(scenario: str | UplinkConfig = "default", **overrides: Any) -> UplinkConfig:
    """The named preset (or a given config) with ``overrides`` applied and validated.

    An override that is not an :class:`UplinkConfig` field raises ``TypeError``
    (``uplink_config() got an unexpected keyword argument ...``, then the valid names);
    a bad value raises ``ValueError``.
    """
    check_field_names(UplinkConfig, overrides, caller="uplink_config")
    base = preset(scenario, UPLINK_PRESETS, UplinkConfig)
    return base.replace(**overrides) if overrides else base
