"""``sb3``: a saved stable-baselines3 policy (PPO, A2C or DQN) acting deterministically.

``agents.make("sb3", env, path="runs/ppo.zip")`` loads the zip written by
``model.save(...)``; the algorithm is read from the zip (``algo="auto"``: DQN if it
stores an exploration schedule, PPO if it stores a clip range, else A2C) or given
(``algo="PPO"``). The model's observation and action spaces must equal the env's
(pass the env wrapped exactly as during training: a DQN policy needs a ``Discrete``
action wrapper, for instance), and the agent returns actions in that env's format.
Observation normalization (``VecNormalize``) statistics are not part of the zip: apply
the same wrapper to the env.

Errors: a missing file raises :class:`FileNotFoundError`; a file that is not a
stable-baselines3 zip, an unknown ``algo`` or mismatched spaces raise ``ValueError``
naming the file and both spaces.

**Loading a model runs code.** A stable-baselines3 zip stores Python objects (the
spaces, schedules, policy class and keyword arguments) pickled with cloudpickle, and
``PPO.load`` unpickles them: a crafted zip runs whatever code it carries, with your
permissions, before any check here can look at it. Load only files you trust (your own
training runs, or a source you would run a script from); stable-baselines3's
documentation gives the same warning. The policy weights alone (``device_policy.pt``,
written by ``qfl-gym train`` for ``DevicePolicy``) load with ``torch.load(...,
weights_only=True)``, which does not run code.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import Agent
from qfl_gym.validation import check_bool, check_choice

ALGORITHMS = ("auto", "PPO", "A2C", "DQN")


def detect_algorithm(path: Path) -> str:
    """``"PPO"``, ``"A2C"`` or ``"DQN"`` from the ``data`` entry of an SB3 zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{path} is not a stable-baselines3 model zip (expected the archive written by "
            f"model.save(): {type(exc).__name__}: {exc})"
        ) from exc
    if "exploration_rate" in data or "dqn" in str(data.get("policy_class", "")).lower():
        return "DQN"
    return "PPO" if "clip_range" in data else "A2C"


class SB3Agent(Agent):
    """Deterministic actions of a saved stable-baselines3 model (module docstring).

    Parameters
    ----------
    env : gymnasium.Env
        The env (with the wrappers used in training).
    seed : int, optional
        Seeds the policy's sampling when ``deterministic=False``.
    path : str or Path
        The model zip (``.zip`` may be omitted, as in SB3).
    algo : {"auto", "PPO", "A2C", "DQN"}
    deterministic : bool
        Greedy (mode) action; default True.

    Warnings
    --------
    ``path`` is unpickled: loading a zip runs the code stored in it. Pass only model files
    you trust (module docstring).
    """

    name = "sb3"

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        path: str | Path | None = None,
        algo: str = "auto",
        deterministic: bool = True,
    ) -> None:
        if path is None:
            raise ValueError(
                "the sb3 agent needs path=... (a model zip saved by stable-baselines3)"
            )
        check_choice("algo", algo, ALGORITHMS)
        self.deterministic = check_bool("deterministic", deterministic)
        file = Path(path)
        if not file.is_file() and file.suffix != ".zip" and file.with_suffix(".zip").is_file():
            file = file.with_suffix(".zip")
        if not file.is_file():
            raise FileNotFoundError(f"sb3 agent: no model file at {str(path)!r}")
        self.path = file
        self.algo = detect_algorithm(file) if algo == "auto" else algo
        import stable_baselines3

        cls = getattr(stable_baselines3, self.algo)
        try:
            self.model = cls.load(file, device="cpu")
        except Exception as exc:
            raise ValueError(
                f"could not load a stable-baselines3 {self.algo} model from {file}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for kind in ("observation", "action"):
            want, have = getattr(env, f"{kind}_space"), getattr(self.model, f"{kind}_space")
            if want != have:
                raise ValueError(
                    f"the {self.algo} model in {file} was trained with {kind} space {have}, "
                    f"but the env has {want}; pass the env (and wrappers) it was trained on"
                )
        super().__init__(env, seed)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        if seed is not None and hasattr(self, "model"):
            self.model.set_random_seed(seed)

    def _act(self, observation: Any, info: dict[str, Any] | None, stats: dict[str, Any]) -> Any:
        action, _ = self.model.predict(observation, deterministic=self.deterministic)
        stats["algorithm"] = self.algo
        return np.asarray(action, dtype=np.int64) if np.ndim(action) else int(action)
