"""Path loss, noise power, Doppler and the Jakes coefficient against their formulas."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import j0

from qfl_gym.wireless import propagation as prop


def test_3gpp_pathloss_formula():
    assert prop.pathloss_db(1000.0) == pytest.approx(128.1)
    assert prop.pathloss_db(100.0) == pytest.approx(128.1 - 37.6)
    d = np.array([35.0, 250.0, 500.0])
    np.testing.assert_allclose(prop.pathloss_db(d), 128.1 + 37.6 * np.log10(d / 1000))


def test_log_distance_and_free_space():
    assert prop.pathloss_db(
        10_000.0, "log-distance", intercept_db=120.0, exponent=3.0
    ) == pytest.approx(150.0)
    c = prop.SPEED_OF_LIGHT_MPS
    fspl = 20 * np.log10(4 * np.pi * 100.0 * 2e9 / c)
    assert prop.pathloss_db(100.0, "free-space", carrier_hz=2e9) == pytest.approx(fspl)


def test_unknown_pathloss_model_lists_valid():
    with pytest.raises(ValueError, match="unknown pathloss_model 'x'; valid"):
        prop.pathloss_db(1.0, "x")


def test_noise_power():
    # -174 dBm/Hz + 5 dB + 60 dB(1 MHz) = -109 dBm
    assert prop.noise_power_w(-174.0, 5.0, 1e6) == pytest.approx(10 ** (-139 / 10))
    assert prop.w_to_dbm(prop.noise_power_w(-174.0, 0.0, 180e3)) == pytest.approx(
        -174 + 10 * np.log10(180e3)
    )


def test_dbm_w_round_trip():
    assert float(prop.dbm_to_w(23.0)) == pytest.approx(0.19953, rel=1e-4)
    assert float(prop.dbm_to_w(30.0)) == pytest.approx(1.0)
    assert prop.w_to_dbm(prop.dbm_to_w(-12.5)) == pytest.approx(-12.5)


def test_bessel_j0_matches_scipy():
    xs = np.linspace(0.0, 50.0, 501)
    np.testing.assert_allclose([prop.bessel_j0(x) for x in xs], j0(xs), atol=1e-12)


def test_jakes_correlation():
    fd = prop.doppler_hz(1.0, 3.5e9)
    assert fd == pytest.approx(3.5e9 / prop.SPEED_OF_LIGHT_MPS)
    assert prop.jakes_correlation(1.0, 3.5e9, 0.01) == pytest.approx(j0(2 * np.pi * fd * 0.01))
    assert prop.jakes_correlation(0.0, 3.5e9, 0.01) == 1.0
    # beyond the first zero of J0 consecutive slots are independent
    assert prop.jakes_correlation(30.0, 3.5e9, 1.0) == 0.0
