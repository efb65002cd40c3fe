"""Environment classes. Importing this package does not import torch or PennyLane."""

from qfl_gym.envs.action import ActionCodec
from qfl_gym.envs.channel_power import ChannelPowerEnv

__all__ = ["ActionCodec", "ChannelPowerEnv", "QFLEnv"]


def __getattr__(name: str):
    if name == "QFLEnv":  # imports torch: only on demand
        from qfl_gym.envs.qfl import QFLEnv

        return QFLEnv
    raise AttributeError(f"module 'qfl_gym.envs' has no attribute {name!r}")
