"""The qfl-gym command line: train -> evaluate -> benchmark, case study, bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from training_scripts.case_study import DEFAULT_AGENTS
from training_scripts.cli import main
from training_scripts.results import read_steps_csv
from training_scripts.rollout import COLUMNS, TIMING_COLUMNS
from training_scripts.zoo_config import ALGOS, HYPERPARAMS_DIR, load_hyperparams

pytestmark = pytest.mark.slow
CP = "qfl_gym/ChannelPower-v0"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny PPO model trained through the CLI."""
    out = tmp_path_factory.mktemp("train") / "ppo"
    code = main(
        [
            "train",
            "--algo",
            "ppo",
            "--env",
            CP,
            "--scenario",
            "small",
            "--timesteps",
            "512",
            "--n-envs",
            "2",
            "--out",
            str(out),
            "--eval-freq",
            "256",
            "--checkpoint-freq",
            "256",
            "--no-progress",
        ]
    )
    assert code == 0
    return out


def test_train_writes_model_checkpoints_logs_and_best(trained):
    assert (trained / "model.zip").is_file()
    assert (trained / "best" / "best_model.zip").is_file()
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == [
        "ppo_256_steps.zip",
        "ppo_512_steps.zip",
    ]
    assert any((trained / "tb").rglob("events.out.tfevents.*"))
    record = json.loads((trained / "run.json").read_text())
    assert record["num_timesteps"] == 512
    assert record["hyperparams"]["gamma"] == 0.0  # from the bundled YAML


def test_resume_continues_the_step_count(trained, tmp_path, capsys):
    code, text = run(
        [
            "train",
            "--algo",
            "ppo",
            "--env",
            CP,
            "--scenario",
            "small",
            "--timesteps",
            "256",
            "--n-envs",
            "2",
            "--out",
            tmp_path / "resumed",
            "--resume",
            trained / "checkpoints" / "ppo_256_steps.zip",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, text
    # 256 more steps from the checkpoint's 256, in whole rollouts (n_steps 32 x 2 envs)
    assert json.loads((tmp_path / "resumed" / "run.json").read_text())["num_timesteps"] == 512


def test_evaluate_then_benchmark_the_saved_model(trained, tmp_path, capsys):
    model = trained / "model.zip"
    code, text = run(
        [
            "evaluate",
            "--agent",
            f"sb3:{model}",
            "--env",
            CP,
            "--scenario",
            "small",
            "--episodes",
            "2",
            "--max-steps",
            "10",
        ],
        capsys,
    )
    assert code == 0, text
    assert "sb3:model" in text
    out = tmp_path / "bench"
    code, text = run(
        [
            "benchmark",
            "--env",
            CP,
            "--scenario",
            "small",
            "--agents",
            f"random,greedy,sca,sb3:{model}",
            "--seeds",
            "0,1",
            "--max-steps",
            "8",
            "--out",
            out,
            "--scaling-sizes",
            "3,4",
        ],
        capsys,
    )
    assert code == 0, text
    rows = read_steps_csv(out / "steps.csv")
    assert list(rows[0]) == list(COLUMNS)
    assert {r["agent"] for r in rows} == {"random", "greedy", "sca", "sb3:model"}
    assert len(rows) == 4 * 2 * 8
    for name in ("summary.csv", "summary.txt", "sum_rate.png", "decision_time.png"):
        assert (out / name).is_file(), name
    # identical channel realizations per seed: every agent saw the same problems, so the
    # benchmark is reproducible: a second run gives the same CSV up to timing columns
    out2 = tmp_path / "bench2"
    code, _ = run(
        [
            "benchmark",
            "--env",
            CP,
            "--scenario",
            "small",
            "--agents",
            f"random,greedy,sca,sb3:{model}",
            "--seeds",
            "0,1",
            "--max-steps",
            "8",
            "--out",
            out2,
            "--scaling-sizes",
            "",
        ],
        capsys,
    )
    assert code == 0
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]  # noqa: E731
    assert strip(read_steps_csv(out2 / "steps.csv")) == strip(rows)


def test_case_study_quick_writes_every_artifact(tmp_path, capsys):
    code, text = run(
        [
            "case-study",
            "--quick",
            "--seeds",
            "0,1",
            "--rounds",
            "3",
            "--ppo-timesteps",
            "48",
            "--results",
            tmp_path,
            "--set",
            "num_devices=3",
            "--workers",
            "2",
            "--participation",
            "full,deadline",
            "--agents",  # the defaults (pretrained loads shipped weights)
            ",".join(DEFAULT_AGENTS),
        ],
        capsys,
    )
    assert code == 0, text
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("case-study-")]
    assert (folder / "config.json").is_file() and (folder / "report.md").is_file()
    expected_agents = [
        "qaoa",
        "qaoa@sum-rate",
        "sca",
        "sca@sum-rate",
        "local-search",
        "greedy",
        "random",
        "exhaustive",
        "ppo",
        "pretrained",
        "perfect-uplink",
    ]
    report = (folder / "report.md").read_text()
    for model in ("full", "deadline"):
        for name in (
            "steps.csv",
            "summary.csv",
            "paired.csv",
            "global_accuracy.png",
            "global_loss.png",
            "paired.png",
        ):
            assert (folder / model / name).is_file(), (model, name)
        with (folder / model / "steps.csv").open() as fh:
            steps = list(csv.DictReader(fh))
        assert len(steps) == len(expected_agents) * 2 * 3
        assert list(dict.fromkeys(r["agent"] for r in steps)) == expected_agents
        with (folder / model / "paired.csv").open() as fh:
            paired = list(csv.DictReader(fh))
        assert {r["agent"] for r in paired} == set(expected_agents) - {"random"}
        assert f"## {model} participation" in report
    assert (folder / "full" / "accuracy_vs_time.png").is_file()
    assert "## Package versions" in report and "wall time" in report
    # the second run reuses the cached PPO policies and never touches the first folder
    before = sorted(p.name for p in folder.rglob("*"))
    code, text = run(
        [
            "case-study",
            "--quick",
            "--seeds",
            "0,1",
            "--rounds",
            "3",
            "--ppo-timesteps",
            "48",
            "--results",
            tmp_path,
            "--set",
            "num_devices=3",
            "--agents",
            "greedy,ppo",
            "--baseline",
            "greedy",
            "--participation",
            "deadline",
            "--workers",
            "1",
        ],
        capsys,
    )
    assert code == 0, text
    assert "reused the policy" in text
    assert sorted(p.name for p in folder.rglob("*")) == before
    runs = [p for p in tmp_path.iterdir() if p.name.startswith("case-study-")]
    assert len(runs) == 2
    (second,) = [p for p in runs if p != folder]
    assert sorted(p.name for p in second.iterdir() if p.is_dir()) == ["deadline"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--env", "nope"], "unknown env 'nope'; valid: qfl_gym/ChannelPower-v0"),
        (["train", "--algo", "sac"], "unknown algo 'sac'; valid: ppo, a2c, dqn"),
        (["train", "--timesteps", "0"], "--timesteps must be > 0"),
        (["train", "--scenario", "huge", "--timesteps", "10"], "unknown scenario 'huge'"),
        (["evaluate", "--agent", "wizard"], "unknown agent 'wizard'; valid:"),
        (["evaluate", "--agent", "sb3:/does/not/exist.zip"], "does not exist"),
        (["benchmark", "--agents", "greedy", "--seeds", "x"], "--seeds expects integers"),
        (["benchmark", "--env", "qfl_gym/Nope-v0"], "unknown env"),
        (["case-study", "--agents", "qaoa,wizard"], "unknown agent(s) ['wizard']"),
        (["case-study", "--rounds", "0"], "rounds must be >= 1"),
        (["case-study", "--baseline", "wizard"], "baseline 'wizard' must be one of the agents"),
        (["case-study", "--participation", "some"], "unknown participation model(s) ['some']"),
        (["envs", "--env", "x"], "unknown env 'x'"),
    ],
)
def test_bad_input_gives_one_clear_message_and_exit_2(argv, message, capsys):
    code, text = run(argv, capsys)
    assert code == 2
    assert message in text
    assert "Traceback" not in text


