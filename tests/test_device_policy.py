"""DevicePolicy: permutation equivariance, any K with one set of weights, SB3 and rl-zoo3."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import agents
import qfl_gym  # noqa: F401
from agents.device_policy import (
    DevicePolicy,
    layout_of,
    load_weights,
    policy_for_layout,
    save_weights,
)
from qfl_gym.envs.observation import channel_power_layout, qfl_layout

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

L = 3


def make_policy(layout, mixer="deepsets", seed=0, **kwargs) -> DevicePolicy:
    torch.manual_seed(seed)
    K, N = layout.num_devices, layout.options["N"]
    return DevicePolicy(
        layout.space(),
        spaces.MultiDiscrete([N] * K + [L] * K),
        lambda _: 1e-3,
        layout=layout,
        mixer=mixer,
        d_model=16,
        **kwargs,
    )


def random_obs(layout, batch, seed=0) -> torch.Tensor:
    space = layout.space()
    space.seed(seed)
    obs = np.stack([space.sample() for _ in range(batch)])
    # keep SNR-like magnitudes (the Box bounds are +-16)
    return torch.as_tensor(np.clip(obs, -3, 3), dtype=torch.float32)


def permute_devices(layout, obs: torch.Tensor, perm: np.ndarray) -> torch.Tensor:
    """The observation with devices reordered (device i of the result = perm[i])."""
    parts = layout.split(obs)
    blocks = []
    for seg in layout.segments:
        block = parts[seg.name]
        if seg.per_device:
            block = block[:, perm]
        blocks.append(block.reshape(obs.shape[0], -1))
    return torch.cat(blocks, -1)


def logits_and_value(policy, obs):
    with torch.no_grad():
        logits, value = policy.mlp_extractor(obs)
    K, N = policy.layout.num_devices, policy.layout.options["N"]
    ch = logits[:, : K * N].reshape(-1, K, N)
    lv = logits[:, K * N :].reshape(-1, K, L)
    return ch, lv, value


@pytest.mark.parametrize("mixer", ["deepsets", "attention", "grid"])
@pytest.mark.parametrize(
    "layout", [channel_power_layout(7, 4), qfl_layout(6, 3, wall_time=True)], ids=["cp", "qfl"]
)
def test_permuting_devices_permutes_logits_and_keeps_the_value(layout, mixer):
    policy = make_policy(layout, mixer)
    obs = random_obs(layout, 5)
    perm = np.random.default_rng(1).permutation(layout.num_devices)
    ch, lv, value = logits_and_value(policy, obs)
    ch_p, lv_p, value_p = logits_and_value(policy, permute_devices(layout, obs, perm))
    torch.testing.assert_close(ch_p, ch[:, perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lv_p, lv[:, perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(value_p, value, atol=1e-5, rtol=1e-5)
    # the logits do depend on the devices (not a constant function)
    assert not torch.allclose(ch[:, 0], ch[:, 1])


def test_deterministic_actions_follow_the_permutation():
    layout = channel_power_layout(8, 4)
    policy = make_policy(layout)
    obs = random_obs(layout, 3, seed=4)
    perm = np.random.default_rng(2).permutation(8)
    with torch.no_grad():
        a = policy._predict(obs, deterministic=True)
        a_p = policy._predict(permute_devices(layout, obs, perm), deterministic=True)
    np.testing.assert_array_equal(a_p[:, :8], a[:, :8][:, perm])
    np.testing.assert_array_equal(a_p[:, 8:], a[:, 8:][:, perm])


def test_distribution_matches_sb3_multicategorical():
    from stable_baselines3.common.distributions import MultiCategoricalDistribution

    layout = channel_power_layout(5, 4)
    policy = make_policy(layout)
    obs = random_obs(layout, 6, seed=3)
    with torch.no_grad():
        logits = policy.mlp_extractor.forward_actor(obs)
        ours = policy.action_dist.proba_distribution(logits)
        ref = MultiCategoricalDistribution([4] * 5 + [L] * 5).proba_distribution(logits)
        actions = ref.sample()
        torch.testing.assert_close(ours.log_prob(actions), ref.log_prob(actions))
        torch.testing.assert_close(ours.entropy(), ref.entropy())
        torch.testing.assert_close(ours.mode(), ref.mode())
        torch.manual_seed(0)
        samples = ours.sample()
    assert samples.shape == (6, 10)
    assert (samples[:, :5] < 4).all() and (samples[:, 5:] < L).all() and (samples >= 0).all()


@pytest.mark.parametrize(
    ("mixer", "head"),
    [("deepsets", "independent"), ("attention", "independent"), ("grid", "autoregressive")],
)
def test_same_weights_run_at_k_4_10_50(mixer, head):
    policy = make_policy(channel_power_layout(10, 4), mixer, head=head)
    obs10 = random_obs(policy.layout, 2, seed=5)
    for K in (4, 10, 50):
        other = policy_for_layout(policy, channel_power_layout(K, 4))
        assert other.layout.num_devices == K
        obs = random_obs(other.layout, 2, seed=K)
        with torch.no_grad():
            actions = other._predict(obs, deterministic=True)
        assert actions.shape == (2, 2 * K)
    same = policy_for_layout(policy, policy.layout.spec)
    with torch.no_grad():
        np.testing.assert_array_equal(
            same._predict(obs10, deterministic=True), policy._predict(obs10, deterministic=True)
        )
        torch.testing.assert_close(same.predict_values(obs10), policy.predict_values(obs10))


def test_another_n_or_kind_is_refused():
    policy = make_policy(channel_power_layout(10, 4))
    with pytest.raises(ValueError, match="only K may differ"):
        policy_for_layout(policy, channel_power_layout(10, 3))
    with pytest.raises(ValueError, match="only K may differ"):
        policy_for_layout(policy, qfl_layout(10, 4))


def test_layout_and_spaces_are_checked():
    layout = channel_power_layout(4, 2)
    with pytest.raises(ValueError, match="layout"):
        DevicePolicy(layout.space(), spaces.MultiDiscrete([2] * 8), lambda _: 1e-3)
    with pytest.raises(ValueError, match="MultiDiscrete"):
        DevicePolicy(layout.space(), spaces.MultiDiscrete([3] * 8), lambda _: 1e-3, layout=layout)
    with pytest.raises(ValueError, match="features"):
        DevicePolicy(
            channel_power_layout(5, 2).space(),
            spaces.MultiDiscrete([2] * 8),
            lambda _: 1e-3,
            layout=layout,
        )


def test_sb3_save_load_round_trip_and_agent_at_another_k(tmp_path):
    from stable_baselines3 import PPO

    env = gym.make("qfl_gym/ChannelPower-v0", scenario="small", horizon=8)
    layout = env.unwrapped.observation_layout
    model = PPO(
        DevicePolicy,
        env,
        n_steps=32,
        batch_size=16,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs={"layout": layout.spec, "d_model": 16},
    )
    model.learn(64)
    model.save(tmp_path / "ppo.zip")
    loaded = PPO.load(tmp_path / "ppo.zip", device="cpu")
    assert isinstance(loaded.policy, DevicePolicy)
    obs = np.stack([layout.space().sample() for _ in range(4)]).clip(-3, 3)
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
    )
    # the same zip as an agent on a 12-device env (N and L of `small`)
    big = gym.make("qfl_gym/ChannelPower-v0", scenario="small", num_devices=12, horizon=4)
    agent = agents.make("device-policy", big, seed=0, path=tmp_path / "ppo.zip")
    obs, info = big.reset(seed=3)
    action = agent.act(obs, info)
    big.unwrapped.codec.validate(action)
    assert action.shape == (24,)
    assert agent.last_stats["decision_time_s"] > 0
    # weights file: same actions as the zip
    save_weights(model.policy, tmp_path / "w.pt")
    from_pt = agents.make("device-policy", big, seed=0, path=tmp_path / "w.pt")
    np.testing.assert_array_equal(from_pt.act(obs, info), action)


def test_weights_files_load_with_weights_only(tmp_path):
    policy = make_policy(channel_power_layout(6, 4), "attention")
    path = save_weights(policy, tmp_path / "w.pt")
    blob = torch.load(path, weights_only=True)
    assert blob["config"]["mixer"] == "attention"
    again = load_weights(path)
    obs = random_obs(policy.layout, 3)
    torch.testing.assert_close(logits_and_value(again, obs)[0], logits_and_value(policy, obs)[0])
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a device-policy weights file"):
        load_weights(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_weights(tmp_path / "missing.pt")


def test_rl_zoo3_yaml_names_the_policy_and_its_layout():
    from rl_zoo3.utils import get_class_by_name

    from training_scripts.train import policy_kwargs_for, resolve_policy
    from training_scripts.zoo_config import default_config_file, load_hyperparams

    hp = load_hyperparams(default_config_file("ppo"), "qfl_gym/ChannelPower-v0")
    assert get_class_by_name(hp.policy) is DevicePolicy  # what rl-zoo3 does with the name
    assert resolve_policy(hp.policy) is DevicePolicy
    layout = hp.algo_kwargs["policy_kwargs"]["layout"]
    env = gym.make("qfl_gym/ChannelPower-v0")
    assert layout == env.unwrapped.observation_layout.spec
    # qfl-gym train replaces the YAML's layout by the training env's (any scenario)
    from qfl_gym.vector.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env(num_envs=2, scenario="small")
    kwargs = policy_kwargs_for(DevicePolicy, hp.algo_kwargs["policy_kwargs"], venv)
    assert kwargs["layout"] == layout_of(venv).spec == "channel-power:K=4,N=2"
    policy = DevicePolicy(venv.observation_space, venv.action_space, lambda _: 1e-3, **kwargs)
    assert policy.layout.num_devices == 4


def test_sampling_agent_plays_the_best_scored_candidate(tmp_path):
    env = gym.make("qfl_gym/ChannelPower-v0", scenario="imperfect-sic", num_devices=6)
    path = save_weights(_policy_for(env), tmp_path / "w.pt")
    plain = agents.make("device-policy", env, seed=0, path=path)
    best = agents.make("device-policy", env, seed=0, path=path, samples=32)
    obs, info = env.reset(seed=11)
    problem = info["problem"]
    a, b = plain.act(obs, info), best.act(obs, info)
    env.unwrapped.codec.validate(b)
    assert best.last_stats["objective_evaluations"] == 33
    assert problem.reward(b[:6], b[6:]) >= problem.reward(a[:6], a[6:])
    with pytest.raises(ValueError, match="info"):
        best.act(obs, None)


def _policy_for(env) -> DevicePolicy:
    torch.manual_seed(0)
    layout = env.unwrapped.observation_layout
    return DevicePolicy(layout.space(), env.action_space, lambda _: 1e-3, layout=layout, d_model=16)


def test_shipped_weights_load_for_the_default_scenario_and_beat_random():
    from training_scripts.train import PRETRAINED_DIR

    env = gym.make("qfl_gym/ChannelPower-v0", horizon=10)
    agent = agents.make("device-policy", env, seed=0)  # no path: the recipe's weights
    assert agent.path.parent == PRETRAINED_DIR, (
        f"{agent.path}: the default recipe's key changed; re-ship its weights "
        "(training_scripts.train.train_device_policy, then agents.pretrained.add_weights)"
    )
    rnd = agents.make("random", env, seed=0)
    totals = {}
    for name, player in (("policy", agent), ("random", rnd)):
        obs, info = env.reset(seed=123)
        total = 0.0
        for _ in range(10):
            obs, reward, _, _, info = env.step(player.act(obs, info))
            total += reward
        totals[name] = total
    assert totals["policy"] > 1.3 * totals["random"], totals


def autoregressive_policy(layout, seed=0) -> DevicePolicy:
    """A grid + autoregressive policy with its decoder's near-uniform start sharpened."""
    policy = make_policy(layout, "grid", seed=seed, head="autoregressive")
    with torch.no_grad():
        policy.mlp_extractor.decoder.out.weight.mul_(300.0)
    return policy


