"""The README is a short newcomer's page whose commands, links and figures are real."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
QUICK_STARTS = (
    "## Quick start: train an RL agent",
    "## Quick start: benchmark QAOA vs policies",
    "## Quick start: plug into other tooling",
)


def test_readme_starts_with_the_two_setup_commands():
    text = README.read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "exec make test" in (ROOT / ".ci" / "run").read_text()


def test_make_test_runs_lint_format_check_docs_and_pytest():
    recipe = (ROOT / "Makefile").read_text().split("\ntest:")[1].split("\n\n")[0]
    for step in ("ruff check .", "ruff format --check .", "mkdocs build --strict", "pytest"):
        assert step in recipe, step
    assert "rc -eq 5" in recipe  # pytest collecting no tests fails the target


def test_readme_has_a_quick_start_per_use_and_headline_results():
    text = README.read_text()
    headings = re.findall(r"^## .*$", text, re.M)
    for heading in QUICK_STARTS:
        assert heading in headings, heading
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        assert "```python" in section, f"{heading} has no python snippet"
    assert "## Headline results" in headings
    assert "## Documentation" in headings


def test_readme_fits_on_a_few_screens():
    assert len(README.read_text().splitlines()) <= 150


def test_readme_links_and_figures_exist():
    text = README.read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links into the docs"
    for target in local:
        assert (ROOT / target).is_file(), target
    figures = [t for t in local if t.endswith(".png")]
    assert figures, "the headline results show a figure"
