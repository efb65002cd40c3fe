"""Native batched ChannelPower-v0: equivalence with single envs, autoreset, SB3 adapter."""

from __future__ import annotations

import copy
import pickle

import gymnasium as gym
import numpy as np
import pytest
from conftest import reference_sinr
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st

import qfl_gym
from qfl_gym.vector import ChannelPowerVectorEnv
from qfl_gym.wireless import channel_batch, noma
from qfl_gym.wireless.channel import UplinkChannel
from qfl_gym.wireless.channel_batch import UplinkChannelBatch
from qfl_gym.wireless.config import uplink_config

ENV_ID = "qfl_gym/ChannelPower-v0"


@pytest.fixture
def one_torch_thread():
    """SB3 smoke trainings: tiny networks, so one torch thread (no oversubscription)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


STEP_KEYS = {"rate_bps", "sinr_db", "sum_rate_bps", "energy_j", "outage"}

# scenarios that exercise every branch of the channel: plain, mobile + penalties,
# imperfect SIC + Rician, static fading (speed 0), independent slots (rho = 0)
SCENARIOS = [
    {"horizon": 30},
    {"scenario": "dense-mobile", "num_devices": 12, "horizon": 25},
    {"scenario": "imperfect-sic", "fading": "rician", "horizon": 25},
    {"speed_mps": 0.0, "horizon": 10},
    {"scenario": "small", "speed_mps": 300.0, "slot_s": 1.0, "horizon": 10},
]


def native(n, **kwargs):
    return gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)


def sync(n, mode=AutoresetMode.NEXT_STEP, **kwargs):
    vector_kwargs = {"autoreset_mode": mode}
    return gym.make_vec(ENV_ID, n, vectorization_mode="sync", vector_kwargs=vector_kwargs, **kwargs)


def random_actions(env, rng):
    nvec = env.single_action_space.nvec
    return rng.integers(0, nvec, (env.num_envs, len(nvec)))


def assert_info_equal(a: dict, b: dict, where: str) -> None:
    assert set(a) == set(b), f"{where}: info keys differ: {set(a) ^ set(b)}"
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, dict):
            assert_info_equal(x, y, f"{where}/{key}")
        elif key.startswith("_"):
            np.testing.assert_array_equal(x, y, err_msg=f"{where}/{key}")
        elif key == "problem":
            for p, q in zip(x, y, strict=True):
                assert (p is None) == (q is None)
                if p is not None:
                    np.testing.assert_allclose(p.gains, q.gains, rtol=1e-10)
        elif key == "final_obs":
            for p, q in zip(x, y, strict=True):
                assert (p is None) == (q is None)
                if p is not None:
                    np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9, err_msg=f"{where}/{key}")


def assert_step_equal(a, b, where: str) -> None:
    obs_a, rew_a, term_a, trunc_a, info_a = a
    obs_b, rew_b, term_b, trunc_b, info_b = b
    assert obs_a.dtype == obs_b.dtype == np.float32
    np.testing.assert_allclose(obs_a, obs_b, rtol=1e-6, atol=1e-6, err_msg=where)
    np.testing.assert_allclose(rew_a, rew_b, rtol=1e-9, err_msg=where)
    np.testing.assert_array_equal(term_a, term_b, err_msg=where)
    np.testing.assert_array_equal(trunc_a, trunc_b, err_msg=where)
    assert_info_equal(info_a, info_b, where)


def test_make_vec_builds_the_native_env():
    env = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(env.unwrapped, ChannelPowerVectorEnv)
    assert env.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    # the id's default vectorization is the native env; sync stays available
    assert isinstance(gym.make_vec(ENV_ID, num_envs=2).unwrapped, ChannelPowerVectorEnv)
    assert isinstance(sync(2), gym.vector.SyncVectorEnv)
    single = gym.make(ENV_ID)
    assert env.single_observation_space == single.observation_space
    assert env.single_action_space == single.action_space
    assert env.observation_space.shape == (3, 10 * 4 + 10 + 1)
    assert env.action_space.shape == (3, 20)
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 51) and obs.dtype == np.float32
    assert info == {}
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize("blockwise", [True, False], ids=["blockwise", "per-slot"])
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("kwargs", SCENARIOS, ids=lambda k: "-".join(f"{v}" for v in k.values()))
def test_trajectories_equal_sync_vector_env_through_autoresets(
    mode, kwargs, blockwise, monkeypatch
):
    if not blockwise:  # the large-batch path: gains computed slot by slot
        monkeypatch.setattr(channel_batch, "_BLOCKWISE_MAX_VALUES", 0)
    n = 3
    ours = native(n, autoreset_mode=mode, include_problem=True, **kwargs)
    ref = sync(n, mode, **kwargs)
    assert_info_equal(ours.reset(seed=7)[1], ref.reset(seed=7)[1], "reset")
    rng = np.random.default_rng(0)
    horizon = ours.unwrapped.config.horizon
    ends = 0
    for t in range(int(2.5 * horizon)):
        actions = random_actions(ours, rng)
        a, b = ours.step(actions), ref.step(actions)
        assert_step_equal(a, b, f"step {t}")
        ends += int(a[3].any())
    assert ends == 2  # crossed two truncations and their resets


def test_each_sub_env_follows_the_single_env_with_its_seed():
    seeds = [11, 5, 2**40 + 3]
    kwargs = {"scenario": "imperfect-sic", "horizon": 12}
    ours = native(3, **kwargs)
    singles = [gym.make(ENV_ID, **kwargs) for _ in seeds]
    obs, _ = ours.reset(seed=seeds)
    for i, (env, s) in enumerate(zip(singles, seeds, strict=True)):
        np.testing.assert_array_equal(obs[i], env.reset(seed=s)[0])
    assert ours.unwrapped.np_random_seed == tuple(seeds)
    rng = np.random.default_rng(1)
    done = np.zeros(3, dtype=bool)
    for _ in range(40):  # three episodes: NEXT_STEP resets continue each generator
        actions = random_actions(ours, rng)
        obs, rew, term, trunc, info = ours.step(actions)
        for i, env in enumerate(singles):
            if done[i]:
                expected_obs, _ = env.reset()
                assert rew[i] == 0.0 and not trunc[i]
                assert not info.get("_rate_bps", np.zeros(3, dtype=bool))[i]
            else:
                expected_obs, r, _, tr, inf = env.step(actions[i])
                assert rew[i] == pytest.approx(r, rel=1e-12)
                assert trunc[i] == tr
                np.testing.assert_allclose(info["rate_bps"][i], inf["rate_bps"], rtol=1e-12)
                np.testing.assert_array_equal(info["outage"][i], inf["outage"])
            np.testing.assert_allclose(obs[i], expected_obs, rtol=1e-6, atol=1e-6)
        done = term | trunc


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scenario": "dense-mobile", "num_devices": 6, "horizon": 70},
        {"scenario": "imperfect-sic", "fading": "rician", "horizon": 70},  # blockwise
    ],
    ids=["mobile", "fixed"],
)
def test_partial_resets_desynchronize_the_envs_and_stay_equivalent(kwargs):
    """DISABLED autoreset with reset masks: envs in different blocks and episodes."""
    n, mode = 5, AutoresetMode.DISABLED
    ours = native(n, autoreset_mode=mode, include_problem=True, **kwargs)
    ref = sync(n, mode, **kwargs)
    assert_info_equal(ours.reset(seed=3)[1], ref.reset(seed=3)[1], "reset")
    rng = np.random.default_rng(2)
    for t in range(160):
        actions = random_actions(ours, rng)
        a, b = ours.step(actions), ref.step(actions)
        assert_step_equal(a, b, f"step {t}")
        mask = a[3] | (rng.random(n) < 0.04)  # ended envs plus a few early resets
        if mask.any():
            seeds = [int(s) if rng.random() < 0.5 else None for s in rng.integers(0, 99, n)]
            ra = ours.reset(seed=seeds, options={"reset_mask": mask})
            rb = ref.reset(seed=seeds, options={"reset_mask": mask})
            np.testing.assert_allclose(ra[0], rb[0], rtol=1e-6, atol=1e-6)
            assert_info_equal(ra[1], rb[1], f"reset after step {t}")
    assert len(set(ours.unwrapped.channel.slot.tolist())) > 1  # really desynchronized


def test_disabled_mode_refuses_to_step_an_ended_env():
    env = native(2, autoreset_mode="Disabled", horizon=2)
    env.reset(seed=0)
    actions = np.zeros((2, 20), dtype=np.int64)
    env.step(actions)
    assert env.step(actions)[3].all()
    with pytest.raises(ValueError, match=r"sub-environments \[0, 1\] ended"):
        env.step(actions)
    env.reset(options={"reset_mask": np.array([True, True])})
    env.step(actions)


def test_bad_actions_raise_naming_the_entry():
    env = native(2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 20\)"):
        env.step(np.zeros((3, 20), dtype=np.int64))
    bad = np.zeros((2, 20), dtype=np.int64)
    bad[1, 3] = 4
    with pytest.raises(ValueError, match=r"action\[1\]\[3\] = 4 .*device 3's sub-channel"):
        env.step(bad)
    bad[1, 3] = 0
    bad[0, 12] = -1
    with pytest.raises(ValueError, match=r"device 2's power level"):
        env.step(bad)
    with pytest.raises(ValueError, match="not an integer"):
        env.step(np.full((2, 20), 0.5))
    obs, *_ = env.step(np.zeros((2, 20)))  # integral floats are fine
    assert obs.shape == (2, 51)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_envs": 0}, "num_envs must be >= 1"),
        ({"autoreset_mode": "sometimes"}, "unknown autoreset_mode"),
        ({"render_mode": "ansi"}, "render_mode must be None"),
        ({"include_problem": "yes"}, "include_problem must be True or False"),
        ({"max_episode_steps": 5}, "horizon="),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, match):
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_devcies'"):
        ChannelPowerVectorEnv(num_envs=2, num_devcies=3)
    with pytest.raises(ValueError, match=match):
        ChannelPowerVectorEnv(**{"num_envs": 2, **kwargs})


def test_reset_seeding_and_generators():
    env = native(3)
    a, _ = env.reset(seed=4)
    b, _ = env.reset(seed=4)
    np.testing.assert_array_equal(a, b)
    c, _ = env.reset()  # unseeded: generators continue
    assert not np.array_equal(a, c)
    d, _ = env.reset(seed=[4, 5, 6])
    np.testing.assert_array_equal(a, d)  # an int s seeds env i with s + i
    with pytest.raises(ValueError, match="one per environment"):
        env.reset(seed=[1, 2])
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.array([1, 0, 1])})
    with pytest.raises(ValueError, match="call reset"):
        native(2).step(np.zeros((2, 20), dtype=np.int64))


def test_threads_do_not_change_results():
    kwargs = {"num_envs": 48, "horizon": 70}
    one = ChannelPowerVectorEnv(**kwargs)
    two = ChannelPowerVectorEnv(**kwargs, num_threads=2)
    np.testing.assert_array_equal(one.reset(seed=0)[0], two.reset(seed=0)[0])
    rng = np.random.default_rng(0)
    for _ in range(150):
        actions = random_actions(one, rng)
        a, b = one.step(actions), two.step(actions)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    two.close()
    two.step(actions)  # closing only stops the threads


def test_copies_and_pickles_continue_the_same_trajectory():
    env = native(4, scenario="dense-mobile", num_devices=5, horizon=20, fading="rician")
    env.reset(seed=9)
    rng = np.random.default_rng(3)
    for _ in range(7):
        env.step(random_actions(env, rng))
    twins = [copy.deepcopy(env), pickle.loads(pickle.dumps(env))]
    for _ in range(30):
        actions = random_actions(env, rng)
        out = env.step(actions)
        for twin in twins:
            other = twin.step(actions)
            np.testing.assert_array_equal(out[0], other[0])
            np.testing.assert_array_equal(out[1], other[1])


def test_problems_describe_the_next_decision():
    env = native(3, include_problem=True, scenario="imperfect-sic")
    _, info = env.reset(seed=1)
    problems = info["problem"]
    assert info["_problem"].all()
    np.testing.assert_array_equal(problems[2].gains, env.unwrapped.gains[2])
    np.testing.assert_array_equal(env.unwrapped.problem(2).gains, problems[2].gains)
    actions = random_actions(env, np.random.default_rng(0))
    channels, levels = env.unwrapped.decode_actions(actions)
    _, reward, _, _, info = env.step(actions)
    for i in range(3):
        assert reward[i] == pytest.approx(problems[i].reward(channels[i], levels[i]), rel=1e-9)
        np.testing.assert_allclose(
            info["rate_bps"][i], problems[i].rates(channels[i], levels[i]), rtol=1e-9
        )
    assert set(info) == STEP_KEYS | {"problem"} | {f"_{k}" for k in STEP_KEYS | {"problem"}}
    with pytest.raises(ValueError, match="index must be <= 2"):
        env.unwrapped.problem(3)


def test_channel_batch_matches_single_channels_with_mobility_and_partial_resets():
    cfg = uplink_config("dense-mobile", num_devices=7, fading="rician", horizon=70)
    singles = [UplinkChannel(cfg) for _ in range(4)]
    batch = UplinkChannelBatch(cfg, 4)
    expected = [c.reset(np.random.default_rng(s)) for s, c in enumerate(singles)]
    got = batch.reset([np.random.default_rng(s) for s in range(4)])
    np.testing.assert_array_equal(got, np.array(expected))
    for t in range(150):
        if t % 37 == 36:  # reset cell 2 alone: it leaves the others' block schedule
            singles[2].reset(np.random.default_rng(100 + t))
            batch.reset([np.random.default_rng(100 + t)], np.array([2]))
        expected = np.array([c.step() for c in singles])
        np.testing.assert_allclose(batch.step(), expected, rtol=1e-10)
        np.testing.assert_allclose(
            batch.positions_m, np.array([c.positions_m for c in singles]), rtol=1e-12
        )
    assert not batch.gains.flags.writeable


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 7),
    n=st.integers(1, 4),
    m=st.integers(1, 6),
    eps=st.sampled_from([0.0, 0.05, 1.0]),
    ties=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_device_major_sinr_is_the_sic_formula(k, n, m, eps, ties, seed):
    rng = np.random.default_rng(seed)
    gains = rng.exponential(size=(m, k, n)) * 1e-9
    if ties:  # equal received powers: decoded lower index first
        gains[:] = 1e-9
    power = rng.choice([0.01, 0.1], size=(m, k))
    channels = rng.integers(0, n, (m, k))
    noise = np.full(n, 1e-12)
    got = noma.sic_sinr_device_major(
        (power * np.take_along_axis(gains, channels[..., None], 2)[..., 0]).T,
        channels.T,
        noise,
        eps,
    ).T
    for j in range(m):
        expected = reference_sinr(gains[j], power[j], channels[j], noise, eps)
        np.testing.assert_allclose(got[j], expected, rtol=1e-9)


# ------------------------------------------------------------ SB3 adapter
def test_sb3_adapter_follows_the_terminal_observation_convention():
    from qfl_gym.vector.sb3 import SB3VecEnv

    with pytest.raises(ValueError, match="SAME_STEP"):
        SB3VecEnv(native(2))
    kwargs = {"scenario": "small", "horizon": 5}
    venv = SB3VecEnv(native(3, autoreset_mode="SameStep", **kwargs), info_keys=("sum_rate_bps",))
    ref = native(3, autoreset_mode="SameStep", **kwargs)
    venv.seed(21)
    obs = venv.reset()
    np.testing.assert_array_equal(obs, ref.reset(seed=21)[0])
    rng = np.random.default_rng(0)
    for t in range(12):
        actions = random_actions(ref, rng)
        venv.step_async(actions)
        obs, rewards, dones, infos = venv.step_wait()
        r_obs, r_rew, _, r_trunc, r_info = ref.step(actions)
        np.testing.assert_array_equal(obs, r_obs)
        np.testing.assert_allclose(rewards, r_rew.astype(np.float32))
        assert rewards.dtype == np.float32 and len(infos) == 3
        np.testing.assert_array_equal(dones, r_trunc)
        for i in range(3):
            source = r_info["final_info"] if dones[i] else r_info
            assert infos[i]["sum_rate_bps"] == source["sum_rate_bps"][i]
            if dones[i]:
                np.testing.assert_array_equal(
                    infos[i]["terminal_observation"], r_info["final_obs"][i]
                )
                assert infos[i]["TimeLimit.truncated"] is True
            else:
                assert "terminal_observation" not in infos[i]
        assert dones.all() == ((t + 1) % 5 == 0)
    assert venv.get_attr("num_devices") == [4, 4, 4]
    assert venv.env_method("problem", 0)[0].gains.shape == (4, 2)
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 3


@pytest.mark.parametrize("env_id", qfl_gym.ENV_IDS)
def test_make_sb3_vec_env_works_for_every_id(env_id):
    from stable_baselines3.common.vec_env import VecMonitor

    from qfl_gym.vector.sb3 import SB3VecEnv, make_sb3_vec_env

    kwargs = {
        ENV_ID: {"scenario": "small", "horizon": 3},
        "qfl_gym/QFL-v0": {"scenario": "small", "rounds": 3},
    }.get(env_id, {})
    venv = make_sb3_vec_env(env_id, num_envs=2, seed=1, **kwargs)
    assert isinstance(venv, VecMonitor) and isinstance(venv.venv, SB3VecEnv)
    obs = venv.reset()
    assert obs.shape == (2, *venv.observation_space.shape)
    nvec = venv.action_space.nvec
    rng = np.random.default_rng(0)
    for _ in range(4):
        obs, rewards, dones, infos = venv.step(rng.integers(0, nvec, (2, len(nvec))))
        assert obs.shape == (2, *venv.observation_space.shape) and rewards.shape == (2,)
        for i in np.flatnonzero(dones):
            assert "terminal_observation" in infos[i] and "episode" in infos[i]
    venv.close()


@pytest.mark.slow
def test_sb3_ppo_trains_on_the_native_vector_env(one_torch_thread):
    from stable_baselines3 import PPO

    from qfl_gym.vector.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env(ENV_ID, num_envs=32, seed=0, scenario="small", horizon=16)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=256, n_epochs=2, seed=0)
    model.learn(32 * 16 * 4)
    assert model.num_timesteps == 32 * 16 * 4
    episodes = list(model.ep_info_buffer)
    assert len(episodes) == 100 and all(e["l"] == 16 for e in episodes)
    # the policy acts in the env's action space
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (32, 8)
