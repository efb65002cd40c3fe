"""``agents.make`` / ``agents.available``: build any agent by name.

Entries are import paths, so making ``greedy`` never imports torch or PennyLane.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from agents.base import Agent

_REGISTRY: dict[str, str] = {
    "random": "agents.classical.heuristics:RandomAgent",
    "strongest": "agents.classical.heuristics:StrongestChannelAgent",
    "greedy": "agents.classical.heuristics:GreedyAgent",
    "local-search": "agents.classical.heuristics:LocalSearchAgent",
    "sca": "agents.classical.sca:SCAAgent",
    "exhaustive": "agents.classical.exhaustive:ExhaustiveAgent",
    "random-sampling": "agents.classical.sampling:RandomSamplingAgent",
    "annealing": "agents.classical.annealing:AnnealingAgent",
    "qaoa": "agents.qaoa.agent:QAOAAgent",
    "qaoa-qubo": "agents.qaoa.agent:QuboQAOAAgent",
    "sb3": "agents.rl:SB3Agent",
    "device-policy": "agents.device_policy:DevicePolicyAgent",
    "pretrained": "agents.pretrained:PretrainedAgent",
}


def register(name: str, entry_point: str, *, overwrite: bool = False) -> None:
    """Register ``entry_point`` (``"module:Class"``) under ``name``."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"agent {name!r} is already registered")
    _REGISTRY[name] = entry_point


def available() -> list[str]:
    """Names accepted by :func:`make`, sorted."""
    return sorted(_REGISTRY)


def make(name: str, env: gym.Env, seed: int | None = None, **kwargs: Any) -> Agent:
    """Build agent ``name`` for ``env``.

    Parameters
    ----------
    name : str
        One of :func:`available`.
    env : gymnasium.Env
        A qfl_gym environment (wrappers allowed).
    seed : int, optional
        Seed of the agent's randomness.
    **kwargs
        Agent-specific options (see each agent's docstring).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown agent {name!r}; valid: {', '.join(available())}")
    module, cls = _REGISTRY[name].split(":")
    agent_cls = getattr(importlib.import_module(module), cls)
    return agent_cls(env, seed=seed, **kwargs)
