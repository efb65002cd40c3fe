"""The docs site's generated parts: parameter tables from field metadata, and the
reST -> Markdown rewrite of docstrings (docs/hooks/)."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / "docs" / "hooks"
PARAMETERS_PAGE = ROOT / "docs" / "parameters.md"


def load_hook(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", HOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


params = load_hook("param_tables")
rst = load_hook("rst_to_markdown")


def config_classes_in_source() -> set[str]:
    """Dotted paths of every class in the packages that declares a field with param()."""
    found = set()
    for package in ("qfl_gym", "agents", "training_scripts"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in tree.body:
                if not isinstance(node, ast.ClassDef):
                    continue
                for stmt in node.body:
                    call = getattr(stmt, "value", None)
                    if (
                        isinstance(stmt, ast.AnnAssign)
                        and isinstance(call, ast.Call)
                        and getattr(call.func, "id", None) == "param"
                    ):
                        found.add(f"{module}.{node.name}")
                        break
    return found


def test_every_config_class_has_a_generated_table_on_the_parameters_page():
    marked = set(re.findall(r"<!-- params: (\S+) -->", PARAMETERS_PAGE.read_text()))
    classes = config_classes_in_source()
    assert "qfl_gym.wireless.config.UplinkConfig" in classes
    assert classes <= marked, f"no table for {sorted(classes - marked)}"


@pytest.mark.parametrize(
    "path", sorted(set(re.findall(r"<!-- params: (\S+) -->", PARAMETERS_PAGE.read_text())))
)
def test_parameter_table_has_every_field_with_its_default_unit_and_meaning(path):
    cls = params.load_object(path)
    table = params.params_table(path).splitlines()[2:]
    fields = dataclasses.fields(cls)
    assert [row.split(" | ")[0].strip("| `") for row in table] == [f.name for f in fields]
    for f, row in zip(fields, table, strict=True):
        if f.default is not dataclasses.MISSING and not dataclasses.is_dataclass(f.default):
            assert f"`{f.default!r}`" in row, f.name
        assert f.metadata.get("doc"), f"{path}.{f.name} has no doc"
        assert f.metadata.get("unit"), f"{path}.{f.name} has no unit"


@pytest.mark.parametrize("env_id", ["qfl_gym/ChannelPower-v0", "qfl_gym/QFL-v0"])
def test_presets_table_lists_every_preset_and_its_changes(env_id):
    from qfl_gym.registration import env_presets

    table = params.presets_table(env_id)
    presets = env_presets(env_id)
    for name in presets:
        assert f"| `{name}` |" in table
    if env_id == "qfl_gym/ChannelPower-v0":
        assert "| `small` | `num_devices=4`, `num_subchannels=2`, `num_power_levels=2` |" in table


def test_parameters_page_markers_are_all_replaced():
    page = params.on_page_markdown(PARAMETERS_PAGE.read_text())
    assert "<!-- params:" not in page and "<!-- presets:" not in page
    assert "| `num_devices` | `10` | - | devices K sharing the uplink |" in page


def test_rst_simple_table_becomes_a_markdown_table():
    text = """Intro:

==========  ==========
index       meaning
==========  ==========
``0``       first row
            continued
``1``       second
==========  ==========
"""
    out = rst.rst_to_markdown(text)
    assert "| index | meaning |" in out
    assert "| ``0`` | first row continued |" in out
    assert "| ``1`` | second |" in out
    assert "====" not in out


def test_rst_roles_math_and_literal_blocks_become_markdown():
    text = """See :class:`~qfl_gym.wireless.config.UplinkConfig` and :func:`a.b`.

Rate :math:`r = B \\log_2(1 + s)`:

.. math::

    x = 1

Create it with::

    env = make()

>>> 1 + 1
2
"""
    out = rst.rst_to_markdown(text)
    assert (
        '<autoref identifier="qfl_gym.wireless.config.UplinkConfig" optional>'
        "<code>UplinkConfig</code></autoref>" in out
    )
    assert "<code>a.b()</code>" in out
    assert "$r = B \\log_2(1 + s)$" in out
    assert "$$\nx = 1\n$$" in out
    assert "Create it with:\n\n```python\nenv = make()\n```" in out
    assert "```pycon\n>>> 1 + 1\n2\n```" in out


def test_a_list_right_after_a_paragraph_gets_a_blank_line():
    out = rst.rst_to_markdown("Three kinds:\n- one,\n  continued\n- two\nAfter.")
    assert out == "Three kinds:\n\n- one,\n  continued\n- two\nAfter."
