"""The docs site covers the code: every module is in the API reference, and every page
in docs/ is reachable from the navigation."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGES = ("qfl_gym", "agents", "training_scripts")


def directives() -> list[tuple[str, bool]]:
    """(object path, renders its submodules) of every ``::: path`` block in the docs."""
    found = []
    for page in DOCS.rglob("*.md"):
        for match in re.finditer(r"^::: (\S+)\n((?:    .*\n)*)", page.read_text(), re.M):
            found.append((match.group(1), "show_submodules: true" in match.group(2)))
    return found


def modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_is_in_the_api_reference():
    blocks = directives()

    def covered(module: str) -> bool:
        return any(module == d or (sub and module.startswith(d + ".")) for d, sub in blocks)

    missing = [m for m in modules() if not covered(m)]
    assert not missing, f"add these modules to a docs/api page: {missing}"


def nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [p for value in node.values() for p in nav_pages(value)]
    return [p for item in node for p in nav_pages(item)]


def test_every_docs_page_is_in_the_nav_and_every_nav_page_exists():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = set(nav_pages(config["nav"]))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages == nav, f"not in nav: {sorted(pages - nav)}; missing: {sorted(nav - pages)}"
