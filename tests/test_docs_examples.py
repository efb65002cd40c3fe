"""The runnable examples in the environment class docstrings (shown on the docs site)
run and print what they claim: each class has one, and doctest checks it."""

from __future__ import annotations

import doctest
import importlib

import pytest

ENV_CLASSES = {
    "qfl_gym.envs.channel_power.ChannelPowerEnv": None,
    "qfl_gym.envs.qfl.QFLEnv": None,
    "qfl_gym.vector.channel_power.ChannelPowerVectorEnv": None,
    "qfl_gym.vector.qfl.QFLVectorEnv": None,
    "qfl_gym.multiagent.parallel_env.DeviceParallelEnv": "pettingzoo",
}
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def load(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def run_examples(obj, name: str) -> doctest.TestResults:
    tests = [t for t in doctest.DocTestFinder(recurse=False).find(obj, name) if t.examples]
    assert tests, f"{name}'s docstring has no runnable example"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in tests:
        runner.run(test)
    return runner.summarize(verbose=False)


@pytest.mark.parametrize("path", sorted(ENV_CLASSES))
def test_env_class_docstring_example_runs(path):
    if ENV_CLASSES[path] is not None:
        pytest.importorskip(ENV_CLASSES[path])
    results = run_examples(load(path), path)
    assert results.attempted >= 4  # make, reset with a seed, step, check
    assert results.failed == 0, f"{results.failed} example line(s) of {path} failed (above)"


def test_agents_package_example_runs():
    import agents

    results = run_examples(agents, "agents")
    assert results.failed == 0
