"""MkDocs hook: parameter tables generated from the configuration dataclasses.

Every configuration field is declared with ``param(default, unit, doc, source)``, which
stores ``{"unit", "doc", "source"}`` in the field's metadata. A page asks for a table
with a marker on a line of its own:

- ``<!-- params: qfl_gym.wireless.config.UplinkConfig -->``: one row per field
  (default, unit, meaning, source of the default);
- ``<!-- presets: qfl_gym/QFL-v0 -->``: the presets of an env id and what each
  changes with respect to the env's default preset.

So the reference cannot drift from the code. :func:`param_rows` is also what the docs
tests check against ``dataclasses.fields``.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from typing import Any

from qfl_gym.config_fields import flat_fields

MARKER = re.compile(r"^<!-- (params|presets): (\S+) -->$", re.M)


def load_object(path: str) -> Any:
    """``"package.module.Name"`` -> the object."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _prose(text: Any) -> str:
    """A metadata string as literal Markdown text (``<Z>`` and ``*`` are not markup)."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _cell(text.replace("*", "\\*"))


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def param_rows(cls: type) -> list[tuple[str, str, str, str, str]]:
    """(field, default, unit, meaning, source) for every field of a config dataclass."""
    rows = []
    for f in dataclasses.fields(cls):
        default = _default(f)
        if dataclasses.is_dataclass(default):
            shown = f"`{type(default).__name__}(...)`"
        elif default is dataclasses.MISSING:
            shown = "required"
        else:
            shown = f"`{default!r}`"
        meta = f.metadata
        rows.append(
            (
                f"`{f.name}`",
                shown,
                meta.get("unit", "-") or "-",
                meta.get("doc", ""),
                meta.get("source", "") or "-",
            )
        )
    return rows


def params_table(path: str) -> str:
    """The markdown table of one config dataclass."""
    lines = ["| field | default | unit | meaning | source |", "|---|---|---|---|---|"]
    for name, default, unit, doc, source in param_rows(load_object(path)):
        cells = [name, _cell(default), _prose(unit), _prose(doc), _prose(source)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def flatten(cfg: Any) -> dict[str, Any]:
    """Dotted field name -> value of a (nested) config dataclass."""
    return {name: value for name, (value, _) in flat_fields(cfg).items()}


def presets_table(env_id: str) -> str:
    """Each preset of an env id and the fields it changes from the first (default) one."""
    from qfl_gym.registration import env_presets

    presets = env_presets(env_id)
    names = list(presets)
    base = flatten(presets[names[0]])
    lines = ["| preset | changes from `" + names[0] + "` |", "|---|---|"]
    for name in names:
        values = flatten(presets[name])
        diff = [f"`{k}={v!r}`" for k, v in values.items() if v != base[k]]
        lines.append(f"| `{name}` | " + (_cell(", ".join(diff)) if diff else "-") + " |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace every marker of the page by its generated table."""

    def table(match: re.Match[str]) -> str:
        kind, target = match.groups()
        return params_table(target) if kind == "params" else presets_table(target)

    return MARKER.sub(table, markdown)