def all_actions(K, N):
    grids = np.meshgrid(*([np.arange(N)] * K + [np.arange(L)] * K), indexing="ij")
    return torch.as_tensor(np.stack([g.ravel() for g in grids], 1))


def test_autoregressive_head_is_a_distribution_its_samples_and_mode_follow():
    layout = channel_power_layout(2, 2)
    policy = autoregressive_policy(layout, seed=1)
    obs = random_obs(layout, 1, seed=7)
    actions = all_actions(2, 2)  # (36, 4): every joint action
    with torch.no_grad():
        dist = policy.get_distribution(obs.expand(len(actions), -1))
        prob = dist.log_prob(actions).exp()
        torch.testing.assert_close(prob.sum(), torch.tensor(1.0))
        assert prob.max() > 0.1  # sharpened: not uniform (1/36)
        torch.manual_seed(0)
        draws = policy.get_distribution(obs.expand(40_000, -1)).sample()
        mode = policy.get_distribution(obs).mode()[0]
    index = {tuple(a): i for i, a in enumerate(actions.tolist())}
    freq = np.bincount([index[tuple(a)] for a in draws.tolist()], minlength=36) / 40_000
    np.testing.assert_allclose(freq, prob.numpy(), atol=0.012)
    # the mode is greedy in decision order: the first device's most likely pair, then the
    # second device's most likely pair given it
    snr = layout.split(obs)["snr"][0]
    first = int(snr.amax(-1).argmax())
    second = 1 - first
    pair = actions[:, [first, 2 + first]]
    marginal = {}
    for p, q in zip(pair.tolist(), prob.tolist(), strict=True):
        marginal[tuple(p)] = marginal.get(tuple(p), 0.0) + q
    best_first = max(marginal, key=marginal.get)
    assert (mode[first].item(), mode[2 + first].item()) == best_first
    given = (pair == torch.tensor(best_first)).all(1)
    best = actions[given][prob[given].argmax()]
    assert (mode[second].item(), mode[2 + second].item()) == (
        best[second].item(),
        best[2 + second].item(),
    )


