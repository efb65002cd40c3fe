"""Every device an agent: a PettingZoo ``ParallelEnv`` over any qfl_gym environment."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

try:
    from pettingzoo import ParallelEnv
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "qfl_gym.multiagent needs PettingZoo: pip install 'qfl-gym[multiagent]'"
    ) from err

from qfl_gym.config_fields import UnexpectedKeywordError, unexpected_keyword_message
from qfl_gym.envs.action import ActionCodec
from qfl_gym.envs.observation import (
    RATE_FEATURE_BOUND,
    SNR_FEATURE_BOUND,
    rate_features,
    snr_features,
)
from qfl_gym.validation import check_choice
from qfl_gym.wireless.problem import AllocationProblem

REWARD_MODES = ("team", "individual")


def agent_name(device: int) -> str:
    """The agent id of device ``k``: ``"device_k"``."""
    return f"device_{device}"


class DeviceParallelEnv(ParallelEnv):
    """Each of the K devices chooses its own sub-channel and power level.

    ## Description

    Wraps a single-agent qfl_gym environment (``qfl_gym/ChannelPower-v0``, and any id
    with the same action encoding and ``info`` contract, such as ``qfl_gym/QFL-v0``)
    as a PettingZoo ``ParallelEnv``. Agent ``"device_k"`` acts for device ``k``; the
    joint action of all agents is one step of the wrapped environment.

    ## Agents

    ``possible_agents = ["device_0", ..., "device_{K-1}"]``; all are live for the
    whole episode and leave together when it ends (``agents`` is then empty).

    ## Action Space (per agent)

    ``MultiDiscrete([N, L])``: ``(sub-channel, power-level index)`` of the device,
    levels ascending in power. A missing agent, a wrong shape or an out-of-range entry
    raises ``ValueError``.

    ## Observation Space (per agent, local information only)

    ``Box(float32, (N + 3,))``:

    ==========  ==============================================================
    index       meaning
    ==========  ==============================================================
    ``0..N-1``  the device's full-power SNR on each sub-channel, the feature of
                :func:`qfl_gym.envs.observation.snr_features` (in [-16, 16])
    ``N``       its rate in the previous step, ``r_k / B / 10`` (0 after reset)
    ``N+1``     1.0 if its previous transmission was delivered, else 0.0: from
                ``info["delivered"]`` when the environment reports it (QFL-v0),
                otherwise "not in outage" (``rate >= min_rate_bps``,
                ChannelPower-v0); 0 after reset
    ``N+2``     the broadcast global loss, ``info["global_loss"]`` (QFL-v0); 0 for
                environments without one (ChannelPower-v0)
    ==========  ==============================================================

    ``state()`` returns the wrapped environment's full observation
    (``state_space``), for centralized critics.

    ## Rewards

    ``reward="team"`` (default): every agent receives the wrapped environment's
    reward. ``reward="individual"``: device ``k`` receives its own share of the radio
    objective, ``r_k / 1e6 - energy_weight * E_k - outage_penalty * [r_k < r_min]``
    (Mbit/s); on ChannelPower-v0 the individual rewards sum to the team reward. When
    the wrapped environment's reward is the secrecy sum rate (ChannelPower-v0 with
    ``secrecy_reward=True``, QFL-v0 with ``reward="secrecy-sum-rate"``), ``r_k`` is
    the device's secrecy rate ``info["secrecy_rate_bps"]``, ``[r_k - r_k,eve]^+``, so
    on ChannelPower-v0 the shares still sum to the team reward.

    ## Info (per agent)

    ``rate_bps``, ``sinr_db``, ``energy_j`` (floats) and ``delivered`` (bool) of the
    device's last transmission (empty after reset). The decision instance shared by
    all agents is :attr:`problem`.

    ## Arguments

    ``DeviceParallelEnv(env="qfl_gym/ChannelPower-v0", reward="team",
    render_mode=None, **env_kwargs)``: ``env`` is an id (made with ``gym.make(env,
    **env_kwargs)``) or an environment instance.

    ## Example

    >>> from qfl_gym.multiagent import DeviceParallelEnv
    >>> env = DeviceParallelEnv("qfl_gym/ChannelPower-v0", scenario="small")
    >>> observations, infos = env.reset(seed=0)
    >>> env.agents
    ['device_0', 'device_1', 'device_2', 'device_3']
    >>> actions = {agent: env.action_space(agent).sample() for agent in env.agents}
    >>> observations, rewards, terminations, truncations, infos = env.step(actions)
    >>> observations["device_0"].shape  # own SNR on N=2 sub-channels + 3 features
    (5,)
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "qfl_gym_devices_v0",
        "render_modes": ["ansi"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        env: str | gym.Env = "qfl_gym/ChannelPower-v0",
        *,
        reward: str = "team",
        render_mode: str | None = None,
        **env_kwargs: Any,
    ) -> None:
        self.reward_mode = check_choice("reward", reward, REWARD_MODES)
        if isinstance(env, str):
            import qfl_gym  # noqa: F401  (registers the ids, e.g. on a Ray worker)

            env = gym.make(env, render_mode=render_mode, **env_kwargs)
        elif env_kwargs:
            raise UnexpectedKeywordError(
                unexpected_keyword_message(
                    "DeviceParallelEnv.__init__", list(env_kwargs), ("reward", "render_mode")
                )
                + " (scenario keywords are only accepted with an env id, not with an "
                "environment instance)"
            )
        codec = getattr(env.unwrapped, "codec", None)
        if not isinstance(codec, ActionCodec):
            raise ValueError(
                "DeviceParallelEnv needs a qfl_gym environment (with a sub-channel/power "
                f"action codec); got {type(env.unwrapped).__name__}"
            )
        self.env = env
        self.codec = codec
        self.render_mode = render_mode if render_mode is not None else env.render_mode
        K, N, L = codec.num_devices, codec.num_subchannels, codec.num_power_levels
        self.possible_agents = [agent_name(k) for k in range(K)]
        self.agents: list[str] = []
        low = np.array([-SNR_FEATURE_BOUND] * N + [0.0, 0.0, 0.0], dtype=np.float32)
        high = np.array([SNR_FEATURE_BOUND] * N + [RATE_FEATURE_BOUND, 1.0, np.inf], np.float32)
        self.observation_spaces = {
            a: spaces.Box(low, high, dtype=np.float32) for a in self.possible_agents
        }
        self.action_spaces = {a: spaces.MultiDiscrete([N, L]) for a in self.possible_agents}
        self.state_space = env.observation_space
        #: individual shares are of the secrecy rate (the env rewards the secrecy sum rate)
        self.secrecy_shares = _rewards_secrecy(env)
        self._obs = np.zeros((K, N + 3), dtype=np.float32)
        self._state: Any = None
        self._problem: AllocationProblem | None = None

    # ------------------------------------------------------------------ API
    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.MultiDiscrete:
        return self.action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        state, info = self.env.reset(seed=seed, options=options)
        self._state = state
        self.agents = list(self.possible_agents)
        self._obs[:, -3:] = 0.0
        self._obs[:, -1] = _global_loss(info)
        self._set_problem(info)
        return self._agent_obs(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise ValueError("the episode has ended: call reset() before step()")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"actions must hold one action per live agent; missing {missing}")
        K = len(self.possible_agents)
        joint = np.empty((K, 2), dtype=np.int64)
        for k, agent in enumerate(self.possible_agents):
            a = np.asarray(actions[agent])
            if a.shape != (2,):
                raise ValueError(
                    f"action of {agent} must be (sub-channel, power level), shape (2,); "
                    f"got {actions[agent]!r}"
                )
            joint[k] = a
        action = self.codec.encode(joint[:, 0], joint[:, 1])
        problem = self._problem
        state, reward, terminated, truncated, info = self.env.step(action)
        self._state = state
        if "rate_bps" not in info:
            raise ValueError(
                "DeviceParallelEnv needs info['rate_bps'] (each device's rate) from the "
                "wrapped environment's step()"
            )
        rate = np.asarray(info["rate_bps"], dtype=np.float64)
        delivered = _delivered(info, rate, problem)
        self._obs[:, -3] = rate_features(rate, problem.bandwidth_hz)
        self._obs[:, -2] = delivered
        self._obs[:, -1] = _global_loss(info)
        self._set_problem(info)
        agents = self.agents
        if self.reward_mode == "team":
            rewards = dict.fromkeys(agents, float(reward))
        else:
            share = self._individual_rewards(rate, info, problem, self.secrecy_shares)
            rewards = {a: float(share[k]) for k, a in enumerate(agents)}
        sinr_db = np.asarray(info.get("sinr_db", np.full(K, np.nan)), dtype=float)
        energy = np.asarray(info.get("energy_j", np.full(K, np.nan)), dtype=float)
        infos = {
            a: {
                "rate_bps": float(rate[k]),
                "sinr_db": float(sinr_db[k]),
                "energy_j": float(energy[k]),
                "delivered": bool(delivered[k]),
            }
            for k, a in enumerate(agents)
        }
        obs = self._agent_obs()
        terminations = dict.fromkeys(agents, bool(terminated))
        truncations = dict.fromkeys(agents, bool(truncated))
        if terminated or truncated:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self, mode: str | None = None) -> str | None:
        """The wrapped environment's ``ansi`` text (None for other render modes).

        ``mode`` is accepted for RLlib's ``ParallelPettingZooEnv``, which calls
        ``render(its render_mode)``: None or this env's own ``render_mode``.
        """
        if mode is not None and mode != self.render_mode:
            raise ValueError(
                f"render mode {mode!r} is not this env's render_mode {self.render_mode!r}; "
                "set render_mode when creating DeviceParallelEnv"
            )
        if self.render_mode != "ansi":
            return None
        return self.env.render()

    def state(self) -> np.ndarray:
        """The wrapped environment's current observation (global state)."""
        if self._state is None:
            raise ValueError("call reset() before state()")
        return copy.deepcopy(self._state)

    def close(self) -> None:
        self.env.close()

    @property
    def problem(self) -> AllocationProblem | None:
        """The wrapped environment's ``info["problem"]`` for the next decision."""
        return self._problem

    # ------------------------------------------------------------ internals
    def _set_problem(self, info: dict[str, Any]) -> None:
        problem = info.get("problem")
        if not isinstance(problem, AllocationProblem):
            raise ValueError(
                "DeviceParallelEnv needs info['problem'] (an AllocationProblem) from the "
                "wrapped environment's reset() and step()"
            )
        self._problem = problem
        scale = problem.power_levels_w[-1] / problem.noise_w  # (N,) full-power SNR per W
        self._obs[:, :-3] = snr_features(problem.gains, scale)

    def _agent_obs(self) -> dict[str, np.ndarray]:
        return {a: self._obs[k].copy() for k, a in enumerate(self.agents)}

    @staticmethod
    def _individual_rewards(
        rate: np.ndarray, info: dict[str, Any], problem: AllocationProblem, secrecy: bool
    ) -> np.ndarray:
        if secrecy:
            if "secrecy_rate_bps" not in info:
                raise ValueError(
                    "reward='individual' on a secrecy-rate reward needs "
                    "info['secrecy_rate_bps'] from the wrapped environment's step()"
                )
            share = np.asarray(info["secrecy_rate_bps"], dtype=np.float64) * 1e-6
        else:
            share = rate * 1e-6
        if problem.energy_weight:
            share = share - problem.energy_weight * np.asarray(info["energy_j"])
        if problem.outage_penalty:
            share = share - problem.outage_penalty * (rate < problem.min_rate_bps)
        return share


def _rewards_secrecy(env: gym.Env) -> bool:
    """Whether ``env``'s reward is the secrecy sum rate rather than the sum rate."""
    unwrapped = env.unwrapped
    if getattr(getattr(unwrapped, "config", None), "secrecy_reward", False):  # ChannelPower-v0
        return True
    return getattr(getattr(unwrapped, "scenario", None), "reward", None) == "secrecy-sum-rate"


def _delivered(info: dict[str, Any], rate: np.ndarray, problem: AllocationProblem) -> np.ndarray:
    """Whether each device's update arrived: ``info["delivered"]`` or "not in outage"."""
    if "delivered" in info:
        return np.asarray(info["delivered"], dtype=bool)
    if "outage" in info:
        return ~np.asarray(info["outage"], dtype=bool)
    return rate >= problem.min_rate_bps


def _global_loss(info: dict[str, Any]) -> float:
    """The broadcast global loss, 0.0 if the environment has none."""
    return float(info.get("global_loss", 0.0))
