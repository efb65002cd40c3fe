"""UplinkConfig validation, presets and derived quantities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qfl_gym.wireless.config import UPLINK_PRESETS, UplinkConfig, uplink_config


@pytest.mark.parametrize("name", sorted(UPLINK_PRESETS))
def test_presets_are_valid_and_named(name):
    cfg = uplink_config(name)
    assert isinstance(cfg, UplinkConfig)
    assert cfg.power_levels_w.shape == (cfg.num_power_levels,)
    assert np.all(np.diff(cfg.power_levels_w) > 0)


def test_reference_scale_preset():
    cfg = uplink_config("case-study")
    assert (cfg.num_devices, cfg.num_subchannels) == (50, 4)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_devices", 0, "num_devices must be >= 1"),
        ("num_devices", 2.5, "num_devices must be an integer"),
        ("num_devices", True, "num_devices must be an integer"),
        ("num_subchannels", 0, "num_subchannels must be >= 1"),
        ("num_power_levels", 0, "num_power_levels must be >= 1"),
        ("bandwidth_hz", 0.0, "bandwidth_hz must be > 0"),
        ("bandwidth_hz", -1e6, "bandwidth_hz must be > 0"),
        ("bandwidth_hz", math.inf, "bandwidth_hz must be finite"),
        ("noise_psd_dbm_hz", math.nan, "noise_psd_dbm_hz must be finite"),
        ("cell_radius_m", -5.0, "cell_radius_m must be > 0"),
        ("shadowing_std_db", -1.0, "shadowing_std_db must be >= 0"),
        ("sic_residual", 1.5, "sic_residual must be <= 1"),
        ("sic_residual", -0.1, "sic_residual must be >= 0"),
        ("slot_s", 0.0, "slot_s must be > 0"),
        ("horizon", 0, "horizon must be >= 1"),
        ("update_bits", 0, "update_bits must be > 0"),
        ("speed_mps", -1.0, "speed_mps must be >= 0"),
        ("mobility", "yes", "mobility must be True or False"),
        ("p_max_dbm", "23", "p_max_dbm must be a real number"),
    ],
)
def test_bad_field_raises_value_error_naming_it(field, value, message):
    with pytest.raises(ValueError, match=message):
        UplinkConfig(**{field: value})


def test_p_min_above_p_max_is_rejected():
    with pytest.raises(ValueError, match=r"p_min_dbm must be <= p_max_dbm.*p_min_dbm=30"):
        UplinkConfig(p_min_dbm=30.0, p_max_dbm=23.0)


def test_min_distance_must_be_inside_the_cell():
    with pytest.raises(ValueError, match="min_distance_m must be < cell_radius_m"):
        UplinkConfig(min_distance_m=600.0, cell_radius_m=500.0)


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("fading", "nakagami", "'rayleigh', 'rician'"),
        ("pathloss_model", "cost231", "'3gpp-uma-nlos', 'log-distance', 'free-space'"),
    ],
)
def test_unknown_model_names_list_the_valid_ones(field, value, valid):
    with pytest.raises(ValueError, match=f"unknown {field} '{value}'; valid: {valid}"):
        UplinkConfig(**{field: value})


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown scenario 'huge'; valid: 'default', 'small'"):
        uplink_config("huge")


def test_unknown_override_lists_valid_fields():
    with pytest.raises(
        TypeError,
        match=r"^uplink_config\(\) got an unexpected keyword argument 'num_device'; "
        r"valid: num_devices, num_subchannels,",
    ):
        uplink_config("default", num_device=3)
    with pytest.raises(TypeError, match=r"UplinkConfig.replace\(\) got an unexpected keyword"):
        UplinkConfig().replace(num_device=3)
    with pytest.raises(ValueError, match="num_devices must be >= 1"):  # a bad value
        uplink_config("default", num_devices=0)


def test_power_levels_equally_spaced_in_dbm():
    cfg = UplinkConfig(p_min_dbm=0.0, p_max_dbm=30.0, num_power_levels=4)
    np.testing.assert_allclose(cfg.levels_dbm, [0, 10, 20, 30])
    np.testing.assert_allclose(cfg.power_levels_w, [1e-3, 1e-2, 1e-1, 1.0])


def test_explicit_power_levels_override_range():
    cfg = UplinkConfig(power_levels_dbm=(10.0, 20.0))
    assert cfg.num_power_levels == 2
    assert (cfg.p_min_dbm, cfg.p_max_dbm) == (10.0, 20.0)
    with pytest.raises(ValueError, match="power_levels_dbm must be strictly increasing"):
        UplinkConfig(power_levels_dbm=(20.0, 10.0))
    # overriding the range later drops the explicit levels
    assert cfg.replace(num_power_levels=3).num_power_levels == 3


def test_single_power_level_is_the_maximum():
    cfg = UplinkConfig(num_power_levels=1)
    np.testing.assert_allclose(cfg.levels_dbm, [23.0])


def test_equal_range_with_several_levels_is_rejected():
    with pytest.raises(ValueError, match="leaves no room"):
        UplinkConfig(p_min_dbm=10.0, p_max_dbm=10.0, num_power_levels=3)


def test_config_is_frozen():
    cfg = UplinkConfig()
    with pytest.raises(AttributeError):
        cfg.num_devices = 3  # type: ignore[misc]


def test_every_field_documents_unit_and_meaning():
    import dataclasses

    for f in dataclasses.fields(UplinkConfig):
        assert f.metadata.get("unit"), f.name
        assert f.metadata.get("doc"), f.name
