"""The wheel and sdist build without warnings, carry their data, and the wheel installs.

The project is copied to a temporary folder (the build writes ``build/`` and
``*.egg-info`` next to the sources) and built once per session with the environment's
setuptools (``--no-isolation``: no download). The wheel is installed offline
(``--no-deps --no-index``) into a fresh venv; the dependencies come from this
environment's site-packages through a ``.pth`` line, which does not carry this
environment's editable install of qfl-gym along.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in")
PACKAGES = ("qfl_gym", "agents", "training_scripts")
YAMLS = ("a2c.yml", "dqn.yml", "ppo.yml")

pytestmark = pytest.mark.slow


def _quiet_env() -> dict[str, str]:
    env = dict(os.environ)
    # with it set, setuptools warns that byte-compiling is disabled: not the project's doing
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> tuple[Path, Path, str]:
    """(wheel, sdist, build log) built from a copy of the project."""
    pytest.importorskip("build")
    src = tmp_path_factory.mktemp("src")
    for name in SHIPPED:
        shutil.copy2(ROOT / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    out = src / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        env=_quiet_env(),
        timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist, log


def test_build_has_no_warnings(dist):
    _, _, log = dist
    warnings = [line for line in log.splitlines() if "warning" in line.lower()]
    assert warnings == []
    assert "deprecated" not in log.lower()


def test_wheel_and_sdist_carry_license_and_hyperparameters(dist):
    wheel, sdist, _ = dist
    names = set(zipfile.ZipFile(wheel).namelist())
    for y in YAMLS:
        assert f"training_scripts/hyperparams/{y}" in names
    assert "qfl_gym-0.1.0.dist-info/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read("qfl_gym-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "qfl_gym/config_fields.py" in names
    shipped = sorted(p.name for p in (ROOT / "agents" / "pretrained").iterdir())
    assert "index.json" in shipped and any(n.endswith(".pt") for n in shipped)
    assert {f"agents/pretrained/{n}" for n in shipped} <= names
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert {"LICENSE", "pyproject.toml", "README.md"} <= members
    assert {f"training_scripts/hyperparams/{y}" for y in YAMLS} <= members
    assert not any(m.startswith("tests/") for m in members)


def test_wheel_installs_offline_into_a_fresh_venv_and_reads_its_data(dist, tmp_path):
    wheel, _, _ = dist
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    subprocess.run(
        [*pip, "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    script = """
import importlib.metadata, importlib.resources, sys
import gymnasium as gym
import yaml
import qfl_gym
from training_scripts.zoo_config import default_config_file
from agents.pretrained import available_weights
text = importlib.resources.files("training_scripts").joinpath("hyperparams/ppo.yml").read_text()
ids = sorted(yaml.safe_load(text))
obs, _ = gym.make("qfl_gym/ChannelPower-v0", scenario="small").reset(seed=0)
print(qfl_gym.__file__)
print(default_config_file("ppo"))
print(",".join(ids))
print(importlib.metadata.metadata("qfl-gym")["License-Expression"])
print(obs.shape)
print(",".join(str(w.path) for w in available_weights()))
"""
    proc = subprocess.run(
        [str(python), "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    module_file, yaml_file, ids, license_expr, shape, weights = proc.stdout.split("\n")[:6]
    assert Path(module_file).is_relative_to(site)  # the installed copy, not the repository
    assert Path(yaml_file).is_relative_to(site) and Path(yaml_file).is_file()
    assert ids == "qfl_gym/ChannelPower-v0,qfl_gym/QFL-v0"
    assert license_expr == "Apache-2.0"
    assert shape == "(13,)"
    shipped = sorted(p.name for p in (ROOT / "agents" / "pretrained").glob("*.pt"))
    assert sorted(Path(w).name for w in weights.split(",")) == shipped  # index.json read
    assert all(Path(w).is_relative_to(site) and Path(w).is_file() for w in weights.split(","))
    cli = subprocess.run(
        [str(venv / "bin" / "qfl-gym"), "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert cli.returncode == 0 and "train" in cli.stdout
