"""Data that is silently wrong: splits that share events are refused by validate, train and evaluate; NaN/inf
inputs are counted per branch by prepare and predict (never dropped by a cut unseen); all-NaN weights refused."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pandas as pd
import pytest
from reliability.conftest import rewrite
from root_events import branches, good_emu, write_root

from mtt.cli import main as cli
from mtt.core.dataset import ID_COLUMNS, shared_events
from mtt.core.errors import DataError, PrepareError, ValidationFailed
from mtt.core.events.params import PrepareParams
from mtt.stages.evaluate.params import EvaluateParams
from mtt.stages.evaluate.stage import run_evaluate
from mtt.stages.predict.stage import Request
from mtt.stages.predict.stage import main as predict
from mtt.stages.prepare.stage import run_prepare
from mtt.stages.train.params import TrainParams
from mtt.stages.train.stage import TrainPaths, run_train
from mtt.stages.validate.params import ValidateParams
from mtt.stages.validate.stage import run_validate

TINY = TrainParams(epochs=1, batch_size=64, width=8, depth=1)
PARAMS = PrepareParams(workers=1)
DRIFT = (0.05, 0.02)


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and modification time: what 'nothing written or deleted' compares."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _with_train_rows(small_prepared: Path, dest: Path, split: str, n: int = 5) -> Path:
    """A copy of the prepared folder whose `split` also holds the first n events of train."""
    train = pd.read_parquet(small_prepared / "train.parquet")
    return rewrite(small_prepared, dest, lambda f: pd.concat([f, train.iloc[:n]], ignore_index=True),
                   splits=(split,))


# --- splits that overlap ------------------------------------------------------------------------------


def test_shared_events_is_an_exact_join_on_the_three_ids():
    """Equal (run, event) with another luminosityBlock is another event; a repeated id counts once."""
    a = pd.DataFrame({"run": np.array([1, 1, 1, 2], np.uint32), "luminosityBlock": np.array([3, 4, 3, 3], np.uint32),
                      "event": np.array([10, 10, 10, 11], np.uint64)})
    b = pd.DataFrame({"run": np.array([1, 2], np.uint32), "luminosityBlock": np.array([3, 4], np.uint32),
                      "event": np.array([10, 11], np.uint64)})
    shared = shared_events(a, b)
    assert shared[ID_COLUMNS].values.tolist() == [[1, 3, 10]]
    assert shared_events(a.iloc[1:2], b).empty


def test_validate_refuses_splits_that_share_events(small_prepared, tmp_path):
    bad = _with_train_rows(small_prepared, tmp_path / "d" / "prepared", "val")
    before = tree(tmp_path)
    with pytest.raises(ValidationFailed, match=r"val.parquet and train.parquet share 5 events \(run \d+, "
                                               r"luminosityBlock \d+, event \d+, \.\.\.\): a split must not contain "
                                               r"events of another; re-run prepare"):
        run_validate(ValidateParams(), bad, tmp_path / "d" / "new_reference")
    assert tree(tmp_path) == before  # no reference built from it


@pytest.mark.parametrize("split", ["val", "test"])
def test_train_refuses_splits_that_share_events(small_prepared, store, tmp_path, split):
    bad = _with_train_rows(small_prepared, tmp_path / "d" / "prepared", split)
    paths = TrainPaths(prepared=bad, reference=tmp_path / "d" / "reference", model=tmp_path / "models")
    before = tree(tmp_path)
    with pytest.raises(DataError, match=rf"{split}.parquet and train.parquet share 5 events .*: a split must not "
                                        "contain events of another; re-run prepare"):
        run_train(TINY, paths)
    assert tree(tmp_path) == before
    assert not store.search_runs([e.experiment_id for e in store.search_experiments()])  # no run was started


def test_evaluate_refuses_a_test_split_that_shares_events_with_train(small_prepared, tiny_trained, tmp_path,
                                                                     monkeypatch):
    root, uri, _ = tiny_trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    bad = _with_train_rows(small_prepared, tmp_path / "d" / "prepared", "test", n=12)
    before, store = tree(tmp_path), tree(root)
    with pytest.raises(DataError, match=r"test.parquet and train.parquet share 12 events"):
        run_evaluate(EvaluateParams(ellipse=False, unfold=False), bad, root / "models", tmp_path / "eval")
    assert tree(tmp_path) == before and tree(root) == store  # no output, no MLflow run


def test_the_cli_says_it_in_one_line(small_prepared, store, tmp_path, capsys):
    bad = _with_train_rows(small_prepared, tmp_path / "d" / "prepared", "val")
    params = Path(__file__).resolve().parents[2] / "params.yaml"
    before = tree(tmp_path)
    code = cli(["train", "--params", str(params), "--prepared", str(bad), "--model", str(tmp_path / "models"),
                "--reference", str(tmp_path / "d" / "reference"), "--metrics", str(tmp_path / "m.json"),
                "--history", str(tmp_path / "h.csv"), "--checkpoints", str(tmp_path / "ckpt"), "-S", "epochs=1"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "val.parquet and train.parquet share 5 events" in err
    assert tree(tmp_path) == before


# --- non-finite inputs --------------------------------------------------------------------------------


def _variety(n: int) -> list[dict]:
    return [good_emu(electrons=[(30.0 + i % 50, 0.5, 0.01 * i, 1)]) for i in range(n)]


def _set_first(collection: ak.Array, field: str, rows: list[int], value: float) -> ak.Array:
    """The collection with `field` of the first object in `rows` set to `value`."""
    counts = ak.to_numpy(ak.num(collection))
    flat = ak.to_numpy(ak.flatten(collection[field])).copy()
    starts = np.cumsum(counts) - counts
    flat[starts[rows]] = value
    return ak.with_field(collection, ak.unflatten(flat, counts), field)


def _nonfinite_file(path: Path, n: int = 1000) -> Path:
    """n passing e mu events: NaN jet pT in 3 (the first jet, needed for two jets), inf MET in 1, NaN muon pT and
    eta in 1, NaN genWeight in 2: 7 events with non-finite inputs."""
    data = branches(_variety(n))
    data["Jet"] = _set_first(data["Jet"], "pt", [0, 1, 2], np.nan)
    data["MET_pt"][3] = np.inf
    data["Muon"] = _set_first(_set_first(data["Muon"], "pt", [4], np.nan), "eta", [4], np.nan)
    data["genWeight"][[5, 6]] = np.nan
    return write_root(path, data)


NONFINITE = {"Jet_pt": 3, "MET_pt": 1, "Muon_pt": 1, "Muon_eta": 1, "genWeight": 2}


def test_prepare_counts_nonfinite_inputs_per_branch(tmp_path, capsys):
    _nonfinite_file(tmp_path / "a.root")
    metrics = run_prepare(PARAMS.model_copy(update={"max_nonfinite_fraction": 0.01}), [tmp_path / "a.root"],
                          tmp_path / "out", tmp_path / "cutflow.json")
    assert metrics["nonfinite_inputs"] == 7
    assert {k: v for k, v in metrics["nonfinite_inputs_by_branch"].items() if v} == NONFINITE
    assert metrics["nonfinite_inputs_by_branch"]["Electron_pt"] == 0  # every branch checked is listed
    assert metrics["cutflow"]["finite_inputs"]["events"] == 993 == sum(metrics["splits"].values())
    assert json.loads((tmp_path / "cutflow.json").read_text())["nonfinite_inputs_by_branch"]["Jet_pt"] == 3
    weights = pd.concat([pd.read_parquet(tmp_path / "out" / f"{s}.parquet") for s in ("train", "val", "test")]).weight
    assert np.isfinite(weights).all()
    out = capsys.readouterr().out
    assert "7 of 1000 events have NaN/inf inputs" in out and "Jet_pt 3" in out and "genWeight 2" in out
    assert "finite_inputs" in out  # its own line of the printed cutflow


def test_prepare_refuses_too_many_nonfinite_inputs(tmp_path):
    _nonfinite_file(tmp_path / "a.root")
    before = tree(tmp_path)
    with pytest.raises(PrepareError, match=r"7 of 1000 events read have NaN/inf inputs \(.*Jet_pt 3, MET_pt 1, "
                                           r"genWeight 2\), more than prepare.max_nonfinite_fraction = 0.001"):
        run_prepare(PARAMS, [tmp_path / "a.root"], tmp_path / "out", tmp_path / "cutflow.json")
    assert tree(tmp_path) == before


def test_a_sample_with_all_nan_weights_is_refused(tmp_path, capsys):
    write_root(tmp_path / "good.root", branches(_variety(50)))
    data = branches(_variety(50))
    data["genWeight"][:] = np.nan
    write_root(tmp_path / "bad.root", data)
    before = tree(tmp_path)
    with pytest.raises(PrepareError, match=r"bad.root: branch genWeight holds no finite value \(50 entries, all "
                                           "NaN or inf\\)"):
        run_prepare(PARAMS, [tmp_path / "good.root", tmp_path / "bad.root"], tmp_path / "out")
    assert cli(["prepare", "--input", str(tmp_path / "bad.root"), "--out", str(tmp_path / "out"),
                "--metrics", str(tmp_path / "cutflow.json"), "-S", "workers=1"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.root: branch genWeight holds no finite value" in err
    assert tree(tmp_path) == before


def test_predict_counts_nonfinite_inputs_and_records_them(tiny_trained, tmp_path, capsys):
    _nonfinite_file(tmp_path / "a.root")
    request = Request(str(tiny_trained[0] / "models"), [str(tmp_path / "a.root")], tmp_path / "p.parquet")
    result = predict(request, PARAMS.model_copy(update={"max_nonfinite_fraction": 0.01}), {}, DRIFT)
    # the weight is not an input of the model: an event with a NaN weight is still predicted (and counted)
    assert not result.table.selected[:5].any() and result.table.selected[5:].all()
    assert result.nonfinite["events"] == 5 and result.cutflow["finite_inputs"] == 995
    assert {k: v for k, v in result.nonfinite["by_branch"].items() if v} == NONFINITE
    assert pd.read_parquet(tmp_path / "p.parquet").attrs["mtt_predict"]["nonfinite_inputs_by_branch"] == \
        result.nonfinite["by_branch"]
    out = capsys.readouterr().out
    assert "5 of 1000 events have NaN/inf inputs" in out and "Jet_pt 3" in out and "genWeight 2" in out
