"""Vectorized environments: the native batched ChannelPower-v0 and an SB3 adapter.

``gym.make_vec("qfl_gym/ChannelPower-v0", num_envs=n)`` builds
:class:`~qfl_gym.vector.channel_power.ChannelPowerVectorEnv`;
:mod:`qfl_gym.vector.sb3` adapts any Gymnasium vector env to stable-baselines3's
``VecEnv``. Importing this package imports neither torch nor stable-baselines3.
"""

from qfl_gym.vector.channel_power import ChannelPowerVectorEnv

__all__ = ["ChannelPowerVectorEnv"]
