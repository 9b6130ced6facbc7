"""Typed params: every bad key is named with what is allowed, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mtt.core.events.params import PrepareParams, SelectionParams
from mtt.core.params import ParamsError, parse_overrides
from mtt.stages.simulate.params import SimulateParams
from mtt.stages.validate.params import DriftParams, ValidateParams
from mtt.tools.params import load_params

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_repo_params_file_is_valid_and_complete():
    params = load_params(REPO / "params.yaml")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    # every field is spelled out in params.yaml, so a physicist sees every knob
    assert set(raw["simulate"]) == set(SimulateParams.model_fields)
    assert set(raw["prepare"]) == {f.alias or name for name, f in PrepareParams.model_fields.items()}
    assert set(raw["prepare"]["selection"]) == set(SelectionParams.model_fields)
    assert params.prepare.schema_name == "native" and params.prepare.split.train == 0.7
    assert set(raw["validate"]) == set(ValidateParams.model_fields)
    assert set(raw["validate"]["drift"]) == set(DriftParams.model_fields)
    assert "scaler" not in raw["validate"]  # one scaler param: train.scaler, which validate checks
    assert params.train.scaler == "standard"
    assert params.simulate.level == "parton" and params.simulate.sqrt_s == 13000.0


def test_unknown_key_lists_the_allowed_ones(tmp_path):
    path = _write(tmp_path, "simulate:\n  n_event: 10\n")
    with pytest.raises(ParamsError, match=r"simulate.n_event: unknown key; allowed keys: process, zprime, n_events, "
                                          r"seed"):
        load_params(path, "simulate")


def test_unknown_section(tmp_path):
    path = _write(tmp_path, "simulte:\n  n_events: 10\n")
    with pytest.raises(ParamsError, match=r"simulte: unknown key; allowed keys: simulate"):
        load_params(path)


def test_wrong_type_is_not_coerced(tmp_path):
    path = _write(tmp_path, "simulate:\n  n_events: '500'\n")
    with pytest.raises(ParamsError, match=r"simulate.n_events: Input should be a valid integer \(got '500'\)"):
        load_params(path, "simulate")
    path = _write(tmp_path, "simulate:\n  progress: 1\n")
    with pytest.raises(ParamsError, match=r"simulate.progress: Input should be a valid boolean"):
        load_params(path, "simulate")


def test_out_of_range_values(tmp_path):
    path = _write(tmp_path, "simulate:\n  seed: -1\n  top_mass: 20\n")
    with pytest.raises(ParamsError) as info:
        load_params(path, "simulate")
    assert "simulate.seed: Input should be greater than or equal to 0" in str(info.value)
    assert "simulate.top_mass: Input should be greater than 100" in str(info.value)


def test_an_mdn_window_outside_0_1_is_refused_naming_the_param(tmp_path):
    path = _write(tmp_path, "evaluate:\n  mdn_window: 1.5\n")
    with pytest.raises(ParamsError, match=r"evaluate.mdn_window: Input should be less than 1"):
        load_params(path, "evaluate")


def test_overrides_apply_to_the_section_and_keep_yaml_types(tmp_path):
    path = _write(tmp_path, "simulate:\n  n_events: 10\n")
    params = load_params(path, "simulate", ["n_events=500", "simulate.level=full", "seed=", "sqrt_s=8000"])
    assert params.n_events == 500 and params.level == "full" and params.seed == 12345
    assert params.sqrt_s == 8000.0


def test_bad_overrides():
    with pytest.raises(ParamsError, match="expected KEY=VALUE"):
        parse_overrides(["n_events"], "simulate")
    assert parse_overrides(["selection.m_ll_min=30", "prepare.split.val=0.2"], "prepare") == {
        "selection": {"m_ll_min": 30}, "split": {"val": 0.2}}


def test_nested_override_reaches_the_nested_key(tmp_path):
    path = _write(tmp_path, "prepare:\n  selection:\n    m_ll_min: 15.0\n    jet_pt_min: 25.0\n")
    params = load_params(path, "prepare", ["selection.m_ll_min=30.0"])
    assert params.selection.m_ll_min == 30.0 and params.selection.jet_pt_min == 25.0
    with pytest.raises(ParamsError, match=r"simulate.train: unknown key"):
        load_params(path, "simulate", ["train.epochs=3"])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(_write(tmp_path, "simulate: [\n"))
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_params(_write(tmp_path, "- 1\n- 2\n"))
