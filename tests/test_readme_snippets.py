"""Every python snippet of the README and of the docs pages runs as written."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# snippets importing these need an extra (skipped with the reason when missing)
OPTIONAL = {
    "pettingzoo": "pettingzoo",
    "qfl_gym.multiagent": "pettingzoo",
    "ray": "ray.rllib",
    "qfl_gym.integrations.rllib": "ray.rllib",
    "sb3_contrib": "sb3_contrib",
    "torchrl": "torchrl",
    "tianshou": "tianshou",
    "torchrl.envs": "torchrl",
    "tianshou.env": "tianshou",
}
SLOW = ("ray", "SAC(", "DQN(", "MaskablePPO(", "SubprocVecEnv", ".learn(")


def snippets(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def needs(code: str) -> set[str]:
    imported = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", code, re.M)
    return {OPTIONAL[name] for name in imported if name in OPTIONAL}


CASES = [
    pytest.param(
        page,
        i,
        id=f"{page.relative_to(ROOT)}#{i}",
        marks=[pytest.mark.slow] if any(s in code for s in SLOW) else [],
    )
    for page in PAGES
    for i, code in enumerate(snippets(page))
]


@pytest.fixture
def one_torch_thread():
    """The snippets train tiny networks: one torch thread (no oversubscription)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_readme_and_the_main_docs_pages_have_snippets():
    with_snippets = {p.relative_to(ROOT).as_posix() for p in PAGES if snippets(p)}
    for page in (
        "README.md",
        "docs/quickstart/train-rl.md",
        "docs/quickstart/benchmark.md",
        "docs/quickstart/integrations.md",
        "docs/environments/vector.md",
        "docs/environments/multiagent.md",
        "docs/environments/wrappers.md",
    ):
        assert page in with_snippets, f"no python snippet in {page}"


@pytest.mark.parametrize(("page", "index"), CASES)
@pytest.mark.filterwarnings("ignore:.*Overriding environment rllib")  # RLlib's own
def test_snippet_runs(page, index, one_torch_thread, capsys, monkeypatch, tmp_path):
    code = snippets(page)[index]
    for module in sorted(needs(code)):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            pytest.skip(f"{page.name}#{index} needs {module} (an extra)")
        pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)  # anything a snippet writes lands in a scratch folder
    namespace = {"__name__": f"snippet_{page.stem.replace('-', '_')}_{index}"}
    exec(compile(code, f"{page.relative_to(ROOT)}#{index}", "exec"), namespace)
    assert capsys.readouterr().out  # every snippet prints what it shows
