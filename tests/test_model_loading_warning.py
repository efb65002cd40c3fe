"""Every way to load a model file says that loading a pickle runs code."""

from __future__ import annotations

import re

import pytest

import agents.rl
from training_scripts.cli import main


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("train", "--resume"),
        ("evaluate", "--agent"),
        ("benchmark", "--agents"),
        ("case-study", "--ppo-model"),
    ],
)
def test_cli_help_of_model_loading_options_warns(command, option, capsys):
    assert main([command, "--help"]) == 0
    text = re.sub(r"[\s│]+", " ", capsys.readouterr().out)  # undo rich's wrapping and boxes
    block = text.split(option, 1)[1][:400]
    assert "loading it runs code stored in it" in block
    assert "only files you trust" in block


def test_sb3_agent_docstrings_warn():
    for doc in (agents.rl.__doc__, agents.rl.SB3Agent.__doc__):
        assert "runs" in doc and "code" in doc and "trust" in doc
