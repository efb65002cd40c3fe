"""Base of the single envs whose action is a channel/power allocation.

ChannelPower-v0 and QFL-v0 share the action encoding (:class:`ActionCodec`), the
decision instance (:class:`AllocationProblem`) exposed as ``env.problem`` and
``info["problem"]``, and the order in which an environment is built. This class owns
that order (configuration -> spaces -> state, as highway-env's ``AbstractEnv`` does) and
calls the subclass's hooks; a subclass cannot forget a part.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from qfl_gym.envs.action import ActionCodec
from qfl_gym.envs.observation import ObservationLayout
from qfl_gym.validation import check_bool
from qfl_gym.wireless.config import UplinkConfig
from qfl_gym.wireless.problem import AllocationProblem, ProblemConstants


def check_render_mode(env_class: type, render_mode: str | None) -> str | None:
    """``render_mode`` if ``env_class.metadata["render_modes"]`` lists it (or None)."""
    modes = env_class.metadata.get("render_modes", [])
    if render_mode is not None and render_mode not in modes:
        valid = ", ".join(["None", *map(repr, modes)])
        raise ValueError(f"unknown render_mode {render_mode!r}; valid: {valid}")
    return render_mode


class AllocationHooks:
    """The hooks every allocation environment implements, single or vector.

    Called by the base ``__init__`` in this order, each once.
    """

    def _build(self) -> None:
        """Build the system the environment wraps (``self.config`` is set)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _build")

    def _make_layout(self) -> ObservationLayout:
        """The (single) observation layout; called after :meth:`_build`."""
        raise NotImplementedError(f"{type(self).__name__} must implement _make_layout")

    def _make_constants(self) -> ProblemConstants:
        """The constants of ``info["problem"]``; called after :meth:`_build`."""
        raise NotImplementedError(f"{type(self).__name__} must implement _make_constants")


class AllocationEnv(AllocationHooks, gym.Env):
    """A ``gym.Env`` whose action assigns each device a sub-channel and a power level.

    ``__init__(config, render_mode)`` checks ``render_mode``, keeps the uplink
    ``config``, builds the action codec and space, then calls the hooks in order:

    1. :meth:`_build`: the system the environment wraps (channel, learners, ...);
    2. :meth:`_make_layout`: the :class:`ObservationLayout`, which gives
       ``observation_space``;
    3. :meth:`_make_constants`: the :class:`ProblemConstants` of ``info["problem"]``.

    Subclasses then set the problem of each new channel realization with
    :meth:`_set_problem` (gains, K x N, linear).
    """

    def __init__(
        self, config: UplinkConfig, render_mode: str | None = None, include_problem: bool = True
    ) -> None:
        self.render_mode = check_render_mode(type(self), render_mode)
        #: False: ``info`` holds no ``problem`` (``env.problem`` still does); for tools
        #: that can only batch arrays (TorchRL's vectorized ``GymEnv``)
        self.include_problem = check_bool("include_problem", include_problem)
        self.config = config
        self.codec = ActionCodec.for_config(config)
        self.action_space = self.codec.space()
        self._build()
        self.observation_layout: ObservationLayout = self._make_layout()
        self.observation_space = self.observation_layout.space()
        self._constants: ProblemConstants = self._make_constants()
        self._problem: AllocationProblem | None = None

    # ------------------------------------------------------------------- API
    def decode_action(self, action: Any) -> tuple[np.ndarray, np.ndarray]:
        """``action -> (channels (K,), power_levels (K,))``; validates the action."""
        return self.codec.decode(action)

    def encode_action(self, channels: Any, power_levels: Any) -> np.ndarray:
        """``(channels (K,), power_levels (K,)) -> action (2K,)``; validates the result."""
        return self.codec.encode(channels, power_levels)

    @property
    def problem(self) -> AllocationProblem:
        """The instance for the next decision (same object as ``info["problem"]``).

        Raises
        ------
        RuntimeError
            Before the first ``reset()``: the channel has not been drawn yet.
        """
        if self._problem is None:
            raise RuntimeError(f"{type(self).__name__}.problem: call reset() first")
        return self._problem

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        """``info`` as returned: without ``problem`` unless :attr:`include_problem`."""
        if not self.include_problem:
            info.pop("problem", None)
        return info

    def _set_problem(self, gains: np.ndarray) -> None:
        self._problem = AllocationProblem._trusted(gains, self._constants)
