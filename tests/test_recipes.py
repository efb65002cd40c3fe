"""Device-policy recipes: what recipe_for_env trains, reloading shipped recipes, the CLI."""

from __future__ import annotations

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest

import agents
import qfl_gym  # noqa: F401
from agents.pretrained import PRETRAINED_DIR, available_weights
from training_scripts.cli import main
from training_scripts.train import (
    FINETUNE_STEPS,
    FINETUNE_STEPS_AUTOREGRESSIVE,
    RECIPE_NETWORK,
    RECIPE_PPO_STEPS,
    ROUND_TIME_TEACHER,
    DevicePolicyRecipe,
    load_recipe,
    recipe_for_env,
)


def test_recipes_train_the_autoregressive_network_and_fine_tune_only_where_needed():
    cp50 = recipe_for_env(gym.make("qfl_gym/ChannelPower-v0", scenario="case-study"))
    assert {k: getattr(cp50, k) for k in RECIPE_NETWORK} == RECIPE_NETWORK
    assert dict(cp50.uplink)["num_devices"] == 10 and cp50.finetune_steps == 0  # zero-shot
    qfl = recipe_for_env(gym.make("qfl_gym/QFL-v0", scenario="case-study"), method="ppo")
    assert dict(qfl.uplink)["objective"] == "deliveries" and qfl.ppo_steps == RECIPE_PPO_STEPS
    assert (qfl.finetune_devices, qfl.finetune_steps) == (50, FINETUNE_STEPS_AUTOREGRESSIVE)
    full = recipe_for_env(gym.make("qfl_gym/QFL-v0", scenario="case-study-full"))
    assert dict(full.uplink)["objective"] == "round-time"
    assert {k: getattr(full, k) for k in ROUND_TIME_TEACHER} == ROUND_TIME_TEACHER
    assert full.head == "autoregressive"
    assert (full.finetune_devices, full.finetune_steps) == (50, FINETUNE_STEPS_AUTOREGRESSIVE)
    assert full.key() == "62902f3a510c"  # the shipped case-study-full weights
    old = recipe_for_env(
        gym.make("qfl_gym/ChannelPower-v0", scenario="case-study"),
        mixer="deepsets",
        head="independent",
    )
    assert old.finetune_steps == FINETUNE_STEPS


def test_recipe_keys_without_the_head_field_stay_as_they_were():
    recipe = DevicePolicyRecipe(uplink={"num_devices": 10}, method="imitation")
    fields = dataclasses.asdict(recipe)
    assert "head" in fields and recipe.head == "independent"
    autoregressive = dataclasses.replace(recipe, head="autoregressive")
    assert autoregressive.key() != recipe.key()


@pytest.mark.parametrize("entry", available_weights(), ids=lambda e: e.recipe_key)
def test_every_shipped_recipe_reloads_with_its_key(entry):
    for source in (
        entry.recipe_key,
        entry.file,
        str(entry.path),
        str(entry.path.with_suffix(".json")),
    ):
        assert load_recipe(source).key() == entry.recipe_key
    assert entry.reproduce == f"qfl-gym train --recipe {entry.recipe_key}"


def test_unknown_recipe_lists_the_shipped_ones(tmp_path):
    with pytest.raises(ValueError, match="shipped recipes: .*" + available_weights()[0].recipe_key):
        load_recipe("0123456789ab")
    bad = tmp_path / "recipe.json"
    bad.write_text(json.dumps({"recipe": {"method": "imitation", "epochs": 3}}))
    with pytest.raises(ValueError, match=r"unknown recipe fields \['epochs'\]"):
        load_recipe(bad)


def test_cli_trains_a_recipe_file_and_the_weights_act(tmp_path, capsys):
    recipe = DevicePolicyRecipe(
        uplink={"num_devices": 4, "num_subchannels": 2, "num_power_levels": 3},
        method="imitation",
        teacher="greedy",
        imitation_samples=256,
        imitation_epochs=3,
        imitation_horizon=16,
        d_model=8,
        n_layers=1,
        mixer="grid",
        head="autoregressive",
    )
    source = tmp_path / "recipe.json"
    source.write_text(json.dumps({"recipe": dataclasses.asdict(recipe)}))
    assert main(["train", "--recipe", str(source), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    weights = tmp_path / "out" / f"device-policy-{recipe.key()}" / "device_policy.pt"
    assert weights.is_file() and str(weights) in printed
    record = json.loads((weights.parent / "recipe.json").read_text())
    assert record["recipe"]["head"] == "autoregressive"
    assert record["imitation_losses"][-1] < record["imitation_losses"][0]
    env = gym.make("qfl_gym/ChannelPower-v0", scenario="small", num_devices=6, num_power_levels=3)
    with pytest.raises(ValueError, match="3 power levels but the env has num_power_levels=2"):
        agents.make(
            "device-policy", gym.make("qfl_gym/ChannelPower-v0", scenario="small"), path=weights
        )
    agent = agents.make("device-policy", env, seed=0, path=weights)
    obs, info = env.reset(seed=5)
    action = agent.act(obs, info)
    env.unwrapped.codec.validate(action)
    assert action.shape == (12,) and np.all(action >= 0)


def test_shipped_folder_is_where_the_recipes_look():
    from training_scripts.train import PRETRAINED_DIR as TRAIN_DIR

    assert TRAIN_DIR == PRETRAINED_DIR
