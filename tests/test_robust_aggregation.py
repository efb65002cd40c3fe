"""Malicious devices and robust aggregation: rules, attacks, limits, and learning under attack."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qfl_gym  # noqa: F401
from qfl_gym.learning.aggregation import (
    AGGREGATION_RULES,
    aggregate,
    coordinate_median,
    krum,
    trimmed_mean,
)
from qfl_gym.learning.attacks import (
    PoisoningConfig,
    check_robustness,
    choose_attackers,
    flip_labels,
    poison_updates,
)
from qfl_gym.learning.config import LearningConfig

QFL = "qfl_gym/QFL-v0"


def reference_krum(deltas, f, m=1):
    """Blanchard et al. 2017, literally: scores over the M - f - 2 closest others."""
    M = len(deltas)
    scores = []
    for i in range(M):
        d = sorted(float(np.sum((deltas[i] - deltas[j]) ** 2)) for j in range(M) if j != i)
        scores.append(sum(d[: max(M - f - 2, 1)]))
    best = sorted(range(M), key=lambda i: (scores[i], i))[:m]
    return deltas[best].mean(axis=0)


# ------------------------------------------------------------------- rules
def test_robust_rules_are_registered_by_name():
    for name in ("fedavg", "mean", "median", "trimmed-mean", "krum"):
        assert name in AGGREGATION_RULES
        assert LearningConfig(aggregation=name).aggregation == name


@settings(max_examples=40, deadline=None)
@given(M=st.integers(1, 12), P=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_median_and_trimmed_mean_match_their_definitions(M, P, seed):
    rng = np.random.default_rng(seed)
    deltas = rng.normal(size=(M, P))
    w = rng.uniform(1, 5, M)
    np.testing.assert_allclose(coordinate_median(deltas, w), np.median(deltas, axis=0))
    for beta in (0.0, 0.1, 0.2, 0.4):
        b = min(int(np.ceil(beta * M - 1e-9)), (M - 1) // 2)
        want = np.array([np.mean(sorted(deltas[:, p])[b : M - b]) for p in range(P)])
        np.testing.assert_allclose(trimmed_mean(deltas, w, trim_fraction=beta), want)


@settings(max_examples=40, deadline=None)
@given(
    M=st.integers(1, 12),
    beta=st.sampled_from([0.0, 0.1, 0.2, 0.3]),
    m=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_krum_matches_the_reference(M, beta, m, seed):
    rng = np.random.default_rng(seed)
    deltas = rng.normal(size=(M, 5))
    f = int(np.ceil(beta * M - 1e-9))
    got = krum(deltas, np.ones(M), byzantine_fraction=beta, num_selected=m)
    np.testing.assert_allclose(got, reference_krum(deltas, f, max(1, min(m, M - f))), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    honest=st.integers(3, 10),
    seed=st.integers(0, 2**32 - 1),
    magnitude=st.sampled_from([1e2, 1e6]),
)
def test_robust_rules_stay_in_the_honest_range_under_any_minority(honest, seed, magnitude):
    """f < M/2 arbitrary outliers cannot drag median or trimmed mean (beta >= f/M)
    outside the honest values' range, coordinate by coordinate; Krum picks an honest
    update when the outliers are far away."""
    rng = np.random.default_rng(seed)
    f = (honest - 1) // 2
    good = rng.normal(size=(honest, 4))
    bad = magnitude * rng.choice([-1.0, 1.0], size=(f, 4)) * rng.uniform(1, 2, (f, 4))
    deltas = np.concatenate([good, bad])
    M = len(deltas)
    low, high = good.min(axis=0), good.max(axis=0)
    for out in (
        coordinate_median(deltas, np.ones(M)),
        trimmed_mean(deltas, np.ones(M), trim_fraction=f / M),
    ):
        assert np.all(out >= low - 1e-12) and np.all(out <= high + 1e-12)
    chosen = krum(deltas, np.ones(M), byzantine_fraction=f / M)
    assert any(np.array_equal(chosen, g) for g in good)
    # FedAvg is dragged away
    assert np.abs(aggregate(deltas, np.ones(M), np.ones(M, bool), np.zeros(4))).max() > 5


def test_rule_options_reach_the_rule_through_aggregate():
    local = np.array([[0.0], [1.0], [2.0], [3.0], [100.0]])
    out = aggregate(
        local, np.ones(5), np.ones(5, bool), np.zeros(1), "trimmed-mean", trim_fraction=0.2
    )
    np.testing.assert_allclose(out, [2.0])
    out = aggregate(
        local, np.ones(5), np.ones(5, bool), np.zeros(1), "trimmed-mean", trim_fraction=0.0
    )
    np.testing.assert_allclose(out, [21.2])
    with pytest.raises(ValueError, match="trim_fraction must be in"):
        trimmed_mean(local, np.ones(5), trim_fraction=0.5)


# ----------------------------------------------------------------- attacks
def test_update_attacks_replace_only_the_malicious_rows():
    rng = np.random.default_rng(0)
    deltas = rng.normal(size=(5, 7))
    bad = np.array([False, True, False, False, True])
    flipped = poison_updates(deltas, bad, "sign-flip", 3.0)
    np.testing.assert_array_equal(flipped[~bad], deltas[~bad])
    np.testing.assert_allclose(flipped[bad], -3.0 * deltas[bad])
    np.testing.assert_allclose(poison_updates(deltas, bad, "scaled", 3.0)[bad], 3.0 * deltas[bad])
    noise = poison_updates(deltas, bad, "random", 3.0, np.random.default_rng(1))
    np.testing.assert_allclose(
        np.linalg.norm(noise[bad], axis=1), 3.0 * np.linalg.norm(deltas[bad], axis=1)
    )
    assert abs(np.sum(noise[1] * deltas[1])) < np.linalg.norm(noise[1]) * np.linalg.norm(deltas[1])
    np.testing.assert_array_equal(poison_updates(deltas, bad, "label-flip", 3.0), deltas)


def test_label_flipping_reverses_the_labels_of_malicious_shards():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3, 3])
    counts, offsets = np.array([4, 3, 2]), np.array([0, 4, 7])
    out = flip_labels(labels, 4, np.array([False, True, False]), counts, offsets)
    np.testing.assert_array_equal(out, [0, 1, 2, 3, 3, 2, 1, 3, 3])


def test_attackers_are_drawn_by_fraction_or_fixed():
    cfg = PoisoningConfig(attacker_fraction=0.2)
    assert cfg.num_attackers(10) == 2 and cfg.num_attackers(8) == 2  # 1.6 -> 2
    a = choose_attackers(np.random.default_rng(0), cfg, 10)
    b = choose_attackers(np.random.default_rng(0), cfg, 10)
    np.testing.assert_array_equal(a, b)
    assert a.sum() == 2
    fixed = PoisoningConfig(attackers=(4, 1))
    assert fixed.attackers == (1, 4)
    np.testing.assert_array_equal(np.flatnonzero(choose_attackers(None, fixed, 6)), [1, 4])
    assert cfg.replace(attackers=(0,)).attacker_fraction == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attacker_fraction": 1.5}, "attacker_fraction must be <= 1"),
        ({"attacker_fraction": -0.1}, "attacker_fraction must be >= 0"),
        ({"robust_fraction": 0.5}, "robust_fraction must be < 0.5"),
        ({"attack": "bribe"}, "unknown attack 'bribe'"),
        ({"attack_scale": 0.0}, "attack_scale must be > 0"),
        ({"attackers": (1, 1)}, "must not repeat"),
        ({"attackers": (1,), "attacker_fraction": 0.2}, "not both"),
        ({"krum_select": 0}, "krum_select must be >= 1"),
    ],
)
def test_bad_poisoning_settings_name_the_field_and_limit(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PoisoningConfig(**kwargs)


@pytest.mark.parametrize(
    ("rule", "overrides", "match"),
    [
        ("median", {"attacker_fraction": 0.5}, r"attacker_fraction.*f < K/2 = 4"),
        ("median", {"attacker_fraction": 0.6}, r"attacker_fraction.*fewer than half"),
        ("trimmed-mean", {"attacker_fraction": 0.4}, r"robust_fraction.*ceil\(robust_fraction"),
        (
            "krum",
            {"attacker_fraction": 0.3, "robust_fraction": 0.4},
            r"robust_fraction.*K > 2f \+ 2",
        ),
        ("median", {"attackers": (9,)}, r"attackers must be device indices in 0..7"),
    ],
)
def test_rules_that_cannot_tolerate_the_attackers_are_rejected(rule, overrides, match):
    with pytest.raises(ValueError, match=match):
        gym.make(QFL, scenario="small", aggregation=rule, **overrides)


def test_tolerable_attacker_counts_pass_and_fedavg_accepts_any():
    assert check_robustness("median", PoisoningConfig(attacker_fraction=0.3), 10) == 3
    assert check_robustness("trimmed-mean", PoisoningConfig(attacker_fraction=0.2), 10) == 2
    assert check_robustness("krum", PoisoningConfig(attacker_fraction=0.2), 10) == 2
    assert check_robustness("fedavg", PoisoningConfig(attacker_fraction=0.9), 10) == 9


# ------------------------------------------------------- learning under attack
SEEDS = (0, 1, 2)
TASK = {"dataset": "digits", "classes": (0, 1, 2, 3), "partition": "iid"}


def final_accuracy(rule, attacker_fraction, seed, attack="sign-flip", rounds=15, K=10):
    """FederatedLearner driven directly, every update delivered."""
    from qfl_gym.learning.federated import FederatedLearner

    learner = FederatedLearner(
        LearningConfig(aggregation=rule, **TASK),
        K,
        poisoning=PoisoningConfig(attacker_fraction=attacker_fraction, attack=attack),
    )
    learner.reset(np.random.default_rng(seed))
    for _ in range(rounds):
        result = learner.run_round(np.ones(K, bool))
    return result.global_accuracy


def test_sign_flip_breaks_fedavg_while_median_and_trimmed_mean_hold():
    """20% sign-flipping devices (s = 4), fixed seeds: FedAvg collapses, the robust rules
    end within a few points of the clean run."""
    clean = np.mean([final_accuracy("fedavg", 0.0, s) for s in SEEDS])
    attacked = {
        rule: np.mean([final_accuracy(rule, 0.2, s) for s in SEEDS])
        for rule in ("fedavg", "median", "trimmed-mean")
    }
    assert clean > 0.8
    assert attacked["fedavg"] < clean - 0.3
    assert attacked["median"] > clean - 0.05
    assert attacked["trimmed-mean"] > clean - 0.05


def test_attackers_do_not_change_the_honest_devices_training():
    """Attackers come from their own stream: the honest devices' first-round losses are
    the same with and without them (same data, minibatches and initial model)."""
    from qfl_gym.learning.federated import FederatedLearner

    losses = []
    for fraction in (0.0, 0.25):
        learner = FederatedLearner(
            LearningConfig(
                dataset="iris", classes=None, n_qubits=3, n_layers=1, aggregation="median"
            ),
            8,
            poisoning=PoisoningConfig(attacker_fraction=fraction, attack="label-flip"),
        )
        learner.reset(np.random.default_rng(5))
        losses.append(learner.run_round(np.ones(8, bool)).local_loss)
        malicious = learner.malicious
    assert malicious.sum() == 2
    np.testing.assert_array_equal(losses[0][~malicious], losses[1][~malicious])
    assert np.all(losses[0][malicious] != losses[1][malicious])  # flipped labels


def test_byzantine_preset_reports_the_malicious_devices():
    env = gym.make(QFL, scenario="byzantine", rounds=2)
    _, info = env.reset(seed=0)
    assert env.unwrapped.scenario.learning.aggregation == "median"
    assert info["malicious"].dtype == bool and info["malicious"].sum() == 2
    _, _, _, _, step_info = env.step(env.action_space.sample())
    np.testing.assert_array_equal(step_info["malicious"], info["malicious"])
    plain = gym.make(QFL, scenario="small", rounds=2)
    assert "malicious" not in plain.reset(seed=0)[1]
