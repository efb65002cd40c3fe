"""Environment classes. Importing this package does not import torch or PennyLane."""

from qfl_gym.envs.action import ActionCodec
from qfl_gym.envs.channel_power import ChannelPowerEnv

__all__ = ["ActionCodec", "ChannelPowerEnv"]
