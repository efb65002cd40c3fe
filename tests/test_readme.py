"""The README's parameter table and commands stay true to the code."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

from qfl_gym.wireless.config import UplinkConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_starts_with_the_two_setup_commands():
    text = README.read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "exec make test" in ci


def test_parameter_table_matches_uplink_config_defaults():
    text = README.read_text()
    section = text.split("## Default parameters")[1].split("**Presets**")[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, re.M)
    table = {name: value.strip() for name, value in rows}
    fields = {f.name: f.default for f in dataclasses.fields(UplinkConfig)}
    assert set(table) == set(fields)
    for name, default in fields.items():
        assert ast.literal_eval(table[name]) == default, name
