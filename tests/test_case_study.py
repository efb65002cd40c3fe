"""Case-study statistics: paired t intervals, paired.csv, seed pairing, batched seeds."""

from __future__ import annotations

import csv
import math

import gymnasium as gym
import numpy as np
import pytest
from conftest import tiny_qfl
from scipy import stats

import agents
from training_scripts.batched_rollout import run_agent_on_seeds
from training_scripts.case_study import (
    PERFECT_UPLINK,
    CaseStudyConfig,
    censor_to_horizon,
    findings_in_words,
    run_case_study,
)
from training_scripts.paired_stats import (
    PAIRED_COLUMNS,
    PairedDifference,
    episode_metrics,
    paired_differences,
    paired_t_interval,
    write_paired_csv,
)
from training_scripts.rollout import StepRecord, run_agents

TINY = {"scenario": "small", "rounds": 3, **tiny_qfl()}


def record(agent, seed, step, acc, loss=1.0, wall=math.nan, deliveries=1):
    return StepRecord(
        agent=agent,
        seed=seed,
        episode=0,
        step=step,
        reward=0.0,
        sum_rate_mbps=10.0 + step,
        energy_j=0.1,
        deliveries=deliveries,
        global_loss=loss,
        global_accuracy=acc,
        decision_time_s=0.01,
        round_time_s=1.0 if math.isfinite(wall) else math.nan,
        wall_time_s=wall,
    )


# ------------------------------------------------------------------ statistics
def test_paired_t_interval_matches_scipy_by_hand():
    a = np.array([0.71, 0.64, 0.80, 0.77, 0.69, 0.73])
    b = np.array([0.62, 0.60, 0.74, 0.70, 0.66, 0.61])
    d = a - b
    low, high = stats.t.interval(0.95, d.size - 1, loc=d.mean(), scale=stats.sem(d))
    mean, lo, hi, n = paired_t_interval(d)
    assert n == 6 and mean == pytest.approx(d.mean())
    assert (lo, hi) == pytest.approx((low, high), rel=1e-12)
    # scipy's paired t test agrees on significance: p < 0.05 iff 0 is outside
    assert (stats.ttest_rel(a, b).pvalue < 0.05) == (lo > 0 or hi < 0)


def test_paired_t_interval_drops_nan_and_handles_small_n():
    mean, lo, hi, n = paired_t_interval([1.0, math.nan, 3.0])
    assert n == 2 and mean == 2.0
    half = stats.t.ppf(0.975, 1) * np.std([1.0, 3.0], ddof=1) / math.sqrt(2)  # 12.71
    assert (lo, hi) == pytest.approx((2.0 - half, 2.0 + half))
    assert paired_t_interval([2.0])[1:] == (pytest.approx(math.nan, nan_ok=True),) * 2 + (1,)
    assert paired_t_interval([])[3] == 0
    assert paired_t_interval([0.5, 0.5, 0.5])[1:3] == (0.5, 0.5)  # no spread: a point
    with pytest.raises(ValueError, match="confidence"):
        paired_t_interval([1.0, 2.0], confidence=1.5)


def test_paired_differences_pair_by_seed_against_the_baseline():
    per_seed = {
        "random": {"final_accuracy": {0: 0.5, 1: 0.6, 2: 0.4}},
        "qaoa": {"final_accuracy": {0: 0.7, 1: 0.7, 2: 0.55}},
        "sca": {"final_accuracy": {0: 0.5, 2: math.nan, 3: 0.9}},
    }
    rows = paired_differences(per_seed, "random")
    assert [(r.agent, r.metric) for r in rows] == [
        ("qaoa", "final_accuracy"),
        ("sca", "final_accuracy"),
    ]
    qaoa, sca = rows
    d = np.array([0.2, 0.1, 0.15])
    low, high = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
    assert qaoa.n_seeds == 3 and qaoa.mean_diff == pytest.approx(d.mean())
    assert (qaoa.ci_low, qaoa.ci_high) == pytest.approx((low, high))
    assert qaoa.significant and qaoa.better
    # sca shares seeds 0 and 2 with the baseline; seed 2 is NaN: one pair left
    assert sca.n_seeds == 1 and not sca.significant and sca.better is None
    with pytest.raises(ValueError, match="baseline 'greedy' did not run"):
        paired_differences(per_seed, "greedy")


