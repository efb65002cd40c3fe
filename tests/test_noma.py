"""The NOMA/SIC rate formula: hand-computed cases, invariants, batch == loop."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import reference_sinr
from hypothesis import given, settings
from hypothesis import strategies as st

from qfl_gym.wireless import noma
from qfl_gym.wireless.problem import AllocationProblem

B = 1e6


def sinr_of(gains, power_w, channels, noise_w, eps=0.0):
    gains = np.asarray(gains, float)
    channels = np.asarray(channels)
    s = np.asarray(power_w, float) * gains[np.arange(len(channels)), channels]
    return noma.sic_sinr(s, channels, np.asarray(noise_w, float), eps)


def test_lone_device_gets_the_shannon_rate():
    sinr = sinr_of([[1e-9]], [0.2], [0], [1e-13])
    assert sinr[0] == pytest.approx(0.2 * 1e-9 / 1e-13)
    rate = noma.rates_bps(sinr, B)
    assert rate[0] == pytest.approx(B * np.log2(1 + 2e3))


def test_two_devices_strongest_decoded_first():
    # device 0 received 4 units, device 1 received 1 unit, noise 1
    sinr = sinr_of([[4.0], [1.0]], [1.0, 1.0], [0, 0], [1.0])
    assert sinr[0] == pytest.approx(4.0 / (1.0 + 1.0))  # sees device 1
    assert sinr[1] == pytest.approx(1.0 / 1.0)  # cancelled device 0: noise only
    # order follows received power, not index
    sinr = sinr_of([[1.0], [4.0]], [1.0, 1.0], [0, 0], [1.0])
    assert sinr[1] == pytest.approx(2.0)
    assert sinr[0] == pytest.approx(1.0)


def test_two_devices_perfect_sic_sum_rate_telescopes():
    sinr = sinr_of([[4.0], [1.0]], [1.0, 1.0], [0, 0], [1.0])
    total = noma.rates_bps(sinr, B).sum()
    assert total == pytest.approx(B * np.log2(1 + 5.0))


def test_three_devices_hand_computed_with_power_levels():
    gains = np.array([[2.0], [3.0], [0.5]])
    power = np.array([1.0, 1.0, 4.0])  # received: 2, 3, 2 -> order 1, 0, 2 (tie: 0 before 2)
    sinr = sinr_of(gains, power, [0, 0, 0], [0.5])
    assert sinr[1] == pytest.approx(3.0 / (2.0 + 2.0 + 0.5))
    assert sinr[0] == pytest.approx(2.0 / (2.0 + 0.5))
    assert sinr[2] == pytest.approx(2.0 / 0.5)


def test_equal_received_powers_decode_lower_index_first():
    sinr = sinr_of([[1.0], [1.0], [1.0]], [1.0, 1.0, 1.0], [0, 0, 0], [1.0])
    np.testing.assert_allclose(sinr, [1 / 3, 1 / 2, 1.0])


def test_imperfect_sic_residual():
    sinr = sinr_of([[4.0], [1.0]], [1.0, 1.0], [0, 0], [1.0], eps=0.1)
    assert sinr[0] == pytest.approx(4.0 / 2.0)  # nothing decoded before it
    assert sinr[1] == pytest.approx(1.0 / (0.1 * 4.0 + 1.0))


def test_devices_on_different_subchannels_do_not_interfere():
    sinr = sinr_of([[4.0, 0.1], [0.1, 1.0]], [1.0, 1.0], [0, 1], [1.0, 2.0])
    np.testing.assert_allclose(sinr, [4.0, 0.5])


instances = st.builds(
    lambda K, N, seed, eps: (K, N, np.random.default_rng(seed), eps),
    st.integers(1, 8),
    st.integers(1, 4),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.0, 0.05, 0.3, 1.0]),
)


def random_instance(K, N, rng):
    gains = rng.exponential(size=(K, N)) * 10 ** rng.uniform(-12, -8, size=(K, 1))
    power = 10 ** rng.uniform(-3, -0.7, size=K)
    channels = rng.integers(0, N, K)
    noise = np.full(N, 1e-13) * rng.uniform(0.5, 2, N)
    return gains, power, channels, noise


@settings(max_examples=150, deadline=None)
@given(instances)
def test_vectorized_sinr_matches_textbook_definition(inst):
    K, N, rng, eps = inst
    gains, power, channels, noise = random_instance(K, N, rng)
    if rng.random() < 0.3:  # force exact ties in received power
        gains[:] = gains[0, 0]
        power[:] = power[0]
    expected = reference_sinr(gains, power, channels, noise, eps)
    np.testing.assert_allclose(sinr_of(gains, power, channels, noise, eps), expected, rtol=1e-9)


@settings(max_examples=100, deadline=None)
@given(instances)
def test_rates_nonnegative_and_adding_a_device_never_helps_others(inst):
    K, N, rng, eps = inst
    gains, power, channels, noise = random_instance(K + 1, N, rng)
    with_all = noma.rates_bps(sinr_of(gains, power, channels, noise, eps), B)
    without_last = noma.rates_bps(sinr_of(gains[:-1], power[:-1], channels[:-1], noise, eps), B)
    assert np.all(with_all >= 0)
    assert np.all(with_all[:-1] <= without_last * (1 + 1e-12))


@settings(max_examples=100, deadline=None)
@given(instances, st.floats(1.5, 100.0))
def test_sum_rate_falls_as_noise_rises(inst, factor):
    K, N, rng, eps = inst
    gains, power, channels, noise = random_instance(K, N, rng)
    low = noma.rates_bps(sinr_of(gains, power, channels, noise, eps), B).sum()
    high = noma.rates_bps(sinr_of(gains, power, channels, noise * factor, eps), B).sum()
    assert high < low


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_batch_evaluation_equals_per_assignment_loop(eps):
    rng = np.random.default_rng(7)
    K, N, L, M = 6, 3, 4, 500
    gains = rng.exponential(size=(K, N)) * 1e-10
    levels_w = np.array([0.01, 0.05, 0.1, 0.2])
    problem = AllocationProblem(gains, np.full(N, 1e-13), levels_w, B, sic_residual=eps)
    ch = rng.integers(0, N, (M, K))
    lv = rng.integers(0, L, (M, K))
    batch_sum = problem.sum_rate(ch, lv)
    batch_rates = problem.rates(ch, lv)
    assert batch_sum.shape == (M,)
    for m in range(M):
        single = problem.rates(ch[m], lv[m])
        np.testing.assert_allclose(batch_rates[m], single, rtol=1e-12)
        assert problem.sum_rate(ch[m], lv[m]) == pytest.approx(batch_sum[m], rel=1e-9)
        ref = B * np.log2(1 + reference_sinr(gains, levels_w[lv[m]], ch[m], problem.noise_w, eps))
        assert batch_sum[m] == pytest.approx(ref.sum(), rel=1e-9)


def test_perfect_sic_shortcut_equals_sum_of_rates():
    rng = np.random.default_rng(3)
    K, N, M = 10, 4, 200
    s = rng.exponential(size=(M, K)) * 1e-12
    ch = rng.integers(0, N, (M, K))
    noise = np.full(N, 1e-13)
    shortcut = noma.sum_rate_bps(s, ch, noise, B, 0.0)
    summed = noma.rates_bps(noma.sic_sinr(s, ch, noise, 0.0), B).sum(axis=-1)
    np.testing.assert_allclose(shortcut, summed, rtol=1e-10)


def test_subchannel_load_sums_received_power_per_subchannel():
    s = np.array([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]])
    ch = np.array([[0, 1, 0], [2, 2, 2]])
    np.testing.assert_allclose(noma.subchannel_load_w(s, ch, 3), [[5, 2, 0], [0, 0, 56]])
