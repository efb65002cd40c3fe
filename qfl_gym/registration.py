"""Gymnasium registration of every qfl_gym environment id (run on ``import qfl_gym``)."""

from __future__ import annotations

import gymnasium as gym

CHANNEL_POWER_ID = "qfl_gym/ChannelPower-v0"
QFL_ID = "qfl_gym/QFL-v0"

ENV_IDS: tuple[str, ...] = (CHANNEL_POWER_ID, QFL_ID)


def env_presets(env_id: str) -> dict:
    """Named scenario presets (frozen config objects) of a registered env id."""
    if env_id == CHANNEL_POWER_ID:
        from qfl_gym.wireless.config import UPLINK_PRESETS

        return dict(UPLINK_PRESETS)
    if env_id == QFL_ID:
        from qfl_gym.envs.qfl_scenario import QFL_PRESETS

        return dict(QFL_PRESETS)
    raise ValueError(f"unknown env {env_id!r}; valid: {', '.join(ENV_IDS)}")


def register_envs() -> None:
    """Register the environments; idempotent."""
    registry = gym.envs.registration.registry
    if CHANNEL_POWER_ID not in registry:
        gym.register(
            id=CHANNEL_POWER_ID,
            entry_point="qfl_gym.envs.channel_power:ChannelPowerEnv",
            # native batched VectorEnv: gym.make_vec(id, num_envs=n)
            vector_entry_point="qfl_gym.vector.channel_power:ChannelPowerVectorEnv",
        )
    if QFL_ID not in registry:
        # string entry points: torch is imported only when the env is made
        gym.register(
            id=QFL_ID,
            entry_point="qfl_gym.envs.qfl:QFLEnv",
            # native VectorEnv training every sub-env's devices as one batch
            vector_entry_point="qfl_gym.vector.qfl:QFLVectorEnv",
        )