def test_lower_is_better_metrics_and_words():
    faster = PairedDifference("qaoa", "random", "rounds_to_target", -3.0, -5.0, -1.0, 10)
    worse = PairedDifference("sca", "random", "loss_auc", 0.2, 0.1, 0.3, 10)
    unclear = PairedDifference("greedy", "random", "final_accuracy", 0.01, -0.02, 0.04, 10)
    assert faster.better is True and worse.better is False and unclear.better is None
    words = findings_in_words([faster, worse, unclear])
    assert "significant: rounds to target accuracy -3 [-5, -1] (better)" in words[0]
    assert "(worse)" in words[1]
    assert "not significant (interval contains 0): final test accuracy" in words[2]


def test_paired_csv_has_exactly_the_columns_and_one_row_per_agent_and_metric(tmp_path):
    per_seed = {
        a: {
            "final_accuracy": {s: v + 0.01 * s for s in range(4)},
            "loss_auc": {s: 1.0 - v + 0.02 * s for s in range(4)},
        }
        for a, v in (("random", 0.5), ("qaoa", 0.6), ("greedy", 0.55))
    }
    rows = paired_differences(per_seed, "random")
    path = write_paired_csv(rows, tmp_path / "paired.csv")
    with path.open() as fh:
        reader = csv.DictReader(fh)
        table = list(reader)
        assert tuple(reader.fieldnames) == PAIRED_COLUMNS
    assert PAIRED_COLUMNS == (
        "agent",
        "baseline",
        "metric",
        "mean_diff",
        "ci_low",
        "ci_high",
        "n_seeds",
    )
    assert [(r["agent"], r["metric"]) for r in table] == [
        ("qaoa", "final_accuracy"),
        ("qaoa", "loss_auc"),
        ("greedy", "final_accuracy"),
        ("greedy", "loss_auc"),
    ]
    assert {r["baseline"] for r in table} == {"random"}
    assert float(table[0]["mean_diff"]) == pytest.approx(0.1)
    assert all(r["n_seeds"] == "4" for r in table)


def test_episode_metrics_rounds_time_and_area():
    rows = [
        record("a", 0, 0, 0.3, loss=2.0, wall=1.5),
        record("a", 0, 1, 0.6, loss=1.0, wall=4.0),
        record("a", 0, 2, 0.8, loss=0.6, wall=5.0),
        record("a", 1, 0, 0.2, loss=2.0, wall=2.0),
        record("a", 1, 1, 0.3, loss=1.8, wall=3.0),
        record("a", 1, 2, 0.4, loss=1.6, wall=4.5),
    ]
    m = episode_metrics(rows, target_accuracy=0.6)["a"]
    assert m["rounds_to_target"] == {0: 2.0, 1: pytest.approx(math.nan, nan_ok=True)}
    assert m["time_to_target_s"][0] == 4.0
    assert m["loss_auc"][0] == pytest.approx((2.0 + 1.0 + 0.6) / 3)
    assert m["final_accuracy"] == {0: 0.8, 1: 0.4}
    per_seed = {"a": m}
    censor_to_horizon(per_seed, rows, rounds=3)
    assert m["rounds_to_target"][1] == 4.0 and m["time_to_target_s"][1] == 4.5
    with pytest.raises(ValueError, match="one episode per agent and seed"):
        episode_metrics([*rows[:1], StepRecord(**{**rows[0].__dict__, "episode": 1})], 0.5)


# ------------------------------------------------------------------- pairing
def test_every_agent_sees_the_same_data_init_and_channels_per_seed():
    seeds = [3, 4, 5]
    _, fp_greedy = run_agent_on_seeds(TINY, lambda e: agents.make("greedy", e), "g", seeds)
    _, fp_random = run_agent_on_seeds(TINY, lambda e: agents.make("random", e), "r", seeds)
    assert fp_greedy == fp_random
    assert len(set(fp_greedy.values())) == 3  # different seeds: different draws
    # the same holds under full participation (another draw order in the round)
    full = {**TINY, "participation": "full", "objective": "round-time"}
    _, fp_full = run_agent_on_seeds(full, lambda e: agents.make("greedy", e), "g", seeds)
    _, fp_full_r = run_agent_on_seeds(full, lambda e: agents.make("random", e), "r", seeds)
    assert fp_full == fp_full_r
    # and the single env reset with that seed starts from the same model on the same data
    from training_scripts.batched_rollout import make_vector_env

    single = gym.make("qfl_gym/QFL-v0", **TINY)
    _, info = single.reset(seed=4)
    vec = make_vector_env(2, TINY)
    _, vinfo = vec.reset(seed=[9, 4])
    assert vinfo["global_loss"][1] == info["global_loss"]
    np.testing.assert_array_equal(vinfo["local_loss"][1], info["local_loss"])
    assert vinfo["global_loss"][0] != info["global_loss"]


