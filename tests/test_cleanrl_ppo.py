"""The CleanRL-style single-file PPO (training_scripts/cleanrl_ppo.py) runs, repeats and learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training_scripts.cleanrl_ppo import Agent, Args, parse_args, train

TINY = {"scenario": "small", "num_envs": 4, "num_steps": 8, "total_timesteps": 64}


def test_command_line_flags_fill_args():
    args = parse_args(
        ["--num-envs", "8", "--no-anneal-lr", "--gamma", "0.5", "--target-kl", "0.02"]
    )
    assert (args.num_envs, args.anneal_lr, args.gamma, args.target_kl) == (8, False, 0.5, 0.02)
    assert args.log_dir is None and args.scenario == "default"
    assert Args(num_envs=8, num_steps=4, total_timesteps=100).num_iterations == 3


def test_multidiscrete_heads_sum_log_probabilities():
    torch.manual_seed(0)
    agent = Agent(obs_dim=5, nvec=np.array([2, 3, 4]), hidden=8)
    x = torch.randn(6, 5)
    action, logprob, entropy, value = agent.get_action_and_value(x)
    assert action.shape == (6, 3) and value.shape == (6, 1)
    assert (action < torch.tensor([2, 3, 4])).all()
    logits = agent.actor(x).split([2, 3, 4], dim=1)
    expected = sum(
        torch.log_softmax(part, dim=1).gather(1, action[:, [i]]).squeeze(1)
        for i, part in enumerate(logits)
    )
    torch.testing.assert_close(logprob, expected)
    assert (entropy > 0).all()


def test_tiny_run_repeats_bit_for_bit(tmp_path):
    first = train(Args(**TINY, seed=3, verbose=False, log_dir=str(tmp_path / "tb")))
    second = train(Args(**TINY, seed=3, verbose=False))
    assert first["global_step"] == 64
    assert first["mean_rewards"] == second["mean_rewards"]
    for a, b in zip(
        first["agent"].state_dict().values(), second["agent"].state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any((tmp_path / "tb").iterdir())  # TensorBoard events written
    other = train(Args(**TINY, seed=4, verbose=False))
    assert other["mean_rewards"] != first["mean_rewards"]


def test_truncation_bootstrap_runs_past_the_time_limit():
    # 4 envs x 16 steps x 8 iterations = 128 steps per env: crosses the 100-step horizon
    out = train(
        Args(
            scenario="small",
            num_envs=4,
            num_steps=16,
            total_timesteps=512,
            gamma=0.9,
            verbose=False,
        )
    )
    assert out["global_step"] == 512
    assert np.isfinite(out["mean_rewards"]).all()


@pytest.mark.slow
def test_ppo_improves_the_sum_rate_on_the_small_scenario():
    out = train(
        Args(scenario="small", num_envs=32, num_steps=8, total_timesteps=8192, verbose=False)
    )
    rewards = np.asarray(out["mean_rewards"])
    # mean step reward (Mbit/s) of the last 4 rollouts against the first 4 (random policy)
    assert rewards[-4:].mean() > 1.2 * rewards[:4].mean()
