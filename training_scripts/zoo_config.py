"""Hyperparameters in rl-zoo3's YAML format: one file per algorithm, keyed by env id.

The files in ``training_scripts/hyperparams/`` work unchanged with
``python -m rl_zoo3.train --gym-packages qfl_gym --conf-file <file>``; this module reads
the same keys for ``qfl-gym train``: ``n_envs``, ``n_timesteps``, ``policy``,
``policy`` (an SB3 alias such as ``MlpPolicy`` or a dotted class name such as
``agents.device_policy.DevicePolicy``, as in rl-zoo3), ``policy_kwargs`` (a ``dict(...)``
string or a mapping), ``env_kwargs``, ``env_wrapper``
(a dotted class name or a list of them); every other key goes to the algorithm's
constructor.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"
ALGOS = ("ppo", "a2c", "dqn")
_UNSUPPORTED = ("normalize", "frame_stack", "vec_env_wrapper", "callback")


@dataclass
class ZooHyperparams:
    """One env id's entry of an rl-zoo3 hyperparameter file."""

    n_envs: int = 1
    n_timesteps: int | None = None
    policy: str = "MlpPolicy"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    env_wrappers: list[str] = field(default_factory=list)
    algo_kwargs: dict[str, Any] = field(default_factory=dict)

    def wrapper(self) -> Callable | None:
        """A function applying the ``env_wrapper`` classes in order, or None."""
        if not self.env_wrappers:
            return None
        classes = [import_dotted(name) for name in self.env_wrappers]

        def wrap(env):
            for cls in classes:
                env = cls(env)
            return env

        return wrap


def import_dotted(name: str) -> Any:
    """Import ``package.module.Attribute``."""
    module, _, attr = name.rpartition(".")
    if not module:
        raise ValueError(f"expected a dotted name like 'package.module.Class', got {name!r}")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {name!r}: {exc}") from exc


def _parse_kwargs_string(text: str, key: str) -> dict[str, Any]:
    """``"dict(net_arch=[64, 64])"`` -> ``{"net_arch": [64, 64]}`` without eval."""
    try:
        node = ast.parse(text, mode="eval").body
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict"):
            raise ValueError("not a dict(...) call")
        if node.args:
            raise ValueError("positional arguments are not supported")
        return {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
    except (SyntaxError, ValueError) as exc:
        raise ValueError(
            f"{key} must be a mapping or a 'dict(name=literal, ...)' string, got {text!r} ({exc})"
        ) from exc


def default_config_file(algo: str) -> Path:
    """The bundled hyperparameter file of ``algo``."""
    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; valid: {', '.join(ALGOS)}")
    return HYPERPARAMS_DIR / f"{algo}.yml"


def load_hyperparams(path: str | Path, env_id: str) -> ZooHyperparams:
    """Read ``env_id``'s entry (or ``default``) from an rl-zoo3 YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"hyperparameter file {str(path)!r} does not exist")
    with path.open() as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of env ids to hyperparameters")
    entry = data.get(env_id, data.get("default"))
    if entry is None:
        raise ValueError(
            f"{path} has no entry for {env_id!r} (nor 'default'); it has: "
            f"{', '.join(map(repr, data)) or 'nothing'}"
        )
    entry = dict(entry)
    bad = [k for k in _UNSUPPORTED if k in entry]
    if bad:
        raise ValueError(f"{path}: keys {bad} are not supported by qfl-gym train")
    hp = ZooHyperparams()
    hp.n_envs = int(entry.pop("n_envs", 1))
    if "n_timesteps" in entry:
        hp.n_timesteps = int(float(entry.pop("n_timesteps")))
    hp.policy = entry.pop("policy", "MlpPolicy")
    hp.env_kwargs = dict(entry.pop("env_kwargs", {}) or {})
    wrappers = entry.pop("env_wrapper", None)
    if isinstance(wrappers, str):
        hp.env_wrappers = [wrappers]
    elif isinstance(wrappers, list):
        if not all(isinstance(w, str) for w in wrappers):
            raise ValueError(f"{path}: env_wrapper entries with arguments are not supported")
        hp.env_wrappers = list(wrappers)
    elif wrappers is not None:
        raise ValueError(f"{path}: env_wrapper must be a class name or a list of them")
    for key in ("policy_kwargs", "replay_buffer_kwargs"):
        if isinstance(entry.get(key), str):
            entry[key] = _parse_kwargs_string(entry[key], key)
    if isinstance(entry.get("train_freq"), list):
        entry["train_freq"] = tuple(entry["train_freq"])
    hp.algo_kwargs = entry
    return hp
