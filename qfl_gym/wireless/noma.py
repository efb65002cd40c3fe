r"""Uplink NOMA with successive interference cancellation (SIC): the rate formula.

This module is the one place the project computes SINRs and rates.

System model
------------
Device :math:`k` transmits with power :math:`p_k` (W) on sub-channel :math:`c_k`, whose
linear power gain to the base station is :math:`g_{k,c_k}`; its received power is
:math:`s_k = p_k g_{k,c_k}`. On every sub-channel :math:`n` the base station decodes the
devices sharing it in **descending order of received power** (ties: lower device index
first). With :math:`\mathcal{A}_k` the devices on :math:`c_k` decoded after :math:`k`
and :math:`\mathcal{B}_k` those decoded before it,

.. math::

    \mathrm{SINR}_k = \frac{s_k}{\sum_{j\in\mathcal{A}_k} s_j
                      + \varepsilon \sum_{j\in\mathcal{B}_k} s_j + \sigma^2_{c_k}},
    \qquad r_k = B \log_2(1 + \mathrm{SINR}_k)\ \text{bit/s},

where :math:`\varepsilon \in [0, 1]` is the imperfect-SIC residual (0: perfect SIC) and
:math:`\sigma^2_n` the noise power of sub-channel :math:`n` (W). The sum rate is
:math:`\sum_k r_k`.

With perfect SIC (:math:`\varepsilon = 0`) the rates on one sub-channel telescope,
:math:`\sum_{k \in n} r_k = B \log_2(1 + \sum_{k\in n} s_k / \sigma^2_n)`, which
:func:`sum_rate_bps` uses as an exact shortcut.

Implementation notes
--------------------
All functions take a trailing device axis and any leading batch axes, so one call
evaluates ``M`` candidate assignments (``(M, K)`` arrays) or ``M`` environments.
The decoding order is found without sorting, by comparing every pair of devices
(``K x K`` booleans per assignment). Exact ties in received power are broken by
device index through the order key ``s_k (1 - k * 1e-12)``: powers closer than about
``K * 1e-12`` relative are decoded lower index first, a difference far below any
physical meaning.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_TIE = 1e-12  # relative order-key perturbation per device index (tie-break)


@lru_cache(maxsize=64)
def _tie_factor(num_devices: int) -> np.ndarray:
    factor = 1.0 - np.arange(num_devices) * _TIE
    factor.flags.writeable = False
    return factor


def received_power_table(gains: np.ndarray, power_levels_w: np.ndarray) -> np.ndarray:
    """Received power of every (device, sub-channel, level): ``p_l * g_kn``, W.

    Parameters
    ----------
    gains : ndarray, shape (..., K, N)
        Linear power gains (unitless).
    power_levels_w : ndarray, shape (L,)
        Transmit power levels, W.

    Returns
    -------
    ndarray, shape (..., K * N * L)
        Flattened table indexed by :func:`flat_assignment_index`.
    """
    table = gains[..., :, :, None] * power_levels_w
    return table.reshape(*gains.shape[:-2], -1)


def flat_assignment_index(
    channels: np.ndarray, levels: np.ndarray, num_subchannels: int, num_levels: int
) -> np.ndarray:
    """Index into :func:`received_power_table` of each device's (channel, level)."""
    k = np.arange(channels.shape[-1]) * (num_subchannels * num_levels)
    return k + channels * num_levels + levels


def received_power(
    table: np.ndarray,
    channels: np.ndarray,
    levels: np.ndarray,
    num_subchannels: int,
    num_levels: int,
) -> np.ndarray:
    """Received power ``s_k = p_k g_{k,c_k}`` (W) of assignments, shape like ``channels``.

    ``table`` is one realization's flat table (1-D), shared by every row of
    ``channels``, or one table per row (shape (M, K*N*L)) for batched environments.
    """
    idx = flat_assignment_index(channels, levels, num_subchannels, num_levels)
    if table.ndim == 1:
        return table.take(idx)
    return np.take_along_axis(table, idx, axis=-1)


