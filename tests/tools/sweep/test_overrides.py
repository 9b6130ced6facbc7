"""Swept values typed like their train param, and written back as `-S` text that reads back as the same value."""

from __future__ import annotations

import pytest

from mtt.core.errors import ParamsError
from mtt.core.params import load_yaml
from mtt.tools.sweep.overrides import parse_value, yaml_text


def test_values_take_the_type_of_their_train_param():
    assert parse_value("n_train", "1e4") == 10000 and isinstance(parse_value("n_train", "1e4"), int)
    assert parse_value("n_train", "1.5e3") == 1500 and parse_value("batch_size", "256") == 256
    assert parse_value("learning_rate", "1e-3") == 0.001 and isinstance(parse_value("learning_rate", "1"), float)
    assert parse_value("head", "mdn") == "mdn" and parse_value("log_features", "true") is True
    assert parse_value("preset", "none") == "none"
    # what a child's -S gets reads back (YAML 1.1 would read 1e-05 as a string)
    for value in (1e-05, 0.001, 10000, 2.5e20, "seed_baseline", True, "objects+ellipse", "yes", [0.16, 0.84]):
        assert load_yaml(yaml_text(value)) == value, value
    assert yaml_text(1e-05) == "1.0e-05" and yaml_text(10000) == "10000"


def test_bad_values_and_unknown_params_are_named():
    with pytest.raises(ParamsError, match=r"n_train=1\.5: train\.n_train takes an integer"):
        parse_value("n_train", "1.5")
    with pytest.raises(ParamsError, match=r"learning_rate=fast: train\.learning_rate takes a number"):
        parse_value("learning_rate", "fast")
    with pytest.raises(ParamsError, match=r"unknown train param 'n_trian'; known: preset, "):
        parse_value("n_trian", "1")
