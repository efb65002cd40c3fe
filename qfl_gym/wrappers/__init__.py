"""Action-space wrappers for RL tooling beyond ``MultiDiscrete``.

- :class:`~qfl_gym.wrappers.discrete_joint.DiscreteJointAction`: one ``Discrete`` index
  per joint assignment (DQN; small K).
- :class:`~qfl_gym.wrappers.continuous_action.ContinuousAction`: a ``Box`` of channel
  scores and power fractions (SAC, TD3).
- :class:`~qfl_gym.wrappers.action_mask.ActionMaskWrapper`: sub-channels and power
  levels a device may not use, in ``info["action_mask"]`` (sb3-contrib's MaskablePPO).
"""

from qfl_gym.wrappers.action_mask import ActionMaskWrapper
from qfl_gym.wrappers.continuous_action import ContinuousAction
from qfl_gym.wrappers.discrete_joint import DiscreteJointAction

__all__ = ["ActionMaskWrapper", "ContinuousAction", "DiscreteJointAction"]