def sic_sinr(
    received_w: np.ndarray,
    channels: np.ndarray,
    noise_w: np.ndarray,
    sic_residual: float = 0.0,
) -> np.ndarray:
    """SINR of every device under uplink NOMA with SIC (linear, unitless).

    Parameters
    ----------
    received_w : ndarray, shape (..., K)
        Received power ``p_k g_{k,c_k}`` of each device, W.
    channels : ndarray of int, shape (..., K)
        Sub-channel of each device.
    noise_w : ndarray, shape (N,), or float
        Noise power of each sub-channel (a float: the same on all), W.
    sic_residual : float
        Imperfect-SIC residual ``eps`` in [0, 1].

    Returns
    -------
    ndarray, shape (..., K)
    """
    s = received_w
    key = s * _tie_factor(s.shape[-1])  # decoding order: larger key decoded first
    kk = key[..., :, None]
    kj = key[..., None, :]
    same = channels[..., :, None] == channels[..., None, :]
    # row k, column j: j shares k's sub-channel and is decoded after k
    after = same & (kj < kk)
    # one assignment: a plain matrix-vector product; a batch: batched matmul
    interference = np.dot(after, s) if s.ndim == 1 else (after @ s[..., None])[..., 0]
    if sic_residual:
        # devices decoded before k leave an eps fraction: everything else on k's
        # sub-channel, i.e. (sub-channel load - own power - decoded after)
        load = subchannel_load_w(s, channels, int(channels.max()) + 1)
        before = np.take_along_axis(load, channels, axis=-1) - s - interference
        interference += sic_residual * np.maximum(before, 0.0)
    # a (N,) array per sub-channel, or one float / 0-d array (cheaper than np.ndim)
    per_channel = isinstance(noise_w, np.ndarray) and noise_w.ndim
    interference += noise_w.take(channels) if per_channel else noise_w
    return s / interference


def sic_sinr_device_major(
    received_w: np.ndarray,
    channels: np.ndarray,
    noise_w: np.ndarray | float,
    sic_residual: float = 0.0,
) -> np.ndarray:
    """:func:`sic_sinr` for many assignments stored device-major: one column each.

    The same formula (and tie-break) as :func:`sic_sinr`, arranged for thousands of
    assignments or environments at once: with the assignment axis last and contiguous,
    every ``K x K`` comparison runs over long rows, several times faster than the
    ``(..., K)`` layout for ``M`` in the hundreds and up (the batched vector env).

    Parameters
    ----------
    received_w : ndarray, shape (K, M)
        Received power of device ``k`` in assignment ``m``, W.
    channels : ndarray of int, shape (K, M)
        Sub-channel of device ``k`` in assignment ``m`` (fewer than 128 sub-channels).
    noise_w : ndarray, shape (N,), or float
        Noise power of each sub-channel (a float: the same on all), W.
    sic_residual : float
        Imperfect-SIC residual ``eps`` in [0, 1].

    Returns
    -------
    ndarray, shape (K, M)
    """
    s = received_w
    key = s * _tie_factor(s.shape[0])[:, None]  # decoding order: larger key decoded first
    # narrow and C-ordered: the K x K comparison is memory-bound
    c = np.ascontiguousarray(channels, dtype=np.int8)
    # [j, k, m]: j shares k's sub-channel in assignment m and is decoded after k
    after = c[:, None, :] == c[None, :, :]
    if sic_residual:
        same_load = np.einsum("jkm,jm->km", after, s)  # k's sub-channel load, k included
    after &= key[:, None, :] < key[None, :, :]
    interference = np.einsum("jkm,jm->km", after, s)  # sum over j, one pass
    if sic_residual:
        before = same_load - s - interference  # decoded before k: eps of each remains
        interference += sic_residual * np.maximum(before, 0.0)
    interference += noise_w.take(channels) if isinstance(noise_w, np.ndarray) else noise_w
    return s / interference


def rates_bps(sinr: np.ndarray, bandwidth_hz: float) -> np.ndarray:
    """Shannon rate ``B log2(1 + SINR)`` in bit/s."""
    out = sinr + 1.0
    np.log2(out, out=out)
    out *= bandwidth_hz
    return out


def subchannel_load_w(received_w: np.ndarray, channels: np.ndarray, num_subchannels: int):
    """Total received power on each sub-channel, W, shape (..., N)."""
    lead = received_w.shape[:-1]
    rows = int(np.prod(lead, dtype=np.int64))
    offset = (np.arange(rows) * num_subchannels).reshape(*lead, 1) if lead else 0
    totals = np.bincount(
        (channels + offset).ravel(),
        weights=received_w.ravel(),
        minlength=rows * num_subchannels,
    )
    return totals.reshape(*lead, num_subchannels)


def sum_rate_bps(
    received_w: np.ndarray,
    channels: np.ndarray,
    noise_w: np.ndarray,
    bandwidth_hz: float,
    sic_residual: float = 0.0,
) -> np.ndarray | float:
    """Sum rate in bit/s of each assignment, shape ``received_w.shape[:-1]``.

    With perfect SIC this uses the exact per-sub-channel identity
    ``sum_k r_k = B log2(1 + sum_k s_k / noise)``; otherwise it sums :func:`sic_sinr` rates.
    """
    if sic_residual:
        return rates_bps(sic_sinr(received_w, channels, noise_w, sic_residual), bandwidth_hz).sum(
            axis=-1
        )
    load = subchannel_load_w(received_w, channels, noise_w.shape[0])
    return bandwidth_hz * np.log2(1.0 + load / noise_w).sum(axis=-1)
