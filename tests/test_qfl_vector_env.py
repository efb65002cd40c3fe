"""Native batched QFL-v0: same trajectories as single envs, autoreset, batched training."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from conftest import tiny_qfl
from gymnasium.vector import AutoresetMode

import qfl_gym.vector
from qfl_gym.envs.qfl_scenario import qfl_scenario
from qfl_gym.learning.federated import FederatedLearner, LearnerBatch
from qfl_gym.learning.training import StackedTrainer
from qfl_gym.vector.qfl import QFLVectorEnv

ENV_ID = "qfl_gym/QFL-v0"
# a tiny, fast variant of the small preset (label-skewed shards of different sizes, so
# devices and environments run different numbers of minibatch steps)
TINY = tiny_qfl(batch_size=8, rounds=3)
# info keys compared exactly, to channel precision, or to training precision
EXACT = {"delivered", "num_delivered", "round", "outage", "malicious"}
LEARNING = {"global_loss", "global_accuracy", "local_loss", "dp_epsilon", "dp_epsilon_per_device"}
# float32 training of batched vs single circuits: the same per-row arithmetic, but some
# torch kernels round differently for different batch sizes (last-bit differences, equal
# on the presets); losses agree to this relative tolerance, rewards (differences of
# losses of ~1 nat) to REWARD_ATOL
LEARNING_RTOL = 1e-5
REWARD_ATOL = 1e-5


def native(n, mode=AutoresetMode.NEXT_STEP, **kwargs):
    return gym.make_vec(
        ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", autoreset_mode=mode, **kwargs
    )


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
        at = f"{where}/{key}"
        if isinstance(x, dict):
            assert_info_equal(x, y, at)
            continue
        assert x.shape == y.shape and x.dtype == y.dtype, f"{at}: {x.dtype}{x.shape} {y.dtype}"
        if key.startswith("_") or key in EXACT:
            np.testing.assert_array_equal(x, y, err_msg=at)
        elif key in ("problem", "final_obs"):
            for p, q in zip(x, y, strict=True):
                assert (p is None) == (q is None), at
                if key == "problem" and p is not None:
                    np.testing.assert_allclose(p.gains, q.gains, rtol=1e-10, err_msg=at)
                    assert p.bandwidth_hz == q.bandwidth_hz
                elif p is not None:
                    np.testing.assert_allclose(p, q, rtol=LEARNING_RTOL, atol=1e-6, err_msg=at)
        elif key in LEARNING:
            np.testing.assert_allclose(x, y, rtol=LEARNING_RTOL, atol=1e-7, err_msg=at)
        else:  # the uplink: channel precision
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12, err_msg=at)


def assert_step_equal(a, b, where: str) -> None:
    obs_a, rew_a, term_a, trunc_a, info_a = a
    obs_b, rew_b, term_b, trunc_b, info_b = b
    assert obs_a.dtype == obs_b.dtype == np.float32 and obs_a.shape == obs_b.shape
    np.testing.assert_allclose(obs_a, obs_b, rtol=LEARNING_RTOL, atol=1e-6, err_msg=where)
    np.testing.assert_allclose(rew_a, rew_b, rtol=LEARNING_RTOL, atol=REWARD_ATOL, err_msg=where)
    np.testing.assert_array_equal(term_a, term_b, err_msg=where)
    np.testing.assert_array_equal(trunc_a, trunc_b, err_msg=where)
    assert_info_equal(info_a, info_b, where)


def compare_with_sync(n, mode, steps, seed=7, **kwargs) -> dict:
    """Step the native env and SyncVectorEnv with the same actions; count what happened."""
    ours, ref = native(n, mode, **kwargs), sync(n, mode, **kwargs)
    a, b = ours.reset(seed=seed), ref.reset(seed=seed)
    np.testing.assert_allclose(a[0], b[0], rtol=LEARNING_RTOL, atol=1e-6)
    assert_info_equal(a[1], b[1], "reset")
    rng = np.random.default_rng(seed)
    seen = {"ends": 0, "mixed_steps": 0}
    for t in range(steps):
        actions = random_actions(ours, rng)
        out, expected = ours.step(actions), ref.step(actions)
        assert_step_equal(out, expected, f"step {t}")
        ended = out[2] | out[3]
        seen["ends"] += int(ended.sum())
        stepped = out[4].get("_rate_bps", np.zeros(n, dtype=bool))
        seen["mixed_steps"] += int(0 < stepped.sum() < n or 0 < ended.sum() < n)
    return seen


# ------------------------------------------------------------------ creation
def test_make_vec_builds_the_native_env_with_the_single_env_spaces():
    envs = gym.make_vec(ENV_ID, num_envs=3, **TINY)  # the id's default vectorization
    assert isinstance(envs.unwrapped, QFLVectorEnv)
    assert envs.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    single = gym.make(ENV_ID, **TINY)
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    K, N = 4, 2
    assert envs.observation_space.shape == (3, K * N + 3 * K + 2)
    assert envs.action_space.shape == (3, 2 * K)
    obs, info = envs.reset(seed=0)
    assert obs.dtype == np.float32 and envs.observation_space.contains(obs)
    _, single_info = single.reset(seed=0)
    assert set(info) == set(single_info) | {f"_{k}" for k in single_info}
    assert info["problem"][1].gains.shape == (K, N)
    assert "QFLVectorEnv(num_envs=3" in repr(envs.unwrapped)
    assert qfl_gym.vector.QFLVectorEnv is QFLVectorEnv  # lazily exported
    assert isinstance(sync(2, **TINY), gym.vector.SyncVectorEnv)  # still available


def test_importing_the_vector_package_stays_light():
    code = (
        "import sys, qfl_gym, qfl_gym.vector, gymnasium as gym; gym.spec('qfl_gym/QFL-v0');"
        "print(any(m in sys.modules for m in ('torch', 'pennylane')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------- equivalence
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_trajectories_equal_sync_vector_env_through_autoresets(mode):
    seen = compare_with_sync(3, mode, steps=8, **TINY)
    assert seen["ends"] == 6  # two common truncations of 3 envs (rounds=3)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_early_terminations_desynchronize_the_envs_and_stay_equivalent(mode):
    # a reachable target accuracy: envs terminate on different rounds, so steps mix
    # sub-envs that train, reset and end (and batched training runs on a subset)
    seen = compare_with_sync(
        4, mode, steps=14, **{**TINY, "rounds": 5, "target_accuracy": 0.7, "learning_rate": 0.2}
    )
    assert seen["mixed_steps"] >= 2 and seen["ends"] >= 6


@pytest.mark.parametrize(
    "kwargs",
    [
        # eavesdroppers, wiretap-coded uploads, secrecy reward with an energy price, mobility
        {
            "num_eavesdroppers": 2,
            "secure_upload": True,
            "reward": "secrecy-sum-rate",
            "energy_cost": 0.5,
            "mobility": True,
            "speed_mps": 20.0,
        },
        {"dp_clip_norm": 0.5, "dp_noise_multiplier": 1.0, "reward": "accuracy"},  # DP
        {"attacker_fraction": 0.25, "aggregation": "median", "packet_errors": False},
        # noisy circuits (density matrices), shot-noise evaluation, a device without qubits
        {"depolarizing_p": 0.02, "shots": 200, "qubit_budget": (3, 3, 2, 3)},
        {"precision": "double", "optimizer": "sgd", "local_epochs": 2, "reward": "sum-rate"},
    ],
    ids=["secrecy", "private", "byzantine", "noisy", "double-sgd"],
)
def test_every_option_runs_batched_and_equals_sync(kwargs):
    seen = compare_with_sync(2, AutoresetMode.NEXT_STEP, steps=4, **{**TINY, **kwargs})
    assert seen["ends"] == 2


@pytest.mark.parametrize("scenario", ["small", "secrecy"])
def test_presets_equal_sync_vector_env(scenario):
    seen = compare_with_sync(2, AutoresetMode.SAME_STEP, steps=3, scenario=scenario, rounds=2)
    assert seen["ends"] == 2


def test_each_sub_env_follows_the_single_env_with_its_seed():
    seeds = [11, 5, 2**40 + 3]
    kwargs = {**TINY, "rounds": 2}
    ours = native(3, **kwargs)
    singles = [gym.make(ENV_ID, **kwargs) for _ in seeds]
    obs, _ = ours.reset(seed=seeds)
    for i, (env, s) in enumerate(zip(singles, seeds, strict=True)):
        np.testing.assert_array_equal(obs[i], env.reset(seed=s)[0])
    assert ours.unwrapped.np_random_seed == tuple(seeds)
    rng = np.random.default_rng(1)
    done = np.zeros(3, dtype=bool)
    for _ in range(7):  # NEXT_STEP resets continue each sub-env's generator
        actions = random_actions(ours, rng)
        obs, rew, term, trunc, info = ours.step(actions)
        for i, env in enumerate(singles):
            if done[i]:
                expected_obs, expected = env.reset()
                assert rew[i] == 0.0 and not trunc[i]
                assert not info.get("_rate_bps", np.zeros(3, dtype=bool))[i]
                assert info["_global_loss"][i] and info["round"][i] == 0
            else:
                expected_obs, r, _, tr, expected = env.step(actions[i])
                assert rew[i] == pytest.approx(r, rel=LEARNING_RTOL, abs=REWARD_ATOL)
                assert trunc[i] == tr
                np.testing.assert_array_equal(info["delivered"][i], expected["delivered"])
                np.testing.assert_allclose(info["rate_bps"][i], expected["rate_bps"], rtol=1e-9)
            assert info["global_loss"][i] == pytest.approx(
                expected["global_loss"], rel=LEARNING_RTOL
            )
            np.testing.assert_allclose(obs[i], expected_obs, rtol=LEARNING_RTOL, atol=1e-6)
        done = term | trunc


def test_disabled_mode_with_partial_resets_equals_sync():
    n, mode = 3, AutoresetMode.DISABLED
    kwargs = {**TINY, "rounds": 4}
    ours, ref = native(n, mode, **kwargs), sync(n, mode, **kwargs)
    assert_info_equal(ours.reset(seed=3)[1], ref.reset(seed=3)[1], "reset")
    rng = np.random.default_rng(2)
    for t in range(10):
        actions = random_actions(ours, rng)
        out = ours.step(actions)
        assert_step_equal(out, ref.step(actions), f"step {t}")
        mask = out[3] | (rng.random(n) < 0.25)  # ended envs plus early resets
        if mask.any():
            seeds = [int(s) if rng.random() < 0.5 else None for s in rng.integers(0, 99, n)]
            ra = ours.reset(seed=seeds, options={"reset_mask": mask})
            rb = ref.reset(seed=seeds, options={"reset_mask": mask})
            np.testing.assert_allclose(ra[0], rb[0], rtol=LEARNING_RTOL, atol=1e-6)
            assert_info_equal(ra[1], rb[1], f"reset after step {t}")
    env = native(3, mode, **{**TINY, "rounds": 1})
    env.reset(seed=0)
    assert env.step(random_actions(env, rng))[3].all()
    with pytest.raises(ValueError, match=r"sub-environments \[0, 1, 2\] ended"):
        env.step(random_actions(env, rng))


# --------------------------------------------------------- batched learning
@pytest.mark.parametrize(
    "overrides",
    [
        {"batch_size": 48},  # ragged: small shards cap some learners' batch size
        {"batch_size": 8, "depolarizing_p": 0.02},
    ],
    ids=["ragged-batches", "density-matrix"],
)
def test_learner_batch_gives_each_learner_its_own_round(overrides):
    sc = qfl_scenario("small", **{**TINY, **overrides})

    def learners():
        out = [
            FederatedLearner(sc.learning, sc.num_devices, quantum_noise=sc.quantum_noise)
            for _ in range(4)
        ]
        for i, learner in enumerate(out):
            learner.reset(np.random.default_rng(i))
        return out

    alone, stacked = learners(), learners()
    sizes = {learner.trainer.batch_size for learner in stacked}
    steps = {learner.trainer.steps_per_epoch for learner in stacked}
    assert len(sizes) > 1 or len(steps) > 1  # the stack really pads
    batch = LearnerBatch()
    rng = np.random.default_rng(0)
    for _ in range(3):
        delivered = [rng.random(4) < 0.7 for _ in alone]
        expected = [learner.run_round(d) for learner, d in zip(alone, delivered, strict=True)]
        got = batch.run_round(stacked, delivered)
        for e, g in zip(expected, got, strict=True):
            np.testing.assert_array_equal(g.delivered, e.delivered)
            np.testing.assert_allclose(g.local_loss, e.local_loss, rtol=LEARNING_RTOL)
            assert g.global_loss == pytest.approx(e.global_loss, rel=LEARNING_RTOL)
            assert g.global_accuracy == pytest.approx(e.global_accuracy, abs=1e-12)
    for a, s in zip(alone, stacked, strict=True):
        # (not the parameters: Adam turns float32 rounding noise in the gradient of
        # parameters the readout cannot see, e.g. the last Rot's final RZ angle, into
        # lr-sized steps; the model's outputs are unaffected)
        np.testing.assert_allclose(s.evaluate(), a.evaluate(), rtol=LEARNING_RTOL)
        assert a.round == s.round == 3
    # a subset of the learners: the stack is rebuilt for them
    first = batch._stacked
    batch.run_round(stacked[1:3], [np.ones(4, dtype=bool)] * 2)
    assert batch._stacked is not first and len(batch._stacked.parts) == 2


def test_stacked_trainer_refuses_mismatched_trainers():
    sc = qfl_scenario("small", **TINY)
    a = FederatedLearner(sc.learning, 4)
    b = FederatedLearner(sc.learning.replace(learning_rate=0.1), 4)
    for learner in (a, b):
        learner.reset(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"trainers\[1\] has learning_rate 0.1"):
        StackedTrainer([a.trainer, b.trainer])
    with pytest.raises(ValueError, match="non-empty sequence of LocalTrainer"):
        StackedTrainer([])
    with pytest.raises(ValueError, match="one delivered mask per learner"):
        LearnerBatch().run_round([a], [])
    with pytest.raises(ValueError, match=r"bool array of shape \(4,\)"):
        LearnerBatch().run_round([a], [np.ones(3, dtype=bool)])


# ------------------------------------------------------------------ misc
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_envs": 0}, "num_envs must be >= 1"),
        ({"autoreset_mode": "sometimes"}, "unknown autoreset_mode"),
        ({"render_mode": "ansi"}, "render_mode must be None"),
        ({"max_episode_steps": 5}, "rounds="),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, match):
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_devcies'"):
        QFLVectorEnv(**{"num_envs": 2, **TINY, "num_devcies": 3})
    with pytest.raises(ValueError, match=match):
        QFLVectorEnv(**{"num_envs": 2, **TINY, **kwargs})


def test_bad_actions_seeds_and_masks_raise():
    env = native(2, **TINY)
    with pytest.raises(ValueError, match="call reset"):
        env.step(np.zeros((2, 8), dtype=np.int64))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 8\)"):
        env.step(np.zeros((3, 8), dtype=np.int64))
    bad = np.zeros((2, 8), dtype=np.int64)
    bad[1, 5] = 2
    with pytest.raises(ValueError, match=r"device 1's power level"):
        env.step(bad)
    with pytest.raises(ValueError, match="one per environment"):
        env.reset(seed=[1, 2, 3])
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.array([1, 0])})
    with pytest.raises(ValueError, match="index must be <= 1"):
        env.unwrapped.problem(2)
    actions = env.unwrapped.encode_actions([[1, 0, 1, 0]] * 2, [[0, 1, 1, 0]] * 2)
    channels, levels = env.unwrapped.decode_actions(actions)
    np.testing.assert_array_equal(channels[1], [1, 0, 1, 0])
    np.testing.assert_array_equal(levels[0], [0, 1, 1, 0])


def test_copies_and_pickles_continue_the_same_trajectory():
    env = native(2, **{**TINY, "rounds": 4, "num_eavesdroppers": 1})
    env.reset(seed=9)
    rng = np.random.default_rng(3)
    env.step(random_actions(env, rng))
    twins = [copy.deepcopy(env), pickle.loads(pickle.dumps(env))]
    for _ in range(5):  # through an automatic reset
        actions = random_actions(env, rng)
        out = env.step(actions)
        for twin in twins:
            other = twin.step(actions)
            np.testing.assert_array_equal(out[0], other[0])
            np.testing.assert_array_equal(out[1], other[1])
            np.testing.assert_array_equal(out[4]["_round"], other[4]["_round"])