@pytest.mark.parametrize("name", ["greedy", "random"])
def test_batched_seeds_reproduce_the_single_env_episodes(name):
    seeds = [0, 7]
    batched, _ = run_agent_on_seeds(TINY, lambda e: agents.make(name, e), name, seeds)
    single = run_agents(
        lambda: gym.make("qfl_gym/QFL-v0", **TINY), {name: lambda e: agents.make(name, e)}, seeds
    )
    assert len(batched) == len(single) == 2 * TINY["rounds"]
    for b, s in zip(batched, single, strict=True):
        assert (b.seed, b.step, b.deliveries) == (s.seed, s.step, s.deliveries)
        assert b.sum_rate_mbps == pytest.approx(s.sum_rate_mbps, rel=1e-9)
        assert b.global_loss == pytest.approx(s.global_loss, rel=1e-5)
        assert b.global_accuracy == pytest.approx(s.global_accuracy, rel=1e-5)


# ----------------------------------------------------------------- whole run
def test_case_study_run_writes_paired_results_per_participation_model(tmp_path):
    cfg = CaseStudyConfig(
        scenario="small",
        seeds=(0, 1, 2),
        rounds=3,
        agents=("greedy", "random", "sca@sum-rate"),
        workers=1,
        participation=("full", "deadline"),
        scenario_overrides=tiny_qfl(),
    )
    result = run_case_study(cfg, out=tmp_path / "run")
    assert [m.participation for m in result.models] == ["full", "deadline"]
    for model in result.models:
        assert model.paired_ok
        folder = tmp_path / "run" / model.participation
        with (folder / "paired.csv").open() as fh:
            table = list(csv.DictReader(fh))
        agents_in = list(dict.fromkeys(r["agent"] for r in table))
        assert agents_in == ["greedy", "sca@sum-rate", PERFECT_UPLINK]
        assert all(r["baseline"] == "random" and r["n_seeds"] == "3" for r in table)
        metrics = {r["metric"] for r in table}
        assert {"rounds_to_target", "loss_auc", "final_accuracy", "deliveries"} <= metrics
        # the perfect uplink hears every device every round
        steps = list(csv.DictReader((folder / "steps.csv").open()))
        perfect = [r for r in steps if r["agent"] == PERFECT_UPLINK]
        assert len(perfect) == 3 * 3 and all(r["deliveries"] == "4" for r in perfect)
        # seeds counted as reaching the target: those whose accuracy ever reached it
        for agent, (hit, n) in model.reached.items():
            best = {}
            for r in steps:
                if r["agent"] == agent:
                    best[r["seed"]] = max(best.get(r["seed"], 0.0), float(r["global_accuracy"]))
            assert n == 3
            assert hit == sum(v >= model.target_accuracy for v in best.values())
    assert "time_to_target_s" in {d.metric for d in result.models[0].paired}
    report = result.files["report_md"].read_text()
    assert "## full participation" in report and "## deadline participation" in report
    assert "In words:" in report and "pairing check" in report


def test_baseline_must_be_run():
    with pytest.raises(ValueError, match="baseline 'qaoa' must be one of the agents"):
        CaseStudyConfig(agents=("greedy", "random"), baseline="qaoa")


def test_case_study_full_preset_is_the_studys_setting():
    from qfl_gym.envs.qfl_scenario import QFL_PRESETS

    sc = QFL_PRESETS["case-study-full"]
    assert (sc.num_devices, sc.uplink.num_subchannels, sc.rounds) == (50, 4, 30)
    assert sc.participation == "full" and sc.objective == "round-time"
    # the update is the trained VQC's parameters as float32
    assert sc.uplink.update_bits == 32 * sc.learning.num_parameters
    assert sc.local_compute_s > 0.0  # the perfect uplink's rounds take time too
    assert CaseStudyConfig().scenario == "case-study-full"
    assert len(CaseStudyConfig().seeds) >= 10
    from training_scripts.case_study import CASE_STUDY_PRESETS

    assert len(CASE_STUDY_PRESETS["quick"].seeds) >= 5
