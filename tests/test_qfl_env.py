"""``qfl_gym/QFL-v0``: API conformance, round mechanics, determinism, learning, allocation."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from conftest import tiny_qfl
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import qfl_gym
from qfl_gym.envs.observation import LOSS_FEATURE_BOUND
from qfl_gym.envs.qfl import QFLEnv
from qfl_gym.envs.qfl_scenario import QFL_PRESETS, QFLScenario, qfl_scenario
from qfl_gym.wireless.problem import AllocationProblem

ENV_ID = "qfl_gym/QFL-v0"
# a tiny, fast variant of the small preset for mechanics tests
TINY = tiny_qfl(rounds=5)


def make(**overrides):
    return gym.make(ENV_ID, scenario="small", **{**TINY, **overrides})


# --------------------------------------------------------------- conformance
def test_registered_and_import_stays_light():
    assert ENV_ID in qfl_gym.ENV_IDS
    code = (
        "import sys, qfl_gym, qfl_gym.envs, qfl_gym.learning, qfl_gym.envs.qfl_scenario;"
        "import gymnasium as gym; gym.spec('qfl_gym/QFL-v0');"
        "print(any(m in sys.modules for m in ('torch', 'pennylane')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("preset", ["small", pytest.param("case-study", marks=pytest.mark.slow)])
def test_gymnasium_and_sb3_env_checkers_pass(preset):
    env = gym.make(ENV_ID, scenario=preset)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(ENV_ID, scenario=preset).unwrapped, warn=True)


def test_preset_scales():
    small, case = QFL_PRESETS["small"], QFL_PRESETS["case-study"]
    assert (small.num_devices, small.uplink.num_subchannels) == (8, 4)
    assert (small.learning.n_qubits, small.learning.n_layers) == (4, 2)
    assert (case.num_devices, case.uplink.num_subchannels, case.rounds) == (50, 4, 30)
    for sc in (small, case):
        assert sc.uplink.slot_s == 1.0  # slot = round period
        assert sc.uplink.horizon == sc.rounds


def test_observation_info_and_round_mechanics():
    env = make(render_mode="ansi")
    u = env.unwrapped
    K, N = 4, 2
    obs, info = env.reset(seed=3)
    assert obs.shape == (K * N + 3 * K + 2,) and obs.dtype == np.float32
    assert env.observation_space.contains(obs)
    assert isinstance(info["problem"], AllocationProblem)
    ln_c = np.log(3)
    assert obs[K * N + K] == pytest.approx(info["global_loss"] / ln_c, rel=1e-6)
    np.testing.assert_allclose(obs[K * N + K + 1 : K * N + 2 * K + 1], info["local_loss"] / ln_c)
    np.testing.assert_array_equal(obs[K * N + 2 * K + 1 :], 0.0)
    assert "no round yet" in env.render()

    previous_loss = info["global_loss"]
    staleness = np.zeros(K)
    reported = info["local_loss"].copy()
    for t in range(1, 6):
        action = env.action_space.sample()
        problem = info["problem"]
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs)
        for key, shape in [
            ("rate_bps", (K,)),
            ("sinr_db", (K,)),
            ("energy_j", (K,)),
            ("outage", (K,)),
            ("delivered", (K,)),
            ("latency_s", (K,)),
            ("local_loss", (K,)),
            ("packet_error_prob", (K,)),
        ]:
            assert np.shape(info[key]) == shape, key
        assert info["delivered"].dtype == np.bool_
        ch, lv = u.decode_action(action)
        np.testing.assert_allclose(info["rate_bps"], problem.rates(ch, lv))
        np.testing.assert_allclose(info["latency_s"], u.config.update_bits / info["rate_bps"])
        on_time = info["latency_s"] <= u.scenario.deadline_s
        assert not np.any(info["delivered"] & ~on_time)
        np.testing.assert_allclose(
            info["energy_j"],
            u.config.power_levels_w[lv] * np.minimum(info["latency_s"], u.scenario.deadline_s),
        )
        assert reward == pytest.approx(previous_loss - info["global_loss"])
        previous_loss = info["global_loss"]
        staleness = np.where(info["delivered"], 0, staleness + 1)
        reported = np.where(info["delivered"], info["local_loss"], reported)
        np.testing.assert_allclose(obs[K * N + 2 * K + 1 : K * N + 3 * K + 1], staleness / 5)
        np.testing.assert_allclose(obs[K * N + K + 1 : K * N + 2 * K + 1], reported / ln_c)
        assert obs[-1] == pytest.approx(t / 5)
        assert info["round"] == t and not terminated
        assert truncated == (t == 5)
    assert "local loss" in env.render()
    image = make(render_mode="rgb_array")
    image.reset(seed=0)
    image.step(image.action_space.sample())
    frame = image.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


def test_undelivered_round_keeps_the_loss_and_zero_rate_never_delivers():
    env = make(rounds=20)
    u = env.unwrapped
    _, info = env.reset(seed=0)
    loss = info["global_loss"]
    action = env.action_space.sample()
    for _ in range(20):
        gains = np.array(u.channel.gains)
        gains[0] = 0.0  # device 0 is cut off: rate 0
        u.channel.gains = gains
        _, reward, _, _, info = env.step(action)
        assert info["rate_bps"][0] == 0.0 and info["latency_s"][0] == np.inf
        assert not info["delivered"][0]
        if not info["delivered"].any():
            assert info["global_loss"] == loss and reward == 0.0
        loss = info["global_loss"]


@pytest.mark.parametrize("mode", ["accuracy", "sum-rate"])
def test_reward_options_and_energy_cost(mode):
    env = make(reward=mode, energy_cost=2.0)
    _, info = env.reset(seed=1)
    acc = info["global_accuracy"]
    _, reward, _, _, info = env.step(env.action_space.sample())
    base = info["global_accuracy"] - acc if mode == "accuracy" else info["sum_rate_bps"] / 1e6
    assert reward == pytest.approx(base - 2.0 * info["energy_j"].sum())


def test_target_accuracy_terminates():
    env = make(target_accuracy=1e-9)
    env.reset(seed=0)
    _, _, terminated, truncated, _ = env.step(env.action_space.sample())
    assert terminated and not truncated


# --------------------------------------------------------------- determinism
def _rollout(env, seed, steps=3):
    env.reset(seed=seed)
    env.action_space.seed(seed)
    out = []
    for _ in range(steps):
        obs, reward, _, _, info = env.step(env.action_space.sample())
        out.append((obs, reward, info["global_loss"], info["local_loss"], info["delivered"]))
    return out


def _assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-9)


def test_same_seed_same_losses_and_different_seed_differs():
    env = make()
    a, b = _rollout(env, 11), _rollout(make(), 11)
    _assert_same(a, b)
    c = _rollout(env, 12)
    assert not np.isclose(a[-1][2], c[-1][2])


def test_pickle_and_deepcopy_continue_identically():
    env = make()
    env.reset(seed=5)
    env.step(env.action_space.sample())
    clones = [pickle.loads(pickle.dumps(env)), copy.deepcopy(env)]
    action = env.action_space.sample()
    ref = env.step(action)
    for clone in clones:
        out = clone.step(action)
        np.testing.assert_array_equal(out[0], ref[0])
        assert out[1] == ref[1]
        np.testing.assert_array_equal(out[4]["delivered"], ref[4]["delivered"])


# ----------------------------------------------------------- configuration
def test_overrides_route_to_their_part():
    env = gym.make(ENV_ID, scenario="small", n_qubits=5, num_devices=5, deadline_s=0.5)
    sc = env.unwrapped.scenario
    assert (sc.learning.n_qubits, sc.uplink.num_devices, sc.deadline_s) == (5, 5, 0.5)
    assert env.action_space.shape == (10,)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'n_qbits'.*valid:") as exc:
        gym.make(ENV_ID, scenario="small", n_qbits=3)
    for name in ("n_qubits", "num_devices", "deadline_s", "rounds", "dataset"):
        assert name in str(exc.value)
    with pytest.raises(ValueError, match="rounds"):
        qfl_scenario("small", horizon=10)
    with pytest.raises(ValueError, match=r"small.*case-study"):
        gym.make(ENV_ID, scenario="huge")
    assert qfl_scenario("small", rounds=7).uplink.horizon == 7


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"n_qubits": 1}, "n_qubits"),
        ({"n_qubits": 11}, "n_qubits"),
        ({"classes": None}, "classes"),
        ({"dirichlet_alpha": 0.0}, "dirichlet_alpha"),
        ({"dataset": "mnist"}, "dataset"),
        ({"deadline_s": 0.0}, "deadline_s"),
        ({"deadline_s": -1.0}, "deadline_s"),
        ({"deadline_s": 2.0}, "deadline_s"),  # beyond the 1 s round period
        ({"reward": "profit"}, "reward"),
        ({"target_accuracy": 1.5}, "target_accuracy"),
        ({"rounds": 0}, "rounds"),
        ({"energy_cost": -1.0}, "energy_cost"),
        ({"num_devices": 600}, "num_devices"),  # more devices than training samples
    ],
)
def test_bad_scenario_values_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        gym.make(ENV_ID, scenario="small", **overrides)


def test_scenario_objects_and_field_names():
    sc = QFLScenario()
    assert QFLEnv(scenario=sc).scenario is sc
    assert sc.replace(rounds=3).rounds == 3
    from qfl_gym.envs.qfl_scenario import _LEARNING_FIELDS, _UPLINK_FIELDS, ROUND_FIELDS

    names = [*_UPLINK_FIELDS, *_LEARNING_FIELDS, *ROUND_FIELDS]
    assert len(names) == len(set(names))  # flat overrides are unambiguous
    with pytest.raises(ValueError, match="uplink"):
        QFLScenario(uplink="default")


# ------------------------------------------------------------ learning works
def test_real_learning_with_every_update_delivered():
    """small preset, error-free instant uplink: accuracy rises far above chance (1/4)."""
    env = gym.make(ENV_ID, scenario="small", packet_errors=False, update_bits=1.0, rounds=15)
    u = env.unwrapped
    _, info = env.reset(seed=0)
    start = info["global_accuracy"]
    action = u.encode_action(np.arange(8) % 4, np.full(8, 3))
    for _ in range(15):
        _, _, _, truncated, info = env.step(action)
        assert info["delivered"].all()
    assert truncated
    assert info["global_accuracy"] >= 0.6 > start + 0.2
    assert info["global_loss"] < np.log(4) * 0.7


def test_allocation_that_delivers_more_reaches_lower_loss():
    """Spreading devices over sub-channels at full power vs. all on one at minimum power."""
    env = gym.make(ENV_ID, scenario="small", rounds=10)
    u = env.unwrapped
    K, N, L = 8, 4, 4
    spread = u.encode_action(np.arange(K) % N, np.full(K, L - 1))
    starve = u.encode_action(np.zeros(K, int), np.zeros(K, int))
    delivered = {"spread": 0, "starve": 0}
    loss = {"spread": [], "starve": []}
    for seed in range(4):
        for name, action in (("spread", spread), ("starve", starve)):
            env.reset(seed=seed)
            for _ in range(10):
                _, _, _, _, info = env.step(action)
                delivered[name] += info["num_delivered"]
            loss[name].append(info["global_loss"])
    assert delivered["spread"] > 3 * delivered["starve"]
    assert np.mean(loss["spread"]) < np.mean(loss["starve"]) - 0.05


def test_loss_feature_bound_is_documented_cap():
    assert LOSS_FEATURE_BOUND == 16.0
    env = make()
    assert env.observation_space.high[4 * 2 + 4] == LOSS_FEATURE_BOUND
