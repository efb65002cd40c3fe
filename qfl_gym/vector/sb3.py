"""stable-baselines3 on Gymnasium vector envs (the native batched one in particular).

SB3 trains on its own ``VecEnv`` interface: ``step`` returns ``(obs, rewards, dones,
infos)`` with ``infos`` a list of per-environment dicts; an environment that ends is
reset within the same step and its last observation travels in
``infos[i]["terminal_observation"]`` (``infos[i]["TimeLimit.truncated"]`` marks a
truncation). That is Gymnasium's ``SAME_STEP`` autoreset, so :class:`SB3VecEnv` wraps
any ``gymnasium.vector.VectorEnv`` in that mode without copying environments::

    from stable_baselines3 import PPO
    from qfl_gym.vector.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env("qfl_gym/ChannelPower-v0", num_envs=256, seed=0)
    PPO("MlpPolicy", venv, n_steps=64, batch_size=4096).learn(100_000)

This module imports stable-baselines3 (and so torch); ``import qfl_gym`` does not
import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from qfl_gym.validation import check_int


class SB3VecEnv(VecEnv):
    """A Gymnasium ``VectorEnv`` with ``SAME_STEP`` autoreset seen as an SB3 ``VecEnv``.

    Parameters
    ----------
    vector_env : gymnasium.vector.VectorEnv
        Its ``metadata["autoreset_mode"]`` must be ``AutoresetMode.SAME_STEP``
        (``ChannelPowerVectorEnv(..., autoreset_mode="SameStep")``,
        ``SyncVectorEnv(..., autoreset_mode=...)``, ``AsyncVectorEnv(...)``).
    info_keys : sequence of str
        Keys of the vector env's batched ``info`` copied into each per-environment
        ``infos[i]`` (e.g. ``("sum_rate_bps",)`` for SB3's ``VecMonitor(info_keywords=...)``).
        Only the keys asked for are split per environment, since building ``n`` dicts
        per step is the adapter's main cost.

    Notes
    -----
    ``seed(s)`` seeds environment ``i`` with ``s + i`` at the next ``reset()``, as
    SB3's own vector envs do. ``get_attr``/``set_attr``/``env_method`` reach the
    sub-environments of ``SyncVectorEnv``/``AsyncVectorEnv``; for a native batched env
    they reach the vector env itself (one object serves every index).
    """

    def __init__(self, vector_env: VectorEnv, info_keys: Sequence[str] = ()) -> None:
        if not isinstance(vector_env, VectorEnv):
            raise ValueError(
                f"vector_env must be a gymnasium.vector.VectorEnv, got {type(vector_env).__name__}"
            )
        mode = vector_env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                "SB3VecEnv needs a vector env with autoreset_mode=AutoresetMode.SAME_STEP "
                f"(SB3's terminal_observation convention); got {mode!r}"
            )
        self.vector_env = vector_env
        self.info_keys = tuple(info_keys)
        self._actions: np.ndarray | None = None
        super().__init__(
            vector_env.num_envs,
            vector_env.single_observation_space,
            vector_env.single_action_space,
        )

    # ------------------------------------------------------------ VecEnv API
    def reset(self) -> np.ndarray:
        seeds: list[int | None] | None = list(self._seeds)
        if all(s is None for s in seeds):
            seeds = None
        options = self._options[0] if self._options and self._options[0] else None
        obs, info = self.vector_env.reset(seed=seeds, options=options)
        self.reset_infos = self._split(info)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, rewards, terminated, truncated, info = self.vector_env.step(self._actions)
        dones = terminated | truncated
        infos = self._split(info)
        if dones.any():
            # the step's own info of an ended environment is in final_info (SB3 wants it
            # in infos[i], next to the last observation)
            final = self._split(info.get("final_info", {}))
            final_obs = info["final_obs"]
            for i in np.flatnonzero(dones).tolist():
                infos[i].update(final[i])
                infos[i]["terminal_observation"] = final_obs[i]
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, rewards.astype(np.float32, copy=False), dones, infos

    def close(self) -> None:
        self.vector_env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        idx = self._get_indices(indices)
        venv = self.vector_env
        if hasattr(venv, "get_attr"):  # Sync/AsyncVectorEnv: one value per sub-env
            values = venv.get_attr(attr_name)
            return [values[i] for i in idx]
        return [getattr(venv, attr_name) for _ in idx]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        venv = self.vector_env
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError("set_attr on a subset of the environments is not supported")
        if hasattr(venv, "set_attr"):
            venv.set_attr(attr_name, value)
        else:
            setattr(venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        idx = self._get_indices(indices)
        venv = self.vector_env
        if hasattr(venv, "call"):
            results = venv.call(method_name, *method_args, **method_kwargs)
            return [results[i] for i in idx]
        result = getattr(venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in idx]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        idx = self._get_indices(indices)
        envs = getattr(self.vector_env, "envs", None)
        if envs is None:
            return [False for _ in idx]
        out = []
        for i in idx:
            env, found = envs[i], False
            while isinstance(env, gym.Wrapper):
                found |= isinstance(env, wrapper_class)
                env = env.env
            out.append(found)
        return out

    # --------------------------------------------------------------- helpers
    def _split(self, info: dict[str, Any]) -> list[dict[str, Any]]:
        """Per-environment dicts of the ``info_keys`` each environment reports."""
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for key in self.info_keys:
            if key not in info:
                continue
            values, present = info[key], info.get(f"_{key}")
            for i in range(self.num_envs):
                if present is None or present[i]:
                    infos[i][key] = values[i]
        return infos


def make_sb3_vec_env(
    env_id: str = "qfl_gym/ChannelPower-v0",
    num_envs: int = 8,
    *,
    seed: int | None = None,
    monitor: bool = True,
    info_keys: Sequence[str] = (),
    **kwargs: Any,
) -> VecEnv:
    """An SB3 ``VecEnv`` of ``num_envs`` copies of ``env_id``, batched natively if possible.

    Ids with a native vector env (``qfl_gym/ChannelPower-v0``) use it; others are
    vectorized by ``gymnasium.vector.SyncVectorEnv``. Both run with ``SAME_STEP``
    autoreset behind :class:`SB3VecEnv`.

    Parameters
    ----------
    env_id : str
        A registered id (``import qfl_gym`` registers ours).
    num_envs : int
        Number of sub-environments.
    seed : int, optional
        Sub-environment ``i`` is seeded with ``seed + i`` at the first reset.
    monitor : bool
        Wrap in SB3's ``VecMonitor`` (episode return/length in ``infos[i]["episode"]``,
        what SB3 logs as ``ep_rew_mean``).
    info_keys : sequence of str
        Batched info keys to pass through per environment (and to ``VecMonitor``).
    **kwargs
        Environment arguments (``scenario=``, field overrides).
    """
    import qfl_gym  # noqa: F401  (registers the ids)

    num_envs = check_int("num_envs", num_envs, low=1)
    spec = gym.spec(env_id)
    if spec.vector_entry_point is not None:
        venv = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="vector_entry_point",
            autoreset_mode=AutoresetMode.SAME_STEP,
            **kwargs,
        )
    else:
        venv = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
            **kwargs,
        )
    out: VecEnv = SB3VecEnv(venv, info_keys=info_keys)
    if seed is not None:
        out.seed(seed)
    if monitor:
        out = VecMonitor(out, info_keywords=tuple(info_keys))
    return out
