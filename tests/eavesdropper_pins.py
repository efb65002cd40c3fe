"""Digests of seeded eavesdropper-channel trajectories: a bit-for-bit regression pin.

:func:`run_case` drives one :class:`~qfl_gym.wireless.secrecy.EavesdropperChannel`
beside the legitimate :class:`~qfl_gym.wireless.channel.UplinkChannel` (whose device
positions it follows) through resets and 150 slots per episode (past two innovation
blocks), evaluating random assignments every slot, and hashes the gains, geometry and
secrecy outcome. ``tests/data/eavesdropper_pins.json`` holds the digests of the code the
pins were taken from; ``python tests/eavesdropper_pins.py`` rewrites it (only for a
change meant to alter the eavesdroppers' realizations; say so in the commit message).

Digests are of float64 bytes: they hold on one machine and library stack.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from qfl_gym.wireless.channel import UplinkChannel
from qfl_gym.wireless.config import UPLINK_PRESETS, UplinkConfig

PIN_FILE = Path(__file__).parent / "data" / "eavesdropper_pins.json"

SMALL = {"num_devices": 6, "num_subchannels": 3}

#: name -> UplinkConfig: every fading family, decoding, geometry and time behaviour
CASES: dict[str, UplinkConfig] = {
    "secrecy-preset": UPLINK_PRESETS["secrecy"],
    "rayleigh-sic-eps": UplinkConfig(**SMALL, num_eavesdroppers=3, sic_residual=0.05),
    "rician-interference": UplinkConfig(
        **SMALL, num_eavesdroppers=2, fading="rician", eavesdropper_decoding="interference"
    ),
    "rician-genie-fixed": UplinkConfig(
        **SMALL,
        fading="rician",
        rician_k_db=3.0,
        eavesdropper_positions_m=((120.0, -40.0),),
        eavesdropper_decoding="genie",
    ),
    "dense-mobile-sic": UPLINK_PRESETS["dense-mobile"].replace(num_eavesdroppers=2),
    "mobile-rician-interference": UplinkConfig(
        **SMALL,
        mobility=True,
        speed_mps=30.0,
        fading="rician",
        num_eavesdroppers=2,
        eavesdropper_decoding="interference",
    ),
    "static-fading": UplinkConfig(**SMALL, speed_mps=0.0, num_eavesdroppers=2),
    "independent-slots": UplinkConfig(**SMALL, slot_s=1.0, num_eavesdroppers=1),
}

EPISODES = 2
SLOTS = 150


def _feed(h: Any, value: Any) -> None:
    a = np.ascontiguousarray(np.asarray(value))
    h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())


def run_case(config: UplinkConfig, seed: int = 3) -> str:
    """sha256 of one seeded eavesdropper trajectory of ``config``."""
    from qfl_gym.wireless.secrecy import EavesdropperChannel

    K, N = config.num_devices, config.num_subchannels
    moves = bool(config.mobility) and config.speed_mps > 0
    legit = UplinkChannel(config)
    eve = EavesdropperChannel(config)
    root = np.random.default_rng(seed)
    actions = np.random.default_rng(seed + 1000)
    levels = config.power_levels_w
    h = hashlib.sha256()
    for _ in range(EPISODES):
        legit.reset(root)
        _feed(h, eve.reset(root.spawn(1)[0], legit.positions_m))
        for value in (eve.positions_m, eve.distance_m, eve.pathloss_db, eve.shadowing_db):
            _feed(h, value)
        for _ in range(SLOTS):
            channels = actions.integers(0, N, K)
            power = levels.take(actions.integers(0, len(levels), K))
            rate = actions.uniform(0.0, 2e7, K)
            out = eve.outcome(channels, power, rate)
            for key in sorted(out):
                _feed(h, out[key])
            legit.step()
            _feed(h, eve.step(legit.positions_m if moves else None))
        _feed(h, eve.distance_m)
    return h.hexdigest()


if __name__ == "__main__":
    digests = {
        name: run_case(cfg)
        for name, cfg in CASES.items()
        if name in sys.argv[1:] or len(sys.argv) == 1
    }
    old = json.loads(PIN_FILE.read_text()) if PIN_FILE.exists() else {}
    old.update(digests)
    PIN_FILE.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")
    print(json.dumps(digests, indent=1))