def test_autoregressive_head_is_permutation_equivariant():
    layout = channel_power_layout(7, 3)
    policy = autoregressive_policy(layout)
    # continuous draws: no two devices tie on the best SNR that sets the decision order
    obs = torch.as_tensor(
        np.random.default_rng(2).normal(size=(4, layout.size)), dtype=torch.float32
    )
    perm = np.random.default_rng(3).permutation(7)
    obs_p = permute_devices(layout, obs, perm)
    idx = np.concatenate([perm, 7 + perm])
    with torch.no_grad():
        mode = policy.get_distribution(obs).mode()
        mode_p = policy.get_distribution(obs_p).mode()
        np.testing.assert_array_equal(mode_p.numpy(), mode.numpy()[:, idx])
        torch.manual_seed(0)
        sample = policy.get_distribution(obs).sample()
        lp = policy.get_distribution(obs).log_prob(sample)
        lp_p = policy.get_distribution(obs_p).log_prob(sample[:, idx])
        torch.testing.assert_close(lp_p, lp, atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(policy.predict_values(obs_p), policy.predict_values(obs))
    assert len({tuple(m) for m in mode[:, :7].tolist()}) > 1  # depends on the observation


def test_autoregressive_head_round_trips_through_weights_and_needs_the_grid(tmp_path):
    policy = autoregressive_policy(channel_power_layout(6, 4))
    again = load_weights(save_weights(policy, tmp_path / "ar.pt"))
    assert again.config()["head"] == "autoregressive"
    obs = random_obs(policy.layout, 5, seed=1)
    with torch.no_grad():
        np.testing.assert_array_equal(
            again._predict(obs, deterministic=True), policy._predict(obs, deterministic=True)
        )
    with pytest.raises(ValueError, match="needs mixer='grid'"):
        make_policy(channel_power_layout(6, 4), "deepsets", head="autoregressive")
    with pytest.raises(ValueError, match="head must be one of"):
        make_policy(channel_power_layout(6, 4), "grid", head="pointer")
