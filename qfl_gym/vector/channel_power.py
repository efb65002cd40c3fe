"""``qfl_gym/ChannelPower-v0`` as a native batched :class:`gymnasium.vector.VectorEnv`."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from qfl_gym.envs.observation import (
    ObservationLayout,
    channel_power_layout,
    rate_features,
    snr_feature_fn,
)
from qfl_gym.validation import check_bool, check_int
from qfl_gym.vector.uplink_base import UplinkVectorEnv, mask_info, reject_max_episode_steps
from qfl_gym.wireless.channel_batch import UplinkChannelBatch
from qfl_gym.wireless.config import UplinkConfig, uplink_config
from qfl_gym.wireless.problem import (
    STEP_INFO_KEYS,
    AllocationProblem,
    ProblemConstants,
    objective_constants,
    uplink_outcome,
)
from qfl_gym.wireless.secrecy import EavesdropperChannelBatch, secrecy_reward


class ChannelPowerVectorEnv(UplinkVectorEnv):
    """``num_envs`` copies of ChannelPower-v0 stepped together in batched numpy.

    ## Description

    The environment of :class:`~qfl_gym.envs.channel_power.ChannelPowerEnv` (same
    scenario arguments, spaces, rewards, observation layout and ``info`` keys),
    simulated for ``n`` independent cells at once: every step is a fixed number of
    numpy operations over arrays with an environment axis, so the cost per
    sub-environment falls as ``n`` grows. Create it with::

        gym.make_vec("qfl_gym/ChannelPower-v0", num_envs=n,
                     vectorization_mode="vector_entry_point", scenario="default")

    (or ``ChannelPowerVectorEnv(n, ...)``). It is the default ``make_vec`` mode of the
    id; ``vectorization_mode="sync"``/``"async"`` give gymnasium's generic vector envs.

    ## Equivalence with single environments

    Sub-environment ``i`` reset with seed ``s_i`` follows the trajectory of
    ``gym.make("qfl_gym/ChannelPower-v0").reset(seed=s_i)`` under the same actions:
    each keeps its own generator (``gymnasium.utils.seeding.np_random(s_i)``, as
    ``Env.np_random``) and draws exactly the uniforms the single environment draws
    (:mod:`qfl_gym.wireless.channel_batch`). Observations, rewards and ``info`` agree
    to floating-point rounding (relative 1e-12; the single channel runs the fading
    recursion of a block as one matrix product), terminations and truncations exactly,
    through any number of automatic resets.

    ## Spaces

    ``single_action_space`` is the single env's ``MultiDiscrete([N]*K + [L]*K)``;
    ``action_space`` its batch, actions of shape ``(n, 2K)``. ``single_observation_space``
    is the single env's ``Box`` of ``K*N + K + 1`` float32 features; observations have
    shape ``(n, K*N + K + 1)``. Rewards are float64 ``(n,)`` (sum rate in Mbit/s, minus
    the scenario's energy and outage penalties).

    ## Autoreset

    ``autoreset_mode`` (``metadata["autoreset_mode"]``) follows Gymnasium 1.x:

    * ``NEXT_STEP`` (default, as ``SyncVectorEnv``): the step that ends an episode returns
      its last observation with ``truncated=True``; the *next* ``step`` resets that
      sub-environment, ignores its action and returns the reset observation with reward
      0 and ``terminated = truncated = False``.
    * ``SAME_STEP``: a sub-environment that ends is reset within the same ``step``; the
      returned observation is the reset one, the last observation and info of the
      episode are in ``info["final_obs"]`` / ``info["final_info"]`` (with ``_final_obs``
      / ``_final_info`` masks). This is the convention of stable-baselines3 (see
      :mod:`qfl_gym.vector.sb3`).
    * ``DISABLED``: no automatic reset; call ``reset(options={"reset_mask": mask})``.

    ChannelPower-v0 never terminates; episodes are truncated after ``horizon`` steps,
    so with a common reset all sub-environments end on the same step.

    ## Info

    Batched as ``SyncVectorEnv`` does: each key maps to an array with a leading
    ``n`` axis and a boolean mask ``info["_key"]`` of the sub-environments that report
    it. After a step: ``rate_bps`` (n, K), ``sinr_db`` (n, K), ``sum_rate_bps`` (n,),
    ``energy_j`` (n, K), ``outage`` (n, K). With ``include_problem=True``, also
    ``problem``: an object array of the next decision's
    :class:`~qfl_gym.wireless.problem.AllocationProblem` per sub-environment (as the
    single env's ``info["problem"]``; off by default because building ``n`` objects per
    step costs more than the step). :meth:`problem` builds one on demand and
    :attr:`gains` holds the current gains ``(n, K, N)`` of every sub-environment.

    ## Seeding

    ``reset(seed=s)`` seeds sub-environment ``i`` with ``s + i``; ``reset(seed=[s_0, ...,
    s_{n-1}])`` seeds each (``None`` entries draw fresh entropy). Unseeded resets keep
    each sub-environment's generator, as ``Env.reset`` does.

    ## Arguments

    ``num_envs`` (int >= 1), ``scenario`` and ``**overrides`` as for ChannelPower-v0,
    ``autoreset_mode`` (``AutoresetMode`` or its value string), ``include_problem``
    (bool), ``num_threads`` (threads drawing the fading innovations, default 1; worth
    2 on an otherwise idle 2-core machine at hundreds of envs; results do not depend on
    it). ``render_mode`` must be None.

    ## Eavesdroppers

    With eavesdroppers (preset ``secrecy``) every sub-environment's eavesdropper
    channels are one :class:`~qfl_gym.wireless.secrecy.EavesdropperChannelBatch`; the
    ``info`` keys and the ``secrecy_reward`` are the single env's.

    ## Example

    >>> import gymnasium as gym
    >>> import qfl_gym
    >>> envs = gym.make_vec("qfl_gym/ChannelPower-v0", num_envs=8, scenario="small")
    >>> type(envs).__name__
    'ChannelPowerVectorEnv'
    >>> obs, info = envs.reset(seed=0)
    >>> obs.shape
    (8, 13)
    >>> obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())
    >>> rewards.shape, info["sum_rate_bps"].shape
    ((8,), (8,))

    ## Version History

    * v0: initial release; eavesdroppers supported later.
    """

    def __init__(
        self,
        num_envs: int = 1,
        scenario: str | UplinkConfig = "default",
        *,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        include_problem: bool = False,
        num_threads: int = 1,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        reject_max_episode_steps(overrides, "horizon")
        self.include_problem = check_bool("include_problem", include_problem)
        self._num_threads = check_int("num_threads", num_threads, low=1)
        super().__init__(
            num_envs, uplink_config(scenario, **overrides), render_mode, autoreset_mode
        )
        n = self.num_envs
        self._t = np.zeros(n, dtype=np.int64)
        self._rate_features = np.zeros((n, self.num_devices))  # 0 after reset
        self._none_ended = np.zeros(n, dtype=bool)
        self._none_ended.flags.writeable = False
        self._autoreset = self._none_ended
        self._any_autoreset = False

    def _build(self) -> None:
        cfg, n = self.config, self.num_envs
        self.channel = UplinkChannelBatch(
            cfg, n, features=snr_feature_fn(cfg), num_threads=self._num_threads
        )
        #: every sub-environment's passive eavesdroppers (None: none configured)
        self.eavesdroppers = EavesdropperChannelBatch(cfg, n) if cfg.num_eavesdroppers else None
        self._moving = bool(cfg.mobility) and cfg.speed_mps > 0.0

    def _make_layout(self) -> ObservationLayout:
        return channel_power_layout(self.num_devices, self.num_subchannels)

    def _make_constants(self) -> ProblemConstants:
        return objective_constants(self.config.objective, self.config)

    # ------------------------------------------------------------------ API
    def _reset_selected(self, idx: np.ndarray, masked: bool) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset sub-environments ``idx``; info: ``problem`` (if ``include_problem``) and
        ``eavesdropper_gains`` (with eavesdroppers), with masks."""
        gains = self._reset_rows(idx, whole=not masked)
        if self._any_autoreset:
            self._autoreset = self._autoreset.copy()
            self._autoreset[idx] = False
            self._any_autoreset = bool(self._autoreset.any())
        info: dict[str, Any] = {}
        if self.include_problem:
            self._add_problems(info, gains, idx if masked else None)
        self._add_eavesdropper_gains(info, idx)
        return self._observe(gains), info

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-environment with ``actions`` (n, 2K); see the class docstring."""
        if self._needs_reset:
            raise ValueError("call reset() before step()")
        mode = self.autoreset_mode
        pending = self._autoreset if self._any_autoreset else None
        if pending is not None and mode is AutoresetMode.DISABLED:
            ended = np.flatnonzero(pending).tolist()
            raise ValueError(
                f"sub-environments {ended} ended; with autoreset_mode=DISABLED call "
                "reset(options={'reset_mask': mask}) before stepping them again"
            )
        if pending is not None:  # NEXT_STEP: those ignore their action and reset
            actions = np.array(actions, copy=True)
            if actions.shape == (self.num_envs, self.codec.shape[0]):
                actions[pending] = 0
        a = self._validate(actions)
        K = self.num_devices
        out = uplink_outcome(self.channel.gains, a[:, :K], a[:, K:], self._constants)
        reward = out["reward"]
        rate = out["rate_bps"]
        info = self._step_info(out)
        eves = self.eavesdroppers
        if eves is not None:  # secrecy of this step (eavesdroppers' current channels)
            secrecy = eves.outcome(a[:, :K], out["power_w"], rate)
            if self.config.secrecy_reward:
                reward = secrecy_reward(out, secrecy, self._constants)
            self._add_masked(info, secrecy)
        if pending is None:
            self._t += 1
            gains = self.channel.step()
        else:
            active = ~pending
            reward[pending] = 0.0
            self._t[active] += 1
            self.channel.step(skip=pending)
        if eves is not None:
            eves.step(self.channel.positions_m if self._moving else None, skip=pending)
        self._rate_features = rate_features(rate, self.config.bandwidth_hz)
        truncated = self._t >= self.config.horizon
        terminated = np.zeros(self.num_envs, dtype=bool)
        if pending is not None:
            idx = np.flatnonzero(pending)
            gains = self._reset_rows(idx, whole=False)
            truncated[idx] = False
            info = mask_info(info, ~pending)
        obs = self._observe(gains)
        if self.include_problem:
            self._add_problems(info, gains, None)
        # ChannelPower-v0 never terminates: an episode ends by truncation
        if not truncated.any():
            self._autoreset, self._any_autoreset = self._none_ended, False
        elif mode is AutoresetMode.SAME_STEP:
            obs, info = self._reset_same_step(truncated.copy(), obs, info)
        else:
            self._autoreset, self._any_autoreset = truncated.copy(), True
        self._add_eavesdropper_gains(info, None)
        return obs, reward, terminated, truncated, info

    # -------------------------------------------------------------- helpers
    def problem(self, index: int) -> AllocationProblem:
        """The next decision's :class:`AllocationProblem` of sub-environment ``index``."""
        i = check_int("index", index, low=0, high=self.num_envs - 1)
        return AllocationProblem._trusted(self.channel.gains[i], self._constants)

    # ------------------------------------------------------------ internals
    def _step_info(self, out: dict[str, Any]) -> dict[str, Any]:
        """The step's ``info``: every outcome key with its (all-True) mask."""
        return self._add_masked({}, {key: out[key] for key in STEP_INFO_KEYS})

    def _add_masked(self, info: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        """Add ``values`` (one row per sub-environment) to ``info``, each with an all-True
        mask of its own."""
        masks = np.ones((len(values), self.num_envs), dtype=bool)
        for (key, value), mask in zip(values.items(), masks, strict=True):
            info[key] = value
            info[f"_{key}"] = mask
        return info

    def _add_eavesdropper_gains(self, info: dict[str, Any], idx: np.ndarray | None) -> None:
        """``info["eavesdropper_gains"]`` of sub-environments ``idx`` (all if None)."""
        if self.eavesdroppers is None:
            return
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[slice(None) if idx is None else idx] = True
        info["eavesdropper_gains"] = self.eavesdroppers.gains
        info["_eavesdropper_gains"] = mask

    def _reset_rows(self, idx: np.ndarray, whole: bool) -> np.ndarray:
        """Reset sub-environments ``idx`` (channel, eavesdroppers, state); new gains."""
        generators = [self._rngs[i] for i in idx.tolist()]
        gains = self.channel.reset(generators, None if whole else idx)
        if self.eavesdroppers is not None:  # own streams, spawned: draw nothing from rng
            self.eavesdroppers.reset(
                [rng.spawn(1)[0] for rng in generators],
                self.channel.positions_m,
                None if whole else idx,
            )
        self._t[idx] = 0
        self._rate_features[idx] = 0.0
        return gains

    def _observe(self, gains: np.ndarray) -> np.ndarray:
        n, K, N = gains.shape
        obs = np.empty((n, self.observation_layout.size), dtype=np.float32)
        obs[:, : K * N] = self.channel.features.reshape(n, K * N)  # the layout's order
        obs[:, K * N : K * N + K] = self._rate_features
        np.divide(self._t, self.config.horizon, out=obs[:, -1])  # t / horizon, as float32
        return obs

    def _add_problems(self, info: dict[str, Any], gains: np.ndarray, idx: Any) -> None:
        n = self.num_envs
        problems = np.full(n, None, dtype=object)
        rows = range(n) if idx is None else np.asarray(idx).tolist()
        const = self._constants
        for i in rows:
            problems[i] = AllocationProblem._trusted(gains[i], const)
        info["problem"] = problems
        mask = np.zeros(n, dtype=bool)
        mask[list(rows)] = True
        info["_problem"] = mask

    def _reset_same_step(
        self, done: np.ndarray, obs: np.ndarray, info: dict[str, Any]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """SAME_STEP autoreset of the sub-environments in ``done``."""
        idx = np.flatnonzero(done)
        info, finals = self._split_for_same_step(done, obs, info)
        gains = self._reset_rows(idx, whole=False)
        obs = self._observe(gains)
        if self.include_problem:
            self._add_problems(info, gains, None)
        info.update(finals)
        self._autoreset, self._any_autoreset = self._none_ended, False
        return obs, info
