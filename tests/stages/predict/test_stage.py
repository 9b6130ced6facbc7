"""`mtt predict`: the same events and features as training, the same numbers as evaluate, one row per input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import uproot
from root_events import good_emu, write_events

from mtt.cli import main as cli
from mtt.core.artifact import load_model_dir
from mtt.core.dataset import ID_COLUMNS
from mtt.core.errors import DataError, PredictError, PrepareError
from mtt.core.events.params import PrepareParams
from mtt.core.inference import head_output
from mtt.stages.predict.stage import Request, main, write_output
from mtt.stages.train.params import TrainParams
from mtt.stages.train.stage import TrainPaths, run_train

DRIFT = (0.05, 0.02)
NANO = "nanoAOD_2015_CMS_Open_Data_ttbar.root"
#: the 2015 file has no muon identification and no DeepJet score: object quality and cuts opened up
LOOSE = {"schema": "nanoaod",
         "nanoaod": {"electron_id_min": 0, "muon_id": "none", "muon_iso_max": 1000.0, "jet_id_min": 0},
         "selection": {"lepton_pt_lead": 0.0, "lepton_pt_min": 0.0, "lepton_eta_max": 10.0,
                       "electron_gap": None, "m_ll_min": 0.0, "z_window": None,
                       "met_min_same_flavour": 0.0, "jet_pt_min": 0.0, "jet_eta_max": 10.0,
                       "jet_lepton_dr_min": 0.0, "n_btag_min": 0}}


@pytest.fixture
def model(tiny_trained):
    """The shared tiny model's folder (registered as `mtt-mtt` in its store)."""
    return tiny_trained[0] / "models"


def _request(model, inputs, output, **extra) -> Request:
    return Request(str(model), [str(i) for i in inputs], output, **extra)


def test_predictions_equal_the_models_on_the_prepared_events(small_prepared, model, tmp_path):
    """Every test event of the prepared splits comes out selected with the same m_tt evaluate computes."""
    raw = small_prepared.parent / "raw"
    result = main(_request(model, [raw], tmp_path / "p.parquet", reference=small_prepared.parent / "reference"),
                  PrepareParams(workers=1), {}, DRIFT)
    written = pd.read_parquet(tmp_path / "p.parquet")
    pd.testing.assert_frame_equal(written, result.table)
    assert len(written) == 2000 and (written.entry.to_numpy() == np.arange(2000)).all()  # the input's order
    test = pd.read_parquet(small_prepared / "test.parquet")
    artifact = load_model_dir(model)
    expected = head_output(artifact.model, test[artifact.features].to_numpy(np.float32), artifact.meta).point
    joined = test[ID_COLUMNS].assign(expected=expected).merge(written, on=ID_COLUMNS)
    assert len(joined) == len(test) and joined.selected.all()
    np.testing.assert_allclose(joined.m_tt, joined.expected, rtol=1e-6)
    n_prepared = sum(len(pd.read_parquet(small_prepared / f"{s}.parquet")) for s in ("train", "val", "test"))
    assert written.selected.sum() == n_prepared and written.m_tt.isna().sum() == 2000 - n_prepared
    assert not [row for row in result.drift if row["drifted"]]  # the training sample does not drift from itself


def test_the_root_output_is_a_friend_of_the_input(small_prepared, model, tmp_path):
    raw = sorted((small_prepared.parent / "raw").glob("*.root"))[0]
    result = main(_request(model, [raw], tmp_path / "p.root"), PrepareParams(workers=1), {}, DRIFT)
    assert uproot.open(tmp_path / "p.root").classnames() == {"Friends;1": "TTree"}  # AddFriend takes a TTree only
    write_output(result.table, tmp_path / "again" / "p.root", overwrite=False)
    assert (tmp_path / "again" / "p.root").read_bytes() == (tmp_path / "p.root").read_bytes()  # same table, same bytes
    friend = uproot.open(tmp_path / "p.root")["Friends"].arrays(library="np")
    events = uproot.open(raw)["Events"]
    assert len(friend["event"]) == events.num_entries
    np.testing.assert_array_equal(friend["event"], events["event"].array(library="np"))
    assert np.isnan(friend["m_tt"][~friend["selected"]]).all() and np.isfinite(friend["m_tt"][friend["selected"]]).all()


