"""Clear errors instead of tracebacks: whatever reaches the top of `mtt` becomes one line naming the stage, the
file or param and what to do; the traceback only behind --debug or MTT_DEBUG=1."""

from __future__ import annotations

import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from mtt import cli
from mtt.cli import main

REPO = Path(__file__).resolve().parents[2]
PARAMS = str(REPO / "params.yaml")


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The single line the command wrote to stderr (no traceback)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def rewrite_events(source: Path, dest: Path, **changes: ak.Array) -> Path:
    """A TTree copy of a simulate file with some branches replaced (the layout of each as given)."""
    events = uproot.open(source)["Events"].arrays(filter_name=lambda name: not name.startswith("n"))
    data = {field: events[field] for field in events.fields} | changes
    with uproot.recreate(dest) as out:
        out.mktree("Events", {name: array.type.content for name, array in data.items()},
                   counter_name=lambda counted: f"n_{counted}")
        out["Events"].extend(data)
    return dest


def test_an_unexpected_error_is_one_line_and_the_traceback_is_behind_debug(tmp_path, capsys, monkeypatch):
    def broken(command: object, args: object) -> int:
        return {}["missing"]

    monkeypatch.setattr(cli, "start", broken)
    assert main(["simulate", "--out", str(tmp_path / "x")]) == 2
    err = one_line(capsys)
    assert err.startswith("mtt simulate: error: KeyError: 'missing'") and "--debug" in err
    assert main(["simulate", "--debug", "--out", str(tmp_path / "x")]) == 2
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("MTT_DEBUG", "1")
    assert main(["--debug", "simulate", "--out", str(tmp_path / "x")]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_a_binary_params_file(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_bytes(bytes(range(256)) * 4)
    assert main(["simulate", "--params", str(params), "--out", str(tmp_path / "raw")]) == 2
    assert f"{params}: not a text file" in one_line(capsys)
    assert not (tmp_path / "raw").exists()


def test_a_root_key_of_the_wrong_class(tmp_path, capsys):
    with uproot.recreate(tmp_path / "hist.root") as out:
        out["Events"] = np.histogram(np.arange(10.0), bins=5)
    assert main(["prepare", "--params", PARAMS, "--input", str(tmp_path / "hist.root"),
                 "--out", str(tmp_path / "p"), "--metrics", str(tmp_path / "c.json")]) == 2
    assert "hist.root: 'Events' is a TH1D, not a TTree of events" in one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hist.root"]


def test_a_flat_branch_where_a_jagged_one_is_expected_and_the_reverse(small_sim, tmp_path, capsys):
    source = sorted(small_sim[0].glob("*.root"))[0]
    jets = uproot.open(source)["Events"]["Jet_pt"].array()
    met = uproot.open(source)["Events"]["MET_pt"].array()
    flat = rewrite_events(source, tmp_path / "flat.root", Jet_pt=ak.fill_none(ak.firsts(jets), 0.0))
    assert main(["prepare", "--params", PARAMS, "--input", str(flat), "--out", str(tmp_path / "p")]) == 2
    assert "flat.root: branch Jet_pt holds double, where schema 'native' expects one value per object" in \
        one_line(capsys)
    nested = rewrite_events(source, tmp_path / "nested.root", MET_pt=ak.unflatten(met, 1))
    assert main(["prepare", "--params", PARAMS, "--input", str(nested), "--out", str(tmp_path / "p")]) == 2
    assert "branch MET_pt holds float[1], where schema 'native' expects one value per event" in one_line(capsys)
    assert not (tmp_path / "p").exists()


def test_a_corrupt_mlflow_store(tmp_path, capsys, monkeypatch):
    store = tmp_path / "mlflow.db"
    store.write_bytes(b"\x00garbage" * 512)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    assert main(["runs", "--cleanup"]) == 2
    err = one_line(capsys)
    assert "is corrupt or of another MLflow version" in err and str(store) in err


def test_an_unsupported_tracking_uri(capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "ftp://tracking.example.org/mlflow")
    assert main(["runs", "--cleanup"]) == 2
    assert "ftp://tracking.example.org/mlflow is not supported" in one_line(capsys)


def test_evaluate_of_a_model_whose_run_was_deleted(small_prepared, tiny_trained, tmp_path, capsys, monkeypatch):
    from mlflow.tracking import MlflowClient

    root, uri, run_id = tiny_trained
    store = tmp_path / "mlflow.db"
    shutil.copy(root / "mlflow.db", store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    MlflowClient(f"sqlite:///{store}").delete_run(run_id)
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--params", PARAMS, "--prepared", str(small_prepared), "--model",
                 str(root / "models"), "--out", str(tmp_path / "eval"), "-S", "unfold=false", "-S",
                 "ellipse=false"]) == 2
    err = one_line(capsys)
    assert f"run {run_id} was deleted" in err and "mlflow runs restore" in err
    assert not (tmp_path / "eval").exists()


def test_a_corrupt_checkpoint_on_resume(small_prepared, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "state.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["train", "--params", PARAMS, "--prepared", str(small_prepared), "--reference",
                 str(small_prepared.parent / "reference"), "--model", str(tmp_path / "models"),
                 "--checkpoints", str(tmp_path / "ckpt"), "--metrics", str(tmp_path / "m.json"),
                 "--history", str(tmp_path / "h.csv"), "-S", "resume=true", "-S", "epochs=1"]) == 2
    err = one_line(capsys)
    assert "state.npz: not a readable training state" in err and "resume=false" in err
    assert not (tmp_path / "models").exists()


def test_validate_refuses_a_split_of_a_few_events(small_prepared, tmp_path, capsys):
    import pyarrow.parquet as pq

    few = tmp_path / "prepared"
    shutil.copytree(small_prepared, few)
    pq.write_table(pq.read_table(few / "val.parquet").slice(0, 3), few / "val.parquet")
    assert main(["validate", "--params", PARAMS, "--prepared", str(few), "--reference", str(tmp_path / "ref"),
                 "--summary", str(tmp_path / "v.json"), "--docs", str(tmp_path / "docs")]) == 1
    assert "val has 3 event(s); validate needs at least 10 per split" in one_line(capsys)
    assert not (tmp_path / "ref").exists() and not (tmp_path / "v.json").exists()
