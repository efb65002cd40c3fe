"""Observation features shared by the environments (one scaling, documented once).

- Channel state: the SNR device ``k`` would get alone on sub-channel ``n`` at full power,
  in dB, centred and scaled: ``(10 log10(p_max g_kn / noise) - 20) / 20``. Typical
  values lie in [-2, 3]; the SNR is bounded to [-300, 340] dB so the feature lies in
  [-16, 16] and is never NaN or inf.
- Rates: spectral efficiency ``r_k / B`` (bit/s/Hz) divided by 10, capped at 12
  (120 bit/s/Hz, an SINR of 361 dB: only absurd configurations reach it).
"""

from __future__ import annotations

import numpy as np

SNR_CENTER_DB = 20.0
SNR_SCALE_DB = 20.0
SE_SCALE = 10.0
SNR_FEATURE_BOUND = 16.0
RATE_FEATURE_BOUND = 12.0
_SNR_MIN = 1e-30


def snr_features(gains: np.ndarray, scale: float) -> np.ndarray:
    """Normalized full-power SNR in dB, same shape as ``gains``, in [-16, 16].

    ``scale`` is ``p_max / noise`` (1/W times W), so ``gains * scale`` is the SNR.
    """
    snr_db = np.log10(np.maximum(gains * scale, _SNR_MIN))
    snr_db *= 10.0 / SNR_SCALE_DB
    snr_db -= SNR_CENTER_DB / SNR_SCALE_DB
    return np.minimum(snr_db, SNR_FEATURE_BOUND, out=snr_db)


def rate_features(rates_bps: np.ndarray, bandwidth_hz: float) -> np.ndarray:
    """Spectral efficiency / 10, same shape as ``rates_bps``."""
    return np.minimum(rates_bps * (1.0 / (bandwidth_hz * SE_SCALE)), RATE_FEATURE_BOUND)


def channel_observation_bounds(
    num_devices: int, num_subchannels: int, extra_low: list[float], extra_high: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` float32 bounds: SNR features (K*N), rate features (K), then extras."""
    kn = num_devices * num_subchannels
    low = np.concatenate(
        [np.full(kn, -SNR_FEATURE_BOUND), np.zeros(num_devices), np.asarray(extra_low, float)]
    )
    high = np.concatenate(
        [
            np.full(kn, SNR_FEATURE_BOUND),
            np.full(num_devices, RATE_FEATURE_BOUND),
            np.asarray(extra_high, float),
        ]
    )
    return low.astype(np.float32), high.astype(np.float32)
