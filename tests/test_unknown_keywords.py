"""Unknown keyword arguments are TypeErrors in Python's wording, everywhere a user passes them.

Tools that probe optional constructor keywords (TorchRL's ``GymEnv`` passes
``frameskip``) match Python's message ``got an unexpected keyword argument 'x'`` and drop
the keyword; a ``ValueError`` would abort them. A bad value for a known field stays a
``ValueError``.
"""

from __future__ import annotations

import pickle

import gymnasium as gym
import pytest
from conftest import tiny_qfl

import qfl_gym
from qfl_gym.config_fields import (
    ConfigFields,
    UnexpectedKeywordError,
    check_keywords,
    field_names,
    unexpected_keyword_message,
)
from qfl_gym.envs.qfl_scenario import qfl_scenario
from qfl_gym.learning.config import LearningConfig
from qfl_gym.wireless.config import UplinkConfig, uplink_config
from qfl_gym.wrappers import ActionMaskWrapper, ContinuousAction, DiscreteJointAction

CP = "qfl_gym/ChannelPower-v0"
QFL = "qfl_gym/QFL-v0"
PROBE = "unexpected keyword argument 'frameskip'"
TINY_QFL = {"scenario": "small", "rounds": 2, **tiny_qfl()}


def test_message_is_pythons_wording_then_the_valid_names():
    msg = unexpected_keyword_message("f", ["b", "c"], ["a", "d"])
    assert msg == "f() got an unexpected keyword argument 'b' (also unexpected: 'c'); valid: a, d"
    with pytest.raises(TypeError) as exc:
        check_keywords("Env.__init__", ["a", "frameskip"], ["a"])
    assert (
        str(exc.value) == "Env.__init__() got an unexpected keyword argument 'frameskip'; valid: a"
    )
    check_keywords("f", ["a"], ["a", "b"])  # known names pass


def test_the_error_survives_gymnasium_re_raise_and_pickling():
    # gymnasium re-raises a constructor's TypeError as type(e)(message), and a
    # subprocess vector env pickles it back to the parent
    err = UnexpectedKeywordError("x() got an unexpected keyword argument 'y'; valid: z")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is UnexpectedKeywordError and str(again) == str(err)
    assert isinstance(type(err)(f"{err} was raised from the environment creator"), TypeError)


@pytest.mark.parametrize(
    ("make", "caller"),
    [
        (lambda **kw: gym.make(CP, **kw), "uplink_config()"),
        (lambda **kw: gym.make(QFL, **TINY_QFL, **kw), "qfl_scenario()"),
        (
            lambda **kw: gym.make_vec(
                CP, num_envs=2, vectorization_mode="vector_entry_point", **kw
            ),
            "uplink_config()",
        ),
        (
            lambda **kw: gym.make_vec(
                QFL, num_envs=2, vectorization_mode="vector_entry_point", **TINY_QFL, **kw
            ),
            "qfl_scenario()",
        ),
        (lambda **kw: gym.make_vec(CP, num_envs=2, vectorization_mode="sync", **kw), "()"),
        (lambda **kw: uplink_config("small", **kw), "uplink_config()"),
        (lambda **kw: qfl_scenario("small", **kw), "qfl_scenario()"),
        (lambda **kw: UplinkConfig().replace(**kw), "UplinkConfig.replace()"),
        (lambda **kw: LearningConfig().replace(**kw), "LearningConfig.replace()"),
    ],
    ids=[
        "make-cp",
        "make-qfl",
        "vec-cp",
        "vec-qfl",
        "sync-cp",
        "uplink_config",
        "qfl_scenario",
        "uplink-replace",
        "learning-replace",
    ],
)
def test_unknown_keyword_is_a_type_error_listing_the_valid_names(make, caller):
    with pytest.raises(TypeError, match=PROBE) as exc:
        make(frameskip=4)
    message = str(exc.value)
    assert caller in message
    assert "; valid: " in message
    assert "num_devices" in message.split("; valid: ", 1)[1] or "n_qubits" in message


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: gym.make(CP, num_devices=0), "num_devices must be >= 1"),
        (lambda: gym.make(QFL, **{**TINY_QFL, "rounds": 0}), "rounds must be >= 1"),
        (
            lambda: gym.make_vec(
                CP, num_envs=2, vectorization_mode="vector_entry_point", fading="nakagami"
            ),
            "unknown fading 'nakagami'",
        ),
        (lambda: LearningConfig().replace(n_qubits=0), "n_qubits"),
    ],
)
def test_a_bad_value_of_a_known_field_stays_a_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_pettingzoo_env_and_wrappers_raise_type_errors():
    from qfl_gym.multiagent import DeviceParallelEnv

    with pytest.raises(TypeError, match=PROBE):
        DeviceParallelEnv(CP, frameskip=4)
    with pytest.raises(TypeError, match=r"DeviceParallelEnv\.__init__\(\) got .*'frameskip'"):
        DeviceParallelEnv(gym.make(CP), frameskip=4)
    env = gym.make(CP, scenario="small")
    for wrapper in (ActionMaskWrapper, ContinuousAction, DiscreteJointAction):
        with pytest.raises(TypeError, match=PROBE):
            wrapper(env, frameskip=4)


def test_config_fields_replace_and_to_dict():
    cfg = UplinkConfig()
    assert isinstance(cfg, ConfigFields)
    assert tuple(cfg.to_dict()) == field_names(UplinkConfig)
    assert cfg.replace(num_devices=3).num_devices == 3
    # related fields: a level count clears explicit levels
    levels = cfg.replace(power_levels_dbm=(0.0, 10.0))
    three = levels.replace(num_power_levels=3)
    assert three.power_levels_dbm is None
    assert three.levels_dbm.tolist() == [0.0, 5.0, 10.0]


def test_learning_does_not_import_wireless_for_config_helpers():
    import pathlib

    root = pathlib.Path(qfl_gym.__file__).parent / "learning"
    offenders = [
        p.name
        for p in root.glob("*.py")
        if "from qfl_gym.wireless" in p.read_text() or "import qfl_gym.wireless" in p.read_text()
    ]
    assert offenders == []


def test_cli_reports_an_unknown_set_name_as_one_error_line(capsys):
    from training_scripts.cli import main

    rc = main(["envs", "--env", CP])  # a working command first: the CLI is importable
    assert rc == 0
    capsys.readouterr()
    rc = main(["train", "--set", "frameskip=4", "--timesteps", "8", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "error: uplink_config() got an unexpected keyword argument 'frameskip'" in err
    assert "Traceback" not in err
