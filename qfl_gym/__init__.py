"""qfl-gym: Gymnasium environments for quantum federated learning over a 6G NOMA uplink.

``import qfl_gym`` registers the environment ids with Gymnasium::

    import gymnasium as gym
    import qfl_gym  # noqa: F401

    env = gym.make("qfl_gym/ChannelPower-v0", scenario="default")
"""

from qfl_gym.registration import ENV_IDS, register_envs

__version__ = "0.1.0"

register_envs()

__all__ = ["ENV_IDS", "__version__", "register_envs"]