def test_real_cms_nanoaod_gives_a_prediction_per_selected_event(shared_data, model, tmp_path, capsys):
    """The 2015 file with the loose selection of the prepare test: 4 of its 200 events pass (the units check
    allows the 4 events' medians their statistical spread)."""
    result = main(_request(model, [shared_data / NANO], tmp_path / "nano.parquet"), PrepareParams(workers=1),
                  LOOSE, DRIFT)
    assert len(result.table) == 200 and result.table.selected.sum() == 4
    assert result.table.loc[result.table.selected, "m_tt"].between(300, 2000).all()
    assert "200 events read, 4 selected" in capsys.readouterr().out


def test_bad_inputs_are_named_and_nothing_is_written(small_prepared, model, tmp_path):
    raw = small_prepared.parent / "raw"
    existing = tmp_path / "old.parquet"
    existing.write_text("keep")
    with pytest.raises(PredictError, match="old.parquet: exists; give --overwrite"):
        main(_request(model, [raw], existing), PrepareParams(workers=1), {}, DRIFT)
    assert existing.read_text() == "keep"
    with pytest.raises(PredictError, match="no such model folder"):
        main(_request(tmp_path / "nope", [raw], tmp_path / "a.parquet"), PrepareParams(workers=1), {}, DRIFT)
    # GeV data declared as MeV: every lepton falls a factor 1000 below the cuts, and the cutflow shows where
    with pytest.raises(PredictError, match=r"no events pass the selection.*\n.*\nall +2000 .*\nfinite_inputs +2000 .*\n"
                                           r"two_leptons +0 "):
        main(_request(model, [raw], tmp_path / "a.parquet"), PrepareParams(workers=1), {"units": "MeV"}, DRIFT)
    with pytest.raises(PrepareError, match="missing branches for schema 'nanoaod': Electron_cutBased"):
        main(_request(model, [raw], tmp_path / "a.parquet"), PrepareParams(workers=1), {"schema": "nanoaod"}, DRIFT)
    with pytest.raises(PredictError, match=r"no events pass the selection in 1 file\(s\):\n.*\nall +2000"):
        main(_request(model, [raw], tmp_path / "a.parquet"), PrepareParams(workers=1),
             {"selection": {"n_jets_min": 30}}, DRIFT)
    with pytest.raises(PredictError, match="--output .*a.csv: write .parquet or .root"):
        main(_request(model, [raw], tmp_path / "a.csv"), PrepareParams(workers=1), {}, DRIFT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.parquet"]


def test_strict_refuses_drifted_features_and_the_cli_says_why(small_prepared, model, tmp_path, capsys):
    """A jet pT cut of 60 GeV instead of training's 30 GeV moves the jet features far from the train profile."""
    args = ["predict", "--model", str(model), "--input", str(small_prepared.parent / "raw"),
            "--output", str(tmp_path / "s.parquet"), "--reference", str(small_prepared.parent / "reference"),
            "-S", "selection.jet_pt_min=60"]
    assert cli([*args, "--strict"]) == 2
    captured = capsys.readouterr()
    assert "features drifted from the training data" in captured.out and "--strict is set" in captured.err
    assert not (tmp_path / "s.parquet").exists()
    assert cli(args) == 0 and (tmp_path / "s.parquet").is_file()


def test_a_run_or_a_registered_alias_gives_the_same_predictions(tiny_trained, small_prepared, tmp_path, monkeypatch):
    """The run logs its models/ folder (with the prepare settings and the train profile): `runs:/<id>` and
    `models:/mtt-mtt@candidate` predict exactly what the folder does; a missing alias is named."""
    root, uri, _ = tiny_trained
    folder = root / "models"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    raw = small_prepared.parent / "raw"
    expected = main(_request(folder, [raw], tmp_path / "folder.parquet"), PrepareParams(workers=1), {}, DRIFT)
    run_id = load_model_dir(folder).run_id
    for uri_form in (f"runs:/{run_id}", "models:/mtt-mtt@candidate", "models:/mtt-mtt/1"):
        got = main(_request(uri_form, [raw], tmp_path / f"{len(uri_form)}.parquet"), PrepareParams(workers=1), {},
                   DRIFT)
        pd.testing.assert_frame_equal(got.table, expected.table)
    assert expected.drift  # the model folder's own train profile was found
    with pytest.raises(PredictError, match="models:/mtt-mtt@champion: .*champion"):
        main(_request("models:/mtt-mtt@champion", [raw], tmp_path / "x.parquet"), PrepareParams(workers=1), {},
             DRIFT)
    with pytest.raises(PredictError, match="say which version"):
        main(_request("models:/mtt-mtt", [raw], tmp_path / "x.parquet"), PrepareParams(workers=1), {}, DRIFT)


def test_a_truncated_input_is_named_and_nothing_is_written(small_prepared, model, tmp_path):
    raw = sorted((small_prepared.parent / "raw").glob("*.root"))[0]
    broken = tmp_path / "broken.root"
    broken.write_bytes(raw.read_bytes()[: raw.stat().st_size // 2])
    with pytest.raises(PrepareError, match="broken.root"):
        main(_request(model, [broken], tmp_path / "p.parquet"), PrepareParams(workers=1), {}, DRIFT)
    assert not (tmp_path / "p.parquet").exists()


@pytest.mark.slow  # trains a second model
def test_an_mdn_writes_its_mode_and_68_percent_interval(small_prepared, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    run_train(TrainParams(epochs=2, batch_size=64, width=16, depth=2, head="mdn", mdn_components=3,
                          registered_model=""),
              TrainPaths(prepared=small_prepared, reference=small_prepared.parent / "reference",
                         model=tmp_path / "models"))
    result = main(_request(tmp_path / "models", [small_prepared.parent / "raw"], tmp_path / "p.parquet"),
                  PrepareParams(workers=1), {}, DRIFT)
    chosen = result.table[result.table.selected]
    assert {"m_tt", "m_tt_mode", "m_tt_window", "m_tt_q16", "m_tt_q84"} <= set(chosen.columns)
    assert (chosen.m_tt_q16 <= chosen.m_tt).all() and (chosen.m_tt <= chosen.m_tt_q84).all()
    assert chosen.m_tt_window.between(1.0, 50_000.0).all()


def test_mev_inputs_and_features_the_sets_do_not_build_are_refused(small_prepared, model, tmp_path):
    """Hand-built e mu events written in MeV and read as GeV pass the selection (every pT is 1000x larger) and are
    refused by the units check, naming the columns; feature sets without the model's inputs name them."""
    events = [good_emu(electrons=[(30.0 + i % 50, 0.5, 0.01 * i, 1)]) for i in range(200)]
    write_events(tmp_path / "mev.root", events, energy_scale=1000.0)
    with pytest.raises(DataError, match=r"mev.root: predict refuses this data(.|\n)*units: \w+: median .*\(the "
                                        r"input is in MeV\?\)"):
        main(_request(model, [tmp_path / "mev.root"], tmp_path / "p.parquet"), PrepareParams(workers=1), {}, DRIFT)
    raw = small_prepared.parent / "raw"
    with pytest.raises(PredictError, match=r"the model reads \[.*\] \.\.\., which the feature sets \['seed'\] do "
                                           r"not build"):
        main(_request(model, [raw], tmp_path / "p.parquet"), PrepareParams(workers=1), {"feature_sets": ["seed"]},
             DRIFT)
    assert not (tmp_path / "p.parquet").exists()
