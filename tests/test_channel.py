"""Channel model statistics: placement, fading distribution, time correlation, mobility."""

from __future__ import annotations

import numpy as np
import pytest

from qfl_gym.wireless.channel import UplinkChannel, drop_devices
from qfl_gym.wireless.config import UplinkConfig


def run(cfg, steps, seed=0):
    ch = UplinkChannel(cfg)
    out = [ch.reset(np.random.default_rng(seed))]
    out += [ch.step() for _ in range(steps)]
    return ch, np.array(out)


def test_drop_is_uniform_by_area_in_the_annulus():
    pos = drop_devices(np.random.default_rng(0), 200_000, 35.0, 500.0)
    r = np.hypot(pos[:, 0], pos[:, 1])
    assert r.min() >= 35.0 and r.max() <= 500.0
    # P(r <= x) = (x^2 - r0^2) / (R^2 - r0^2)
    expected = (250.0**2 - 35.0**2) / (500.0**2 - 35.0**2)
    assert np.mean(r <= 250.0) == pytest.approx(expected, abs=0.005)


def test_gains_follow_pathloss_and_shadowing():
    cfg = UplinkConfig(num_devices=5, num_subchannels=3)
    ch, gains = run(cfg, 0)
    beta = 10 ** (-(ch.pathloss_db + ch.shadowing_db) / 10)
    assert np.all(gains[0] > 0)
    # small-scale power is the ratio; its mean over many draws is 1 (checked below)
    assert gains[0].shape == (5, 3)
    np.testing.assert_allclose(
        ch.pathloss_db, 128.1 + 37.6 * np.log10(ch.distance_m / 1000), rtol=1e-12
    )
    assert np.all(gains[0] / beta[:, None] > 0)


@pytest.mark.parametrize("fading", ["rayleigh", "rician"])
def test_small_scale_fading_has_unit_mean_power(fading):
    cfg = UplinkConfig(
        num_devices=1,
        num_subchannels=1,
        shadowing_std_db=0.0,
        fading=fading,
        speed_mps=300.0,
        slot_s=1.0,  # rho = 0: independent slots
    )
    ch, gains = run(cfg, 20_000)
    small = gains[:, 0, 0] / (10 ** (-ch.pathloss_db[0] / 10))
    assert small.mean() == pytest.approx(1.0, abs=0.03)
    if fading == "rayleigh":  # exponential: variance 1
        assert small.var() == pytest.approx(1.0, abs=0.08)
    else:  # Rician K=6 dB: variance (1 + 2K)/(1 + K)^2 < 1
        k = 10**0.6
        assert small.var() == pytest.approx((1 + 2 * k) / (1 + k) ** 2, abs=0.05)


def test_gauss_markov_correlation_matches_jakes():
    cfg = UplinkConfig(num_devices=20, num_subchannels=4, shadowing_std_db=0.0)
    rho = cfg.fading_correlation
    assert 0.5 < rho < 0.99
    ch, gains = run(cfg, 3000)
    small = gains / (10 ** (-ch.pathloss_db / 10))[None, :, None]
    x, y = small[:-1].ravel(), small[1:].ravel()
    # for Rayleigh, corr(|h_t|^2, |h_t+1|^2) = rho^2
    assert np.corrcoef(x, y)[0, 1] == pytest.approx(rho**2, abs=0.03)


def test_zero_speed_means_static_channel():
    cfg = UplinkConfig(speed_mps=0.0)
    _, gains = run(cfg, 10)
    assert np.all(gains == gains[0])


def test_mobility_keeps_devices_in_the_annulus_and_moves_them():
    cfg = UplinkConfig(num_devices=30, mobility=True, speed_mps=50.0, slot_s=0.1)
    ch = UplinkChannel(cfg)
    ch.reset(np.random.default_rng(1))
    start = ch.positions_m.copy()
    for _ in range(500):
        ch.step()
        r = np.hypot(ch.positions_m[:, 0], ch.positions_m[:, 1])
        assert np.all((r >= cfg.min_distance_m) & (r <= cfg.cell_radius_m))
    assert np.all(np.hypot(*(ch.positions_m - start).T) > 0)


def test_same_seed_same_channel_trajectory():
    cfg = UplinkConfig(mobility=True, fading="rician")
    _, a = run(cfg, 200, seed=5)
    _, b = run(cfg, 200, seed=5)
    _, c = run(cfg, 200, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_gains_are_read_only():
    ch = UplinkChannel(UplinkConfig())
    g = ch.reset(np.random.default_rng(0))
    with pytest.raises(ValueError):
        g[0, 0] = 1.0
    g = ch.step()
    with pytest.raises(ValueError):
        g[0, 0] = 1.0


def test_block_trajectory_equals_the_gauss_markov_recursion():
    cfg = UplinkConfig(num_devices=3, num_subchannels=2, shadowing_std_db=0.0)
    ch = UplinkChannel(cfg)
    ch.reset(np.random.default_rng(11))
    twin = UplinkChannel(cfg)
    rng = np.random.default_rng(11)
    twin.reset(rng)  # consumes the same reset draws
    h = twin._h.copy()
    rho = cfg.fading_correlation
    beta = 10 ** (-ch.pathloss_db / 10)
    # innovation blocks: float32 uniforms (radius plane, angle plane) per complex pair,
    # Box-Muller; the second block stops at the horizon (100 slots)
    for block in (64, cfg.horizon - 64):
        u = rng.random((2, block, 3 * 2), dtype=np.float32).astype(float)
        r = np.sqrt(-2.0 * np.log1p(-u[0]))
        z = np.stack([r * np.cos(2 * np.pi * u[1]), r * np.sin(2 * np.pi * u[1])])
        for t in range(block):
            h = rho * h + np.sqrt((1 - rho**2) / 2) * z[:, t].reshape(2, 3, 2)
            expected = (h[0] ** 2 + h[1] ** 2) * beta[:, None]
            np.testing.assert_allclose(ch.step(), expected, rtol=1e-5)