def test_mismatched_spaces_and_corrupt_models_are_clear_errors(trained, tmp_path, capsys):
    code, text = run(
        [
            "evaluate",
            "--agent",
            f"sb3:{trained / 'model.zip'}",
            "--env",
            CP,
            "--scenario",
            "default",
        ],
        capsys,
    )
    assert code == 2 and "space" in text.lower()
    bad = tmp_path / "corrupt.zip"
    bad.write_bytes(b"not a zip")
    code, text = run(["evaluate", "--agent", f"sb3:{bad}", "--env", CP], capsys)
    assert code == 2 and "Traceback" not in text


def test_nothing_saved_is_overwritten(trained, tmp_path, capsys):
    stamp = (trained / "model.zip").stat().st_mtime_ns
    code, text = run(["train", "--timesteps", "10", "--out", trained, "--no-progress"], capsys)
    assert code == 2 and "already holds a trained model.zip" in text
    assert (trained / "model.zip").stat().st_mtime_ns == stamp
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    code, text = run(["benchmark", "--agents", "random", "--out", busy], capsys)
    assert code == 2 and "not an empty folder" in text
    assert (busy / "keep.txt").read_text() == "mine"


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, text = run(["benchmark", "--agents", "random", "--out", blocker / "sub"], capsys)
    assert code == 2 and "Traceback" not in text


@pytest.mark.parametrize("algo", ALGOS)
def test_bundled_yaml_is_rl_zoo3_format(algo):
    import yaml

    data = yaml.safe_load((HYPERPARAMS_DIR / f"{algo}.yml").read_text())
    assert CP in data
    hp = load_hyperparams(HYPERPARAMS_DIR / f"{algo}.yml", CP)
    # PPO: the device-permutation-equivariant policy by dotted name; the others an MLP
    expected = "agents.device_policy.DevicePolicy" if algo == "ppo" else "MlpPolicy"
    assert hp.n_timesteps and hp.policy == expected


def test_rl_zoo3_trains_with_our_yaml(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "rl_zoo3.train",
        "--algo",
        "ppo",
        "--env",
        CP,
        "--gym-packages",
        "qfl_gym",
        "--conf-file",
        str(HYPERPARAMS_DIR / "ppo.yml"),
        "-n",
        "512",
        "--eval-freq",
        "-1",
        "--save-freq",
        "-1",
        "-f",
        str(tmp_path),
        "--seed",
        "0",
        "--vec-env",
        "dummy",
        "--num-threads",
        "1",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (model,) = tmp_path.rglob("*.zip")
    assert zipfile.is_zipfile(model)


def test_python_dash_m_and_console_script(capsys):
    done = subprocess.run(
        [sys.executable, "-m", "training_scripts", "envs", "--env", CP],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "[case-study]" in done.stdout and "num_devices" in done.stdout
    assert Path(sys.executable).with_name("qfl-gym").exists()
