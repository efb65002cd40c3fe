"""``qfl_gym/ChannelPower-v0``: per-slot sub-channel and power allocation on a NOMA uplink."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from qfl_gym.envs.allocation_env import AllocationEnv
from qfl_gym.envs.observation import (
    ObservationLayout,
    channel_power_layout,
    rate_features,
    snr_feature_fn,
)
from qfl_gym.wireless.channel import UplinkChannel
from qfl_gym.wireless.config import UplinkConfig, uplink_config
from qfl_gym.wireless.problem import (
    STEP_INFO_KEYS,
    ProblemConstants,
    objective_constants,
    uplink_outcome,
)
from qfl_gym.wireless.secrecy import EavesdropperChannel, secrecy_reward


class ChannelPowerEnv(AllocationEnv):
    """Choose every device's sub-channel and transmit power on a shared NOMA uplink.

    ## Description

    ``K`` devices in one cell upload to a base station over ``N`` sub-channels. Each
    step (a slot of ``slot_s`` seconds) the agent assigns every device one sub-channel
    and one of ``L`` transmit-power levels. Devices on the same sub-channel share it by
    power-domain NOMA: the base station decodes them with successive interference
    cancellation (SIC) in descending order of received power, so each device is
    interfered by those decoded after it (and by an ``sic_residual`` fraction of those
    before it). Channels fade (Rayleigh or Rician, Gauss-Markov in time with Jakes'
    correlation) on top of 3GPP path loss and log-normal shadowing. The formulas are in
    :mod:`qfl_gym.wireless.noma` and :mod:`qfl_gym.wireless.channel`.

    ## Action Space

    ``MultiDiscrete([N]*K + [L]*K)``: entries ``0..K-1`` are each device's sub-channel,
    entries ``K..2K-1`` each device's power-level index (ascending power, see
    ``config.levels_dbm``). Use :meth:`encode_action` / :meth:`decode_action`. A
    wrong-shape, non-integer or out-of-range action raises ``ValueError``.

    ## Observation Space

    ``Box(low, high, (K*N + K + 1,), float32)`` (bounds in
    :mod:`qfl_gym.envs.observation`):

    ============================  =====================================================
    index                         meaning
    ============================  =====================================================
    ``0 .. K*N-1``                full-power SNR of device k on sub-channel n (row-major
                                  k, n), ``(SNR_dB - 20) / 20``, in [-16, 16]
    ``K*N .. K*N+K-1``            each device's rate in the previous step, ``r_k/B/10``
                                  in [0, 12] (0 after reset)
    ``K*N+K``                     elapsed fraction of the episode, ``t / horizon``
    ============================  =====================================================

    ## Rewards

    The allocation objective of the step (``objective``, default ``"sum-rate"``): the
    sum rate in Mbit/s, minus ``energy_weight`` per joule transmitted and
    ``outage_penalty`` per device below ``min_rate_bps`` (both 0 by default).
    ``objective="deliveries"`` rewards the expected number of updates of
    ``update_bits`` delivered within the slot (plus 0.01 x the sum rate),
    ``"round-time"`` the slowest device's rate, ``"min-rate"`` the sum rate minus a
    penalty per Mbit/s a device falls short of ``min_rate_bps``
    (:mod:`qfl_gym.wireless.problem`). The reward of any assignment is
    ``info["problem"].reward(channels, levels)``: environments and optimizer agents
    share this one definition. With ``secrecy_reward=True`` (preset ``secrecy``) the
    secrecy sum rate ``sum_k [r_k - r_k,eve]^+`` replaces the sum rate (same
    penalties).

    ## Starting State

    Devices are dropped uniformly by area in the annulus ``[min_distance_m,
    cell_radius_m]``; shadowing and fading are drawn afresh. All randomness comes from
    ``reset(seed=...)``.

    ## Episode End

    No termination. Truncation after ``horizon`` steps (100 by default).

    ## Info

    Every ``info`` holds ``problem``, an immutable
    :class:`~qfl_gym.wireless.problem.AllocationProblem` for the *next* decision
    (``gains`` (K, N), ``noise_w`` (N,), ``power_levels_w`` (L,), ``bandwidth_hz``,
    ``sic_residual``, vectorized ``sum_rate(channels, power_levels)``). After a step it
    also holds, for the action just taken: ``rate_bps`` (K,), ``sinr_db`` (K,),
    ``sum_rate_bps`` (float), ``energy_j`` (K,, ``p_k * slot_s``), ``outage`` (K,) bool.

    With eavesdroppers (``num_eavesdroppers`` or ``eavesdropper_positions_m``;
    :mod:`qfl_gym.wireless.secrecy`) every ``info`` also holds ``eavesdropper_gains``
    (E, K, N) for the next decision, and after a step ``eavesdropper_rate_bps`` (K,,
    the strongest eavesdropper's rate per device), ``secrecy_rate_bps`` (K,,
    ``[r_k - r_k,eve]^+``) and ``secrecy_sum_rate_bps``. Without eavesdroppers these
    keys are absent. The observation does not change: the eavesdroppers are passive
    and their channels unknown to the devices.

    ## Arguments

    ``gym.make("qfl_gym/ChannelPower-v0", scenario="default", **overrides)``:
    ``scenario`` names a preset of :data:`qfl_gym.wireless.config.UPLINK_PRESETS`
    (``default``, ``small``, ``imperfect-sic``, ``case-study``, ``dense-mobile``,
    ``secrecy``) or is an
    :class:`~qfl_gym.wireless.config.UplinkConfig`; ``overrides`` replace any of its
    fields (``num_devices=20``, ``fading="rician"``, ...). ``render_mode="ansi"`` returns
    a text table of the last assignment; ``"rgb_array"`` an image: one row per device,
    one column per sub-channel, grey level = full-power SNR, the chosen sub-channel in
    red (brighter = higher power).

    ## Example

    >>> import gymnasium as gym
    >>> import qfl_gym
    >>> env = gym.make("qfl_gym/ChannelPower-v0", scenario="small")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape  # K*N + K + 1 with K=4 devices on N=2 sub-channels
    (13,)
    >>> action = env.unwrapped.encode_action([0, 1, 0, 1], [1, 1, 1, 1])
    >>> obs, reward, terminated, truncated, info = env.step(action)
    >>> info["rate_bps"].shape, bool(reward > 0)
    ((4,), True)

    ## Version History

    * v0: initial release; ``objective`` option added later (default unchanged, same
      trajectories).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 10}

    def __init__(
        self,
        scenario: str | UplinkConfig = "default",
        render_mode: str | None = None,
        include_problem: bool = True,
        **overrides: Any,
    ) -> None:
        super().__init__(uplink_config(scenario, **overrides), render_mode, include_problem)
        layout = self.observation_layout
        # observation buffer; slices (not views: views would not survive deepcopy)
        self._obs = layout.new()
        self._gain_slice = layout.slice("snr")
        self._rate_slice = layout.slice("rate")
        self._t = 0
        self._last_action: np.ndarray | None = None

    def _build(self) -> None:
        cfg = self.config
        self.channel = UplinkChannel(cfg, features=snr_feature_fn(cfg))
        #: passive eavesdroppers (None: none configured, nothing extra in step)
        self.eavesdroppers = EavesdropperChannel(cfg) if cfg.num_eavesdroppers else None

    def _make_layout(self) -> ObservationLayout:
        return channel_power_layout(self.config.num_devices, self.config.num_subchannels)

    def _make_constants(self) -> ProblemConstants:
        return objective_constants(self.config.objective, self.config)

    # ------------------------------------------------------------------ API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        self._last_action = None
        gains = self.channel.reset(self.np_random)
        self._set_problem(gains)
        self._obs[self._rate_slice] = 0.0
        info = {"problem": self._problem}
        if self.eavesdroppers is not None:
            # own stream, spawned: draws nothing from np_random (same legitimate channel)
            info["eavesdropper_gains"] = self.eavesdroppers.reset(
                self.np_random.spawn(1)[0], self.channel.positions_m
            )
        return self._observation(), self._info(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = self.codec.validate(action)
        K = self.config.num_devices
        out = uplink_outcome(self._problem.gains, a[:K], a[K:], self._constants)
        reward = out["reward"]
        info = {key: out[key] for key in STEP_INFO_KEYS}
        self._last_action = a
        self._t += 1
        self._obs[self._rate_slice] = rate_features(info["rate_bps"], self.config.bandwidth_hz)
        gains = self.channel.step()
        self._set_problem(gains)
        info["problem"] = self._problem
        if self.eavesdroppers is not None:
            reward = self._secrecy_step(info, out, reward)
        truncated = self._t >= self.config.horizon
        return self._observation(), reward, False, truncated, self._info(info)

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "rgb_array":
            return allocation_image(self.channel.features, self._last_action, self.config)
        if self.render_mode != "ansi":
            return None
        cfg = self.config
        lines = [f"t={self._t}/{cfg.horizon}  K={cfg.num_devices} N={cfg.num_subchannels}"]
        if self._last_action is None:
            lines.append("(no action yet)")
        else:
            ch, lv = self.decode_action(self._last_action)
            for n in range(cfg.num_subchannels):
                devs = [f"{k}@{cfg.levels_dbm[lv[k]]:.1f}dBm" for k in np.flatnonzero(ch == n)]
                lines.append(f"sub-channel {n}: {' '.join(devs) or '-'}")
        return "\n".join(lines)

    # ------------------------------------------------------------ internals
    def _secrecy_step(self, info: dict[str, Any], out: dict[str, Any], reward: float) -> float:
        """Secrecy of the action just taken (eavesdroppers' current channels), then fade
        them to the next slot. Returns the reward (the secrecy one if configured)."""
        eve = self.eavesdroppers
        K = self.config.num_devices
        secrecy = eve.outcome(self._last_action[:K], out["power_w"], out["rate_bps"])
        info.update(secrecy)
        if self.config.secrecy_reward:
            reward = float(secrecy_reward(out, secrecy, self._constants))
        info["eavesdropper_gains"] = eve.step(
            self.channel.positions_m if self.channel.model.mobile else None
        )
        return reward

    def _observation(self) -> np.ndarray:
        self._obs[self._gain_slice] = self.channel.features.ravel()
        self._obs[-1] = self._t / self.config.horizon
        return self._obs.copy()


def allocation_image(
    snr_features: np.ndarray, action: np.ndarray | None, config: UplinkConfig, cell: int = 12
) -> np.ndarray:
    """RGB image (K*cell, N*cell, 3) uint8 of channel quality and the last assignment."""
    K, N = config.num_devices, config.num_subchannels
    grey = np.clip((np.asarray(snr_features).reshape(K, N) + 1.0) / 3.0, 0.0, 1.0)
    img = np.repeat(grey[:, :, None], 3, axis=2) * 200.0
    if action is not None:
        ch, lv = action[:K], action[K:]
        rows = np.arange(K)
        img[rows, ch] = 0.0
        img[rows, ch, 0] = 105.0 + 150.0 * (lv + 1) / config.num_power_levels
    img = np.repeat(np.repeat(img, cell, axis=0), cell, axis=1)
    return img.astype(np.uint8)
