r"""Whether a device's model update reaches the base station within a round.

A device with uplink rate :math:`r_k` (bit/s, from :mod:`qfl_gym.wireless.noma`) and
SINR :math:`\gamma_k` uploads its update of :math:`S` bits in

.. math::

    \tau_k = S / r_k \quad \text{seconds} \qquad (\tau_k = \infty \text{ if } r_k = 0).

The update is delivered if the upload finishes within the round deadline
:math:`T_{\max}` *and* the packet is received without error:

.. math::

    \text{delivered}_k = [\tau_k \le T_{\max}] \wedge [u_k \ge q_k],
    \qquad u_k \sim \mathcal{U}[0, 1),
    \qquad q_k = 1 - \exp(-m / \gamma_k),

the packet error rate of Chen, Yang, Saad, Poor and Cui, "A Joint Learning and
Communications Framework for Federated Learning over Wireless Networks", IEEE TWC 20(1),
2021, with waterfall threshold :math:`m` (0.023 dB there, i.e.
:math:`m = 10^{0.0023} \approx 1.005` linear). :math:`q_k` falls from 1 at
:math:`\gamma_k = 0` to :math:`\approx m/\gamma_k` at high SINR (0.1 at 10 dB, 0.01 at
20 dB).

Transmit energy of the round: a device radiates only while uploading, at most until the
deadline, :math:`E_k = p_k \min(\tau_k, T_{\max})` joules.
"""

from __future__ import annotations

import numpy as np

#: Chen et al. (IEEE TWC 2021): waterfall threshold m = 0.023 dB
CHEN_WATERFALL_THRESHOLD_DB = 0.023


def upload_latency_s(rate_bps: np.ndarray, update_bits: float) -> np.ndarray:
    """Upload time ``S / r_k`` in s (``inf`` where the rate is 0), shape of ``rate_bps``."""
    rate = np.asarray(rate_bps, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(rate > 0.0, update_bits / np.maximum(rate, 1e-300), np.inf)


def packet_error_probability(sinr: np.ndarray, waterfall_threshold: float) -> np.ndarray:
    """``q = 1 - exp(-m / SINR)`` (Chen et al. 2021), in [0, 1]; 1 where SINR is 0.

    Parameters
    ----------
    sinr : ndarray
        Linear SINR (unitless, >= 0).
    waterfall_threshold : float
        ``m``, linear (unitless, >= 0); ``0`` means error-free packets.
    """
    sinr = np.asarray(sinr, dtype=float)
    if waterfall_threshold == 0.0:
        return np.zeros_like(sinr)
    with np.errstate(divide="ignore"):
        return -np.expm1(-waterfall_threshold / np.maximum(sinr, 1e-300))


def delivery_probability(
    rate_bps: np.ndarray,
    sinr: np.ndarray,
    update_bits: float,
    deadline_s: float,
    waterfall_threshold: float,
) -> np.ndarray:
    """Probability that each update arrives: ``[S / r <= T_max] * (1 - q)``."""
    on_time = upload_latency_s(rate_bps, update_bits) <= deadline_s
    return on_time * (1.0 - packet_error_probability(sinr, waterfall_threshold))


def draw_delivery(
    rng: np.random.Generator,
    latency_s: np.ndarray,
    packet_error: np.ndarray,
    deadline_s: float,
) -> np.ndarray:
    """Sample which updates arrive, (K,) bool.

    One uniform draw per device, always (``rng`` advances by K numbers whatever the
    outcome), so trajectories stay aligned across allocations with the same seed.
    """
    u = rng.random(np.shape(latency_s))
    return (np.asarray(latency_s) <= deadline_s) & (u >= packet_error)


def upload_energy_j(power_w: np.ndarray, latency_s: np.ndarray, deadline_s: float) -> np.ndarray:
    """Transmit energy ``p_k * min(tau_k, T_max)`` in J."""
    return np.asarray(power_w, dtype=float) * np.minimum(latency_s, deadline_s)


def draw_attempts(rng: np.random.Generator, packet_error: np.ndarray) -> np.ndarray:
    """Transmissions until each packet arrives: geometric, success probability ``1 - q``.

    One uniform draw per device, always (as :func:`draw_delivery`). ``P(N > j) = q^j``, so
    ``N = 1 + floor(ln(1 - u) / ln q)`` (1 where ``q = 0``, ``inf`` where ``q = 1``); the
    mean is ``1 / (1 - q)``.
    """
    u = rng.random(np.shape(packet_error))
    q = np.asarray(packet_error, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        extra = np.floor(np.log1p(-u) / np.log(q))
    extra = np.where(q <= 0.0, 0.0, extra)
    return np.where(q >= 1.0, np.inf, 1.0 + extra)
