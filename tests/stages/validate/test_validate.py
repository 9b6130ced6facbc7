"""The validate stage: clean data passes; each injected fault is caught with the right message."""

from __future__ import annotations

import contextlib
import json
import shutil

import numpy as np
import pytest
import yaml
from conftest import SHARED_DATA

from mtt.core.errors import ValidationFailed
from mtt.core.events.params import PrepareParams
from mtt.stages.validate.command import prepared_rows
from mtt.stages.validate.params import DriftParams, ValidateParams
from mtt.stages.validate.stage import run_validate, validate_new

PARAMS = ValidateParams()


def _fails(frame, reference, params=PARAMS, scaler="standard") -> str:
    with pytest.raises(ValidationFailed) as info:
        validate_new(params, frame, reference, scaler=scaler)
    return str(info.value)


@pytest.mark.slow
def test_clean_prepared_data_passes_and_writes_reports(prepared, tmp_path):
    folder, _, features = prepared
    summary = run_validate(PARAMS, folder, tmp_path / "reference", tmp_path / "validation.json", tmp_path / "docs")
    assert summary["critical_failures"] == 0 and summary["warnings"] == 0
    assert set(summary["splits"]) == {"train", "val", "test"}
    assert summary["splits"]["val"]["evaluated"] > 4 * len(features)  # drift checks on every feature
    assert summary["categories"]["units"]["failed"] == 0 and summary["categories"]["drift"]["evaluated"] > 0
    assert json.loads((tmp_path / "validation.json").read_text())["splits"]["train"]["failed"] == 0
    assert sorted(p.name for p in (tmp_path / "reference").iterdir()) == [
        ".mtt-output.json", "profile.json", "scalers.npz", "train_outside.json"]
    assert summary["scaler"] == "standard"
    index = (tmp_path / "docs" / "index.html").read_text()
    assert "val" in index and len(list((tmp_path / "docs" / "validations").rglob("*.html"))) == 9  # 3 suites per split


