"""agents.make("pretrained", env): shipped weights picked for the env, its objective and K."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import agents
import qfl_gym  # noqa: F401
from agents.pretrained import (
    INDEX_FILE,
    PRETRAINED_DIR,
    PretrainedWeights,
    add_weights,
    available_weights,
    entry_from_recipe,
    select_weights,
)

DEFAULT = "device-policy-ca82bc6672cf.pt"
CASE_STUDY = "device-policy-4c71897d6a92.pt"
CASE_STUDY_FULL = "device-policy-62902f3a510c.pt"


def test_every_weights_file_has_an_index_entry_and_vice_versa():
    files = {p.name for p in PRETRAINED_DIR.glob("*.pt")}
    entries = available_weights()
    assert files and sorted(files) == sorted(e.file for e in entries)
    for entry in entries:
        assert entry.path.is_file()
        assert entry.path.with_suffix(".json").is_file(), entry.file


def test_index_entries_agree_with_their_recipes():
    from training_scripts.train import PRETRAINED_DIR as TRAIN_DIR
    from training_scripts.train import load_recipe

    assert TRAIN_DIR.resolve() == PRETRAINED_DIR.resolve()
    for entry in available_weights():
        record = json.loads(entry.path.with_suffix(".json").read_text())
        assert load_recipe(entry.path.with_suffix(".json")).key() == entry.recipe_key
        rebuilt = entry_from_recipe(
            record,
            entry.file,
            quality=entry.quality,
            reproduce=entry.reproduce,
            reproduce_seconds=entry.reproduce_seconds,
            timing=entry.timing,
        )
        assert rebuilt == entry


@pytest.mark.parametrize(
    "env_id,kwargs,expected",
    [
        ("qfl_gym/ChannelPower-v0", {}, DEFAULT),
        ("qfl_gym/QFL-v0", {"scenario": "case-study"}, CASE_STUDY),
        ("qfl_gym/QFL-v0", {"scenario": "case-study-full"}, CASE_STUDY_FULL),
        # full participation with the default objective: a round waits for the slowest upload
        ("qfl_gym/QFL-v0", {"scenario": "case-study", "participation": "full"}, CASE_STUDY_FULL),
        (
            "qfl_gym/ChannelPower-v0",
            {"scenario": "case-study", "objective": "deliveries"},
            CASE_STUDY,
        ),
    ],
)
def test_picks_the_weights_of_the_env_and_its_objective(env_id, kwargs, expected):
    env = gym.make(env_id, **kwargs)
    assert select_weights(env).file == expected
    agent = agents.make("pretrained", gym.wrappers.RecordEpisodeStatistics(env), seed=0)
    assert agent.weights.file == expected and agent.path == PRETRAINED_DIR / expected


def test_soft_preference_prefers_the_closest_regime_then_the_closest_k(tmp_path):
    base = available_weights()[0]
    fields = {**vars(base), "objective": "sum-rate", "finetuned_devices": 0, "finetune_steps": 0}
    far = PretrainedWeights(**{**fields, "file": "device-policy-aaaaaaaaaaaa.pt", "slot_s": 9.0})
    near_k50 = PretrainedWeights(
        **{**fields, "file": "device-policy-bbbbbbbbbbbb.pt", "trained_devices": 50}
    )
    near_k10 = PretrainedWeights(**{**fields, "file": "device-policy-cccccccccccc.pt"})
    from agents.pretrained import write_index

    write_index([far, near_k50, near_k10], tmp_path)
    env = gym.make("qfl_gym/ChannelPower-v0", sic_residual=base.sic_residual, slot_s=base.slot_s)
    assert select_weights(env, folder=tmp_path).file == near_k10.file
    env50 = gym.make(
        "qfl_gym/ChannelPower-v0",
        sic_residual=base.sic_residual,
        slot_s=base.slot_s,
        num_devices=40,
    )
    assert select_weights(env50, folder=tmp_path).file == near_k50.file
    env_far = gym.make("qfl_gym/ChannelPower-v0", sic_residual=base.sic_residual, slot_s=8.0)
    assert select_weights(env_far, folder=tmp_path).file == far.file


def test_method_filter():
    env = gym.make("qfl_gym/ChannelPower-v0")
    assert agents.make("pretrained", env, method="imitation").weights.file == DEFAULT
    ppo = agents.make("pretrained", env, method="ppo").weights
    assert ppo.method == "ppo" and ppo.objective == "sum-rate" and ppo.sic_residual == 0.0
    # the PPO weights of the imperfect-SIC regime score best there
    sic = gym.make("qfl_gym/ChannelPower-v0", scenario="imperfect-sic")
    assert agents.make("pretrained", sic).weights.method == "ppo"
    with pytest.raises(ValueError, match=r"asked for imitation\+ppo"):
        agents.make("pretrained", env, method="imitation+ppo")
    with pytest.raises(ValueError, match="method"):
        agents.make("pretrained", env, method="bc")


@pytest.mark.parametrize(
    "kwargs,reason",
    [
        ({"num_subchannels": 3}, "N=4, env has N=3"),
        ({"num_power_levels": 5}, "L=4, env has L=5"),
    ],
)
def test_no_fit_lists_what_exists_and_why(kwargs, reason):
    env = gym.make("qfl_gym/ChannelPower-v0", **kwargs)
    with pytest.raises(ValueError) as excinfo:
        agents.make("pretrained", env)
    message = str(excinfo.value)
    assert "no shipped device-policy weights fit" in message
    for entry in available_weights():
        assert entry.describe() in message
    assert f"{DEFAULT}: imitation of local-search, objective sum-rate, N=4, L=4" in message
    assert "SIC residual 0," in message and "trained on ChannelPower-v0 at K=10" in message
    assert message.count(reason) == len(available_weights())
    assert "objective deliveries, wanted sum-rate" in message


def test_loads_and_beats_random_on_a_fixed_seed():
    env = gym.make("qfl_gym/ChannelPower-v0", horizon=10)
    totals = {}
    for name in ("pretrained", "random"):
        player = agents.make(name, env, seed=0)
        obs, info = env.reset(seed=321)
        rewards = []
        for _ in range(10):
            obs, reward, _, _, info = env.step(player.act(obs, info))
            rewards.append(reward)
        totals[name] = float(np.mean(rewards))
    assert totals["pretrained"] > 1.3 * totals["random"], totals


@pytest.mark.parametrize("num_devices", [4, 50])
def test_same_weights_run_at_any_k(num_devices):
    env = gym.make("qfl_gym/ChannelPower-v0", num_devices=num_devices)
    agent = agents.make("pretrained", env, seed=0, samples=4)
    assert agent.weights.file == DEFAULT
    obs, info = env.reset(seed=5)
    action = agent.act(obs, info)
    assert action.shape == (2 * num_devices,)
    env.unwrapped.codec.validate(action)
    assert agent.last_stats["objective_evaluations"] == 5
    env.step(action)


def test_seeded_sampling_is_reproducible():
    env = gym.make("qfl_gym/QFL-v0", scenario="case-study")
    obs, info = env.reset(seed=0)
    a = agents.make("pretrained", env, seed=3, deterministic=False)
    b = agents.make("pretrained", env, seed=3, deterministic=False)
    first = a.act(obs, info)
    np.testing.assert_array_equal(first, b.act(obs, info))
    a.reset(seed=3)
    np.testing.assert_array_equal(first, a.act(obs, info))


def test_add_weights_copies_and_indexes_a_cache_folder(tmp_path):
    source = tmp_path / "cache" / DEFAULT.removesuffix(".pt")
    source.mkdir(parents=True)
    (source / "device_policy.pt").write_bytes((PRETRAINED_DIR / DEFAULT).read_bytes())
    (source / "recipe.json").write_text((PRETRAINED_DIR / DEFAULT).with_suffix(".json").read_text())
    target = tmp_path / "shipped"
    entry = add_weights(source / "device_policy.pt", quality={"ratio": 0.5}, folder=target)
    assert (target / DEFAULT).is_file() and (target / INDEX_FILE).is_file()
    assert available_weights(target) == [entry]
    record = json.loads((PRETRAINED_DIR / DEFAULT).with_suffix(".json").read_text())
    assert entry.recipe_key == DEFAULT[14:26] and entry.objective == "sum-rate"
    assert entry.reproduce_seconds == record["seconds"] and entry.quality == {"ratio": 0.5}
    assert entry.reproduce == f"qfl-gym train --recipe {entry.recipe_key}"
    again = add_weights(target / DEFAULT, quality={"ratio": 0.7}, folder=target)
    assert available_weights(target) == [again]
    with pytest.raises(ValueError, match="device-policy-<key>"):
        add_weights(tmp_path / "weights.pt", folder=target)


def test_listing_weights_imports_no_torch():
    code = "import sys, agents.pretrained as p; p.available_weights();print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
