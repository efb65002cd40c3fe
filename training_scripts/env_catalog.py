"""What ``qfl-gym envs`` prints: every env id, its presets and their parameters."""

from __future__ import annotations

from typing import Any

import qfl_gym
from qfl_gym.config_fields import flat_fields
from qfl_gym.registration import env_presets


def _with_units(cfg: Any) -> dict[str, str]:
    """Dotted field name -> ``repr(value)`` plus the field's unit."""
    out = {}
    for name, (value, f) in flat_fields(cfg).items():
        unit = f.metadata.get("unit", "")
        out[name] = f"{value!r}" + (f" {unit}" if unit not in ("", "-") else "")
    return out


def describe_envs(env_id: str | None = None) -> str:
    """Ids, presets and full parameter listings (optionally of one id)."""
    ids = list(qfl_gym.ENV_IDS)
    if env_id is not None:
        if env_id not in ids:
            raise ValueError(f"unknown env {env_id!r}; valid: {', '.join(ids)}")
        ids = [env_id]
    lines = []
    for eid in ids:
        presets = env_presets(eid)
        lines.append(f"{eid}  (presets: {', '.join(presets)})")
        for name, cfg in presets.items():
            lines.append(f"  [{name}]")
            for key, value in _with_units(cfg).items():
                lines.append(f"    {key:<32} {value}")
        lines.append("")
    return "\n".join(lines).rstrip()
