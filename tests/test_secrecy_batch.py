"""Eavesdroppers of many cells at once: a batch equals that many single channels bit for bit."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest
from eavesdropper_pins import CASES, PIN_FILE, run_case
from hypothesis import given, settings
from hypothesis import strategies as st

from qfl_gym.wireless import secrecy
from qfl_gym.wireless.channel import UplinkChannel
from qfl_gym.wireless.config import EAVESDROPPER_DECODING, UPLINK_PRESETS, UplinkConfig
from qfl_gym.wireless.secrecy import (
    EavesdropperChannel,
    EavesdropperChannelBatch,
    eavesdropper_sinr,
)

PINS = json.loads(PIN_FILE.read_text())


@pytest.mark.parametrize("name", list(CASES))
def test_seeded_eavesdropper_trajectories_match_their_pins(name):
    assert run_case(CASES[name]) == PINS[name]


# ------------------------------------------------------- batch vs singles
SMALL = {"num_devices": 6, "num_subchannels": 3, "num_eavesdroppers": 2}


def _configs() -> list[tuple[str, UplinkConfig]]:
    out = []
    for fading in ("rayleigh", "rician"):
        for decoding in EAVESDROPPER_DECODING:
            for mobile in (False, True):
                cfg = UplinkConfig(
                    **SMALL,
                    fading=fading,
                    eavesdropper_decoding=decoding,
                    sic_residual=0.05 if decoding == "sic" else 0.0,
                    mobility=mobile,
                    speed_mps=30.0 if mobile else 1.0,
                )
                out.append((f"{fading}-{decoding}-{'mobile' if mobile else 'fixed'}", cfg))
    dense = UPLINK_PRESETS["dense-mobile"].replace(num_eavesdroppers=2, fading="rician")
    out.append(("dense-mobile-rician", dense))
    # one small cell's block is under 4096 values, a batch's above: fading_power must not
    # switch arithmetic with the array size
    one = UplinkConfig(**{**SMALL, "num_eavesdroppers": 1}, fading="rician")
    out.append(("rician-one-eavesdropper", one))
    out.append(("static-fading", UplinkConfig(**SMALL, speed_mps=0.0)))
    out.append(("independent-slots", UplinkConfig(**SMALL, slot_s=1.0)))
    fixed = UplinkConfig(num_devices=5, eavesdropper_positions_m=((80.0, 0.0), (0.0, -60.0)))
    out.append(("fixed-positions", fixed))
    return out


CONFIGS = _configs()


def _generator(cell: int, episode: int) -> np.random.Generator:
    return np.random.default_rng([11, cell, episode])


class _Cells:
    """n single eavesdropper channels beside n legitimate channels (the reference)."""

    def __init__(self, config: UplinkConfig, n: int) -> None:
        self.config = config
        self.legit = [UplinkChannel(config) for _ in range(n)]
        self.eves = [EavesdropperChannel(config) for _ in range(n)]
        self.episodes = [0] * n
        self.moves = bool(config.mobility) and config.speed_mps > 0

    def positions(self) -> np.ndarray:
        return np.stack([c.positions_m for c in self.legit])

    def reset(self, i: int) -> None:
        self.episodes[i] += 1
        self.legit[i].reset(_generator(1000 + i, self.episodes[i]))
        self.eves[i].reset(_generator(i, self.episodes[i]), self.legit[i].positions_m)

    def step(self, i: int) -> None:
        self.legit[i].step()
        self.eves[i].step(self.legit[i].positions_m if self.moves else None)


def _assert_cell_equal(batch: EavesdropperChannelBatch, eve: EavesdropperChannel, i: int):
    np.testing.assert_array_equal(batch.gains[i], eve.gains)
    for name in ("positions_m", "distance_m", "pathloss_db", "shadowing_db"):
        np.testing.assert_array_equal(getattr(batch, name)[i], getattr(eve, name), err_msg=name)


def _assert_outcomes_equal(batch, cells, rng, active):
    cfg = batch.config
    n, K = batch.num_envs, cfg.num_devices
    channels = rng.integers(0, cfg.num_subchannels, (n, K))
    power = cfg.power_levels_w.take(rng.integers(0, cfg.num_power_levels, (n, K)))
    rate = rng.uniform(0.0, 2e7, (n, K))
    got = batch.outcome(channels, power, rate)
    assert got["eavesdropper_rate_bps"].shape == (n, K)
    assert got["secrecy_sum_rate_bps"].shape == (n,)
    for i in np.flatnonzero(active):
        want = cells.eves[i].outcome(channels[i], power[i], rate[i])
        assert isinstance(want["secrecy_sum_rate_bps"], float)
        for key, value in want.items():
            np.testing.assert_array_equal(got[key][i], value, err_msg=key)


def _run_against_singles(config: UplinkConfig, n: int, slots: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    cells = _Cells(config, n)
    batch = EavesdropperChannelBatch(config, n)
    for i in range(n):
        cells.reset(i)
    gains = batch.reset([_generator(i, 1) for i in range(n)], cells.positions())
    assert gains.shape == (n, *batch.shape) and not gains.flags.writeable
    for i in range(n):
        _assert_cell_equal(batch, cells.eves[i], i)
    for t in range(slots):
        _assert_outcomes_equal(batch, cells, rng, np.ones(n, bool))
        # autoreset either way: cells skipped by this step and reset instead (next-step
        # mode) or stepped and then reset (same-step mode)
        done = rng.random(n) < 0.04
        skip = done if t % 2 else None
        for i in range(n):
            if skip is None or not skip[i]:
                cells.step(i)
        moved = cells.positions() if cells.moves else None
        batch.step(moved, skip=skip)
        for i in range(n):
            if skip is None or not skip[i]:
                _assert_cell_equal(batch, cells.eves[i], i)
        if done.any():
            idx = np.flatnonzero(done)
            for i in idx:
                cells.reset(i)
            before = batch.gains.copy()
            batch.reset([_generator(i, cells.episodes[i]) for i in idx], cells.positions(), idx)
            keep = ~done
            np.testing.assert_array_equal(batch.gains[keep], before[keep])
            for i in range(n):
                _assert_cell_equal(batch, cells.eves[i], i)


@pytest.mark.parametrize(("name", "config"), CONFIGS, ids=[c[0] for c in CONFIGS])
def test_batch_equals_single_channels_bit_for_bit(name, config):
    big = config.num_devices > 10
    _run_against_singles(config, n=3 if big else 5, slots=140 if big else 200)


def test_batch_equals_singles_when_cells_are_processed_in_groups(monkeypatch):
    monkeypatch.setattr(secrecy, "_DRAW_CHUNK_VALUES", 1)  # blocks drawn cell by cell
    monkeypatch.setattr(secrecy, "_SIC_GROUP_VALUES", 2 * 12 * 12)  # SIC two cells at a time
    name, config = CONFIGS[1]
    assert name == "rayleigh-sic-mobile"
    _run_against_singles(config, n=5, slots=130)


def test_one_cell_batch_is_the_single_channel():
    cfg = UplinkConfig(**SMALL, fading="rician")
    single = EavesdropperChannel(cfg)
    assert isinstance(single.batch, EavesdropperChannelBatch) and single.batch.num_envs == 1
    legit = UplinkChannel(cfg)
    legit.reset(np.random.default_rng(1))
    gains = single.reset(np.random.default_rng(2), legit.positions_m)
    assert gains.shape == single.shape == (2, 6, 3)
    assert single.positions_m.shape == (2, 2) and single.distance_m.shape == (2, 6)
    np.testing.assert_array_equal(gains, single.batch.gains[0])
    # a one-cell batch driven directly: the same trajectory and outcomes, with a cell axis
    batch = EavesdropperChannelBatch(cfg, 1)
    batch.reset([np.random.default_rng(2)], legit.positions_m[None])
    rng = np.random.default_rng(3)
    for _ in range(70):
        np.testing.assert_array_equal(batch.gains[0], single.gains)
        channels = rng.integers(0, 3, (1, 6))
        power = rng.uniform(0.01, 0.2, (1, 6))
        rate = rng.uniform(0.0, 2e7, (1, 6))
        got = batch.outcome(channels, power, rate)
        want = single.outcome(channels[0], power[0], rate[0])
        assert got["secrecy_sum_rate_bps"].shape == (1,)
        for key, value in want.items():
            np.testing.assert_array_equal(got[key][0], value, err_msg=key)
        batch.step()
        single.step()


# ------------------------------------------------------ batched evaluation
@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 4),
    E=st.integers(1, 3),
    K=st.integers(1, 9),
    N=st.integers(1, 3),
    eps=st.sampled_from([0.0, 0.1]),
    decoding=st.sampled_from(EAVESDROPPER_DECODING),
    seed=st.integers(0, 2**32 - 1),
)
def test_eavesdropper_sinr_rows_of_a_batch_equal_single_calls(n, E, K, N, eps, decoding, seed):
    rng = np.random.default_rng(seed)
    gains = rng.exponential(size=(n, E, K, N)) * 1e-9
    channels = rng.integers(0, N, (n, K))
    power = rng.choice([0.01, 0.1, 0.2], (n, K))
    got = eavesdropper_sinr(gains, channels, power, 1e-12, decoding, eps)
    assert got.shape == (n, E, K)
    for i in range(n):
        want = eavesdropper_sinr(gains[i], channels[i], power[i], 1e-12, decoding, eps)
        np.testing.assert_array_equal(got[i], want)
    # one realization broadcast against a batch of assignments
    shared = eavesdropper_sinr(gains[0], channels, power, 1e-12, decoding, eps)
    for i in range(n):
        want = eavesdropper_sinr(gains[0], channels[i], power[i], 1e-12, decoding, eps)
        np.testing.assert_array_equal(shared[i], want)


# --------------------------------------------------------------- behaviour
def _batch(n=3, **changes):
    cfg = UplinkConfig(**{**SMALL, **changes})
    legit = [UplinkChannel(cfg) for _ in range(n)]
    for i, c in enumerate(legit):
        c.reset(np.random.default_rng(100 + i))
    devices = np.stack([c.positions_m for c in legit])
    batch = EavesdropperChannelBatch(cfg, n)
    batch.reset([np.random.default_rng(i) for i in range(n)], devices)
    return batch, devices


def test_partial_reset_draws_only_from_the_reset_cells_generators():
    batch, devices = _batch()
    spies = [np.random.default_rng(7), np.random.default_rng(8)]
    states = [copy.deepcopy(g.bit_generator.state) for g in batch._rngs]
    batch.reset([spies[0]], devices, indices=[1])
    assert batch._rngs[1] is spies[0]
    for i in (0, 2):  # untouched generators
        assert batch._rngs[i].bit_generator.state == states[i]
    assert spies[0].bit_generator.state != np.random.default_rng(7).bit_generator.state


def test_skipped_cells_draw_nothing():
    batch, _ = _batch()
    before = [copy.deepcopy(g.bit_generator.state) for g in batch._rngs]
    batch.step(skip=np.array([False, True, False]))
    after = [g.bit_generator.state for g in batch._rngs]
    assert after[1] == before[1]
    assert after[0] != before[0] and after[2] != before[2]  # first step: a block drawn
    gains = batch.gains
    assert batch.step(skip=np.ones(3, bool)) is gains  # all skipped: nothing computed


def test_mobility_moves_the_path_loss_and_keeps_the_shadowing():
    batch, devices = _batch(mobility=True, speed_mps=30.0)
    d0, shadow = batch.distance_m.copy(), batch.shadowing_db.copy()
    batch.step(devices + 25.0)
    assert not np.allclose(batch.distance_m, d0)
    np.testing.assert_array_equal(batch.shadowing_db, shadow)
    diff = (devices + 25.0)[:, None] - batch.positions_m[:, :, None]
    want = np.maximum(np.hypot(diff[..., 0], diff[..., 1]), batch.config.min_distance_m)
    np.testing.assert_allclose(batch.distance_m, want)


def test_batch_pickles_and_copies_mid_block():
    batch, devices = _batch()
    for _ in range(3):
        batch.step()
    batch.reset([np.random.default_rng(9)], devices, indices=[2])
    batch.step()
    clones = [copy.deepcopy(batch), pickle.loads(pickle.dumps(batch))]
    for _ in range(70):  # through the next block draw
        ref = batch.step()
        for clone in clones:
            np.testing.assert_array_equal(clone.step(), ref)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: EavesdropperChannelBatch(UplinkConfig(), 2), "needs eavesdroppers"),
        (lambda: EavesdropperChannelBatch(UplinkConfig(**SMALL), 0), "num_envs must be >= 1"),
        (lambda: EavesdropperChannelBatch("small", 2), "config must be an UplinkConfig"),
    ],
)
def test_bad_construction_names_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_reset_arguments_name_the_parameter():
    batch, devices = _batch()
    with pytest.raises(ValueError, match="one generator per reset cell"):
        batch.reset([np.random.default_rng(0)], devices)
    with pytest.raises(ValueError, match=r"device_positions_m must have shape \(n, K, 2\)"):
        batch.reset([np.random.default_rng(0)], devices[:1], indices=[0])
    with pytest.raises(ValueError, match=r"device_positions_m must have shape"):
        batch.step(devices[..., 0])
