"""Vectorized environments: native batched ChannelPower-v0 and QFL-v0, and an SB3 adapter.

``gym.make_vec("qfl_gym/ChannelPower-v0", num_envs=n)`` builds
:class:`~qfl_gym.vector.channel_power.ChannelPowerVectorEnv`;
``gym.make_vec("qfl_gym/QFL-v0", num_envs=n)`` builds
:class:`~qfl_gym.vector.qfl.QFLVectorEnv` (local training of all sub-environments in
one batch); :mod:`qfl_gym.vector.sb3` adapts any Gymnasium vector env to
stable-baselines3's ``VecEnv``. Importing this package imports neither torch nor
stable-baselines3 (``QFLVectorEnv`` is loaded, with torch, on first access).
"""

from typing import Any

from qfl_gym.vector.channel_power import ChannelPowerVectorEnv

__all__ = ["ChannelPowerVectorEnv", "QFLVectorEnv"]


def __getattr__(name: str) -> Any:
    if name == "QFLVectorEnv":  # imports torch
        from qfl_gym.vector.qfl import QFLVectorEnv

        return QFLVectorEnv
    raise AttributeError(f"module 'qfl_gym.vector' has no attribute {name!r}")
