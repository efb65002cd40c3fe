"""Gymnasium registration of every qfl_gym environment id (run on ``import qfl_gym``)."""

from __future__ import annotations

import gymnasium as gym

CHANNEL_POWER_ID = "qfl_gym/ChannelPower-v0"

ENV_IDS: tuple[str, ...] = (CHANNEL_POWER_ID,)


def register_envs() -> None:
    """Register the environments; idempotent."""
    registry = gym.envs.registration.registry
    if CHANNEL_POWER_ID not in registry:
        gym.register(
            id=CHANNEL_POWER_ID,
            entry_point="qfl_gym.envs.channel_power:ChannelPowerEnv",
        )