def _contents(folder):
    """Every file under `folder` (relative path -> bytes), in sorted order."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # two full validate runs with Data Docs
def test_two_runs_on_the_same_data_write_the_same_bytes(small_prepared, tmp_path, monkeypatch):
    """Reference, summary and every Data Docs file: no run time, build time, random id or absolute path, so a
    second run (or another clone) writes the same bytes."""
    params = ValidateParams(drift=DriftParams(action="warn"))
    prepared = tmp_path / "data" / "prepared"
    shutil.copytree(small_prepared, prepared)
    monkeypatch.chdir(tmp_path)
    for run in ("one", "two"):
        run_validate(params, "data/prepared", f"{run}/reference", f"{run}/validation.json", f"{run}/docs")
    one, two = (_contents(tmp_path / run) for run in ("one", "two"))
    assert list(one) == list(two) and len(one) > 20
    assert [name for name in one if one[name] != two[name]] == []
    summary = json.loads((tmp_path / "one" / "validation.json").read_text())
    assert summary["inputs"]["train"]["path"] == "data/prepared/train.parquet" and "seconds" not in summary
    assert not [name for name, data in one.items() if str(tmp_path).encode() in data]  # no absolute path anywhere


def test_clean_val_split_passes_against_the_reference(prepared, reference):
    _, frames, _ = prepared
    assert validate_new(PARAMS, frames["val"], reference)["critical_failures"] == 0


def test_mev_units_are_caught(prepared, reference):
    _, frames, _ = prepared
    frame = frames["val"].copy()
    energy = [c for c in frame.columns if c.endswith(("_pt", "_e", "_px", "_py")) or c.startswith("m_")
              or c == "ht"]
    frame[energy] = frame[energy] * np.float32(1000)
    message = _fails(frame, reference)
    assert "new: units: lplus_pt: expect_column_median_to_be_between" in message
    assert "the input is in MeV" in message


def test_a_rescaled_derived_feature_breaks_consistency_at_any_size(prepared, reference):
    """m_vis x 1.02 on 200 events: far below what drift checks can see, but m_vis no longer equals the mass
    of the four objects."""
    _, frames, _ = prepared
    frame = frames["val"].iloc[:200].copy()
    frame["m_vis"] = frame["m_vis"] * np.float32(1.02)
    message = _fails(frame, reference)
    assert "new: consistency: m_vis_vs_objects: expect_column_values_to_be_between observed 100%" in message
    assert "drift" not in message


@pytest.mark.slow  # a second consistency case (the rescaled feature above is the fast one)
def test_the_objects_set_in_another_unit_or_with_a_lost_jet_breaks_consistency(prepared, reference):
    """The objects set's lepton momenta in MeV (energy and momentum scaled together, so E = |p| still holds)
    and one jet slot emptied: the relations to the lowlevel set and to n_jets catch both on 200 events."""
    _, frames, _ = prepared
    frame = frames["val"].iloc[:200].copy()
    frame[["lplus_px", "lplus_py", "lplus_pz"]] *= np.float32(1000)
    frame["lplus_loge"] += np.float32(np.log(1000))
    frame["jet1_mask"] = np.float32(0)
    message = _fails(frame, reference)
    assert "new: consistency: lplus_objects_vs_lowlevel: expect_column_values_to_be_between" in message
    assert "new: consistency: jet_slots_vs_n_jets: expect_column_values_to_be_between" in message


def test_a_shifted_feature_is_caught_as_drift(prepared, reference):
    _, frames, _ = prepared
    frame = frames["val"].copy()
    frame["m_vis"] = frame["m_vis"] * np.float32(1.1)
    message = _fails(frame, reference)
    assert "new: drift: m_vis: expect_column_mean_to_be_between" in message
    assert "new: drift: m_vis: expect_column_kl_divergence_to_be_less_than" in message
    assert "m_ll" not in message  # only the shifted feature


@pytest.mark.slow  # the same GX run as the drift test above, with action: warn
def test_drift_can_warn_instead_of_failing(prepared, reference, capsys):
    _, frames, _ = prepared
    frame = frames["val"].copy()
    frame["ht"] = frame["ht"] * np.float32(1.1)  # ht: no other column fixes it
    params = PARAMS.model_copy(update={"drift": DriftParams(action="warn")})
    # minmax: a 10% shift stays within the allowed fraction outside [0, 1] (under z scaling its tail
    # beyond |z| = 5 would fail the scaling check too)
    summary = validate_new(params, frame, reference, scaler="minmax")
    assert summary["critical_failures"] == 0 and summary["warnings"] >= 2
    assert "validate: warning: new: drift: ht" in capsys.readouterr().out


@pytest.mark.slow  # a full validate or train run: the slow tier
def test_a_feature_scaled_twice_is_caught(prepared, reference):
    """A feature that arrives already min-max scaled leaves [0, 1] once the reference minmax scaler is applied;
    under the standard scaler it stays inside |z| < 5, and the drift checks catch it instead."""
    _, frames, _ = prepared
    frame = frames["val"].copy()
    column = frame["met_pt"]
    frame["met_pt"] = ((column - column.min()) / (column.max() - column.min())).astype(np.float32)
    message = _fails(frame, reference, scaler="minmax")
    assert "new: scaling: met_pt: expect_column_values_to_be_between" in message
    assert "new: drift: met_pt: expect_column_mean_to_be_between" in _fails(frame, reference, scaler="standard")


def test_nans_are_caught(prepared, reference):
    _, frames, _ = prepared
    frame = frames["val"].copy()
    frame.loc[:9, "b1_eta"] = np.nan
    message = _fails(frame, reference)
    assert "new: schema: b1_eta: expect_column_values_to_not_be_null" in message


@pytest.mark.slow  # a second schema case (NaN below is the fast one)
def test_a_missing_column_is_caught(prepared, reference):
    _, frames, _ = prepared
    message = _fails(frames["val"].drop(columns=["m_bb"]), reference)
    assert "new: schema: (table): expect_table_columns_to_match_ordered_list" in message


@pytest.mark.slow
def test_swapped_columns_are_caught(prepared, reference):
    _, frames, _ = prepared
    columns = list(frames["val"].columns)
    i, j = columns.index("lplus_eta"), columns.index("lplus_phi")
    columns[i], columns[j] = columns[j], columns[i]
    message = _fails(frames["val"][columns], reference)  # same data, wrong order
    assert "expect_table_columns_to_match_ordered_list" in message
    relabelled = frames["val"].rename(columns={"lplus_pt": "m_ll", "m_ll": "lplus_pt"})[columns]  # data swapped
    message = _fails(relabelled[list(frames["val"].columns)], reference)
    assert "new: drift: m_ll" in message and "new: drift: lplus_pt" in message


@pytest.mark.slow  # a third schema case
def test_a_wrong_dtype_is_caught(prepared, reference):
    _, frames, _ = prepared
    frame = frames["val"].copy()
    frame["n_jets"] = frame["n_jets"].astype(np.float64)
    message = _fails(frame, reference)
    assert "new: schema: n_jets: expect_column_values_to_be_of_type observed float64" in message


def test_out_of_range_physics_is_caught(prepared, reference):
    _, frames, _ = prepared
    frame = frames["val"].copy()
    frame.loc[0, "b2_eta"] = np.float32(3.1)
    frame.loc[1, "m_tt"] = np.float32(150.0)
    message = _fails(frame, reference)
    assert "new: physics: b2_eta: expect_column_values_to_be_between" in message
    assert "new: physics: m_tt: expect_column_values_to_be_between" in message


def test_a_scaler_fitted_on_the_wrong_split_is_caught(prepared):
    """A pipeline bug: the reference scaler was fitted on another split (here a piece of val)."""
    from mtt.core.preprocessing import Scaler
    from mtt.stages.validate.reference import scaler_check
    from mtt.stages.validate.report import Report
    from mtt.stages.validate.stage import finish

    _, frames, features = prepared
    wrong = Scaler.fit("minmax", frames["val"][features].iloc[:300].to_numpy(np.float64), features)
    report = Report([scaler_check(frames["train"], wrong)])
    with pytest.raises(ValidationFailed, match=r"train: scaling: \(all\): scaler_fitted_on_train observed max "
                                               r"relative difference"):
        finish(report, None, 0.0)
    right = Scaler.fit("minmax", frames["train"][features].to_numpy(np.float64), features)
    assert scaler_check(frames["train"], right).success


@pytest.mark.slow
def test_every_scaler_kind_passes_on_clean_data(prepared, reference):
    """Long pT tails leave |z| > 5 under standard scaling on train too: allowed as often as train does."""
    _, frames, _ = prepared
    for scaler in ("minmax", "standard", "robust", "quantile", "standard+log", "quantile+log"):
        assert validate_new(PARAMS, frames["val"], reference, scaler=scaler)["critical_failures"] == 0, scaler


def test_an_unknown_scaler_names_what_the_reference_holds(prepared, reference):
    _, frames, _ = prepared
    with pytest.raises(ValidationFailed, match="no scaler 'zscore' in the reference .* standard"):
        validate_new(PARAMS, frames["val"], reference, scaler="zscore")


@pytest.mark.slow  # a full validate or train run: the slow tier
def test_critical_failure_keeps_the_reports(prepared, reference, tmp_path):
    _, frames, _ = prepared
    frame = frames["val"].copy()
    frame["m_vis"] = frame["m_vis"] * np.float32(1.1)
    with pytest.raises(ValidationFailed):
        validate_new(PARAMS, frame, reference, tmp_path / "summary.json", tmp_path / "docs")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["critical_failures"] >= 2 and any("m_vis" in f for f in summary["failures"])
    assert (tmp_path / "docs" / "index.html").exists()


@pytest.mark.slow  # prepares a real CMS file first
def test_real_nanoaod_features_pass_schema_and_units(reference, tmp_path):
    """The 4 events of the CMS file that pass the loose reading-check selection (see the prepare tests)."""
    nano = SHARED_DATA / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
    if not nano.exists():
        pytest.skip("shared data not present")
    loose = PrepareParams.model_validate({
        "schema": "nanoaod", "workers": 1,
        "nanoaod": {"electron_id_min": 0, "muon_id": "none", "muon_iso_max": 1000.0, "jet_id_min": 0},
        "selection": {"lepton_pt_lead": 0.0, "lepton_pt_min": 0.0, "lepton_eta_max": 10.0,
                      "electron_gap": None, "m_ll_min": 0.0, "z_window": None,
                      "met_min_same_flavour": 0.0, "jet_pt_min": 0.0, "jet_eta_max": 10.0,
                      "jet_lepton_dr_min": 0.0, "n_btag_min": 0},
    })
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"prepare": loose.model_dump(by_alias=True)}))
    frame = prepared_rows([str(nano)], str(params_file))
    assert len(frame) == 4 and "m_tt" not in frame
    # 4 real events with a loose selection need not match the simulated distributions (drift, ranges)
    with contextlib.suppress(ValidationFailed):
        validate_new(PARAMS, frame, reference, tmp_path / "summary.json")
    summary = json.loads((tmp_path / "summary.json").read_text())
    failed_categories = {line.split(": ")[1] for line in summary["failures"]}
    assert "schema" not in failed_categories and "units" not in failed_categories
    assert summary["categories"]["schema"]["failed"] == 0 and summary["categories"]["units"]["failed"] == 0
