"""The README's integration sections: each has a python snippet, and every snippet runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
# section -> optional module it needs (skipped with the reason when missing)
SECTIONS = {
    "vector-env": None,
    "multi-agent": "pettingzoo",
    "rllib": "ray.rllib",
    "wrappers": "sb3_contrib",
}
SLOW = {"rllib", "wrappers"}


def snippets(section: str) -> list[str]:
    text = README.read_text()
    match = re.search(rf"<!-- section:{section} -->(.*?)<!-- /section:{section} -->", text, re.S)
    assert match, f"README.md has no {section} section"
    return re.findall(r"```python\n(.*?)```", match.group(1), re.S)


@pytest.fixture
def one_torch_thread():
    """The snippets train tiny networks: one torch thread (no oversubscription)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_integration_section_has_a_python_snippet(section):
    assert snippets(section), f"no python snippet in README section {section!r}"


@pytest.mark.parametrize(
    "section",
    [pytest.param(s, marks=pytest.mark.slow) if s in SLOW else s for s in sorted(SECTIONS)],
)
@pytest.mark.filterwarnings("ignore:.*Overriding environment rllib")  # RLlib's own
def test_readme_snippets_run(section, one_torch_thread, capsys):
    needs = SECTIONS[section]
    if needs is not None:
        pytest.importorskip(needs, reason=f"the {section} section needs {needs} (an extra)")
    for i, code in enumerate(snippets(section)):
        namespace = {"__name__": f"readme_{section.replace('-', '_')}_{i}"}
        exec(compile(code, f"README.md[{section}#{i}]", "exec"), namespace)
    assert capsys.readouterr().out  # the snippets print what they show
