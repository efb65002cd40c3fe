"""Base of the single envs whose action is a channel/power allocation.

ChannelPower-v0 and QFL-v0 share the action encoding (:class:`ActionCodec`) and the
decision instance (:class:`AllocationProblem`) exposed as ``env.problem`` and
``info["problem"]``; this class holds that shared surface.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from qfl_gym.envs.action import ActionCodec
from qfl_gym.wireless.problem import AllocationProblem, ProblemConstants


class AllocationEnv(gym.Env):
    """A ``gym.Env`` whose action assigns each device a sub-channel and a power level.

    Subclasses set ``codec`` and ``_constants`` in ``__init__`` and call
    :meth:`_set_problem` with each new channel realization (gains, K x N, linear).
    """

    codec: ActionCodec
    _constants: ProblemConstants
    _problem: AllocationProblem | None = None

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

    def _set_problem(self, gains: np.ndarray) -> None:
        self._problem = AllocationProblem._trusted(gains, self._constants)
