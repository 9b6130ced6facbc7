"""Outputs that would lose the user's files: an output that is, contains or lies inside an input, a folder holding
files the stage did not write, the current folder or the project. Each is refused before any work, with one
line naming the path, and the file tree is the same afterwards."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from mtt.cli import main
from mtt.core.errors import OutputRefused
from mtt.core.io import OUTPUT_RECORD, atomic_dir, check_output_dir, foreign_files

REPO = Path(__file__).resolve().parents[2]
PARAMS = str(REPO / "params.yaml")
#: a simulate run of a few seconds: 30 events, one file, one worker
TINY = ["-S", "n_events=30", "-S", "events_per_chunk=30", "-S", "workers=1", "-S", "progress=false"]


def tree(root: Path) -> dict[str, str]:
    """Every file under root with its content hash: what 'nothing touched' compares."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], root: Path, *words: str) -> str:
    """Run the command; it must exit 2 with one line naming `words`, and leave root's files as they were."""
    before = tree(root)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    assert tree(root) == before
    return err


@pytest.fixture()
def raw(small_sim: tuple[Path, dict, object], tmp_path: Path) -> Path:
    """A copy of the small simulation's ROOT files, in tmp_path/raw."""
    shutil.copytree(small_sim[0], tmp_path / "raw")
    return tmp_path / "raw"


def test_prepare_into_its_input_folder_is_refused(raw, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = refused(["prepare", "--params", PARAMS, "--input", str(raw), "--out", str(raw)], capsys, tmp_path,
                  f"output {raw}: is the input {raw}")
    assert err.startswith("mtt prepare: error:")


def test_prepare_into_a_folder_holding_its_input_or_inside_it_is_refused(raw, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(["prepare", "--params", PARAMS, "--input", str(raw), "--out", str(tmp_path / "raw" / "prepared")],
            capsys, tmp_path, "lies inside the input")
    outer = tmp_path / "data"
    shutil.move(raw, outer / "raw")
    refused(["prepare", "--params", PARAMS, "--input", str(outer / "raw"), "--out", str(outer)], capsys, tmp_path,
            "contains the input")
    refused(["prepare", "--params", PARAMS, "--input", str(outer / "raw"), "--out", str(tmp_path / "p"),
             "--metrics", str(outer / "raw" / "events_00000.root")], capsys, tmp_path, "is the input")


def test_predict_over_one_of_its_inputs_is_refused_even_with_overwrite(raw, tiny_trained, tmp_path, capsys,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = sorted(raw.glob("*.root"))[0]
    refused(["predict", "--params", PARAMS, "--model", str(tiny_trained[0] / "models"), "--input", str(source),
             "--output", str(source), "--overwrite"], capsys, tmp_path, f"output {source}: is the input")
    refused(["predict", "--params", PARAMS, "--model", str(tiny_trained[0] / "models"), "--input", str(raw),
             "--output", str(raw / "friends.root"), "--overwrite"], capsys, tmp_path, "lies inside the input")


@pytest.mark.parametrize("stage", ["simulate", "prepare", "evaluate"])
def test_the_current_folder_is_never_an_output(stage, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    argv = [stage, "--params", PARAMS, "--out", ".", "--overwrite"]
    refused(argv, capsys, tmp_path, "output .: is the current folder")
    refused([stage, "--params", PARAMS, "--out", str(tmp_path.parent), "--overwrite"], capsys, tmp_path,
            "a folder above the current one")


def test_the_project_folder_is_never_an_output(tmp_path, capsys, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        (project / name).write_text("x: 1\n")
    monkeypatch.chdir(tmp_path)
    refused(["simulate", "--params", PARAMS, "--out", str(project), "--overwrite", *TINY], capsys, tmp_path,
            f"output {project}: is a project folder (it holds dvc.yaml, params.yaml)")


def test_simulate_keeps_a_folder_with_the_users_files(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("three weeks of notes")
    refused(["simulate", "--params", PARAMS, "--out", str(out), *TINY], capsys, tmp_path,
            "holds files that mtt simulate did not write (notes.txt)", "--overwrite")


def test_a_stage_replaces_its_own_output_but_not_files_added_to_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "raw"
    assert main(["simulate", "--params", PARAMS, "--out", str(out), *TINY]) == 0
    record = (out / OUTPUT_RECORD).read_text()
    assert '"stage": "simulate"' in record and "events_00000.root" in record
    assert main(["simulate", "--params", PARAMS, "--out", str(out), *TINY]) == 0  # its own output: replaced
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    refused(["simulate", "--params", PARAMS, "--out", str(out), *TINY], capsys, tmp_path, "(notes.txt)")
    assert main(["simulate", "--params", PARAMS, "--out", str(out), "--overwrite", *TINY]) == 0  # asked for
    assert not (out / "notes.txt").exists()


def test_an_output_of_another_stage_is_foreign(tmp_path):
    with atomic_dir(tmp_path / "out", "prepare") as tmp:
        (tmp / "train.parquet").write_bytes(b"x")
        (tmp / "empty").mkdir()
    assert foreign_files(tmp_path / "out", "prepare") == []
    assert foreign_files(tmp_path / "out", "simulate") == ["empty/", "train.parquet"]
    with pytest.raises(OutputRefused, match="mtt simulate did not write"):
        check_output_dir(tmp_path / "out", "simulate")
    (tmp_path / "empty").mkdir()
    assert check_output_dir(tmp_path / "empty", "simulate") == tmp_path / "empty"  # an empty folder is fine


def test_evaluate_and_train_never_write_over_their_inputs(small_prepared, tiny_trained, tmp_path, capsys,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    models = tmp_path / "models"
    shutil.copytree(tiny_trained[0] / "models", models)
    refused(["evaluate", "--params", PARAMS, "--prepared", str(small_prepared), "--model", str(models),
             "--out", str(models), "--overwrite"], capsys, tmp_path, f"output {models}: is the input")
    refused(["train", "--params", PARAMS, "--prepared", str(small_prepared), "--model", str(models),
             "--metrics", str(small_prepared / "metrics.json")], capsys, tmp_path, "lies inside the input")
    refused(["train", "--params", PARAMS, "--prepared", str(small_prepared), "--model", str(tmp_path / "notes"),
             "--metrics", str(tmp_path / "models" / "model.json" / "x.json")], capsys, tmp_path, "cannot write")


def test_validate_never_writes_its_reference_over_the_prepared_data(small_prepared, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(["validate", "--params", PARAMS, "--prepared", str(small_prepared), "--reference", str(small_prepared),
             "--summary", str(tmp_path / "v.json"), "--docs", str(tmp_path / "docs")], capsys, tmp_path,
            "is the input")
    refused(["validate", "--params", PARAMS, "--prepared", str(small_prepared), "--reference", str(tmp_path / "r"),
             "--summary", str(tmp_path / "v.json"), "--docs", str(tmp_path / "r")], capsys, tmp_path, "is the input")


def test_dvcs_gitignore_in_an_output_folder_is_kept_not_foreign(tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    (out / ".gitignore").write_text("/plots\n")
    assert foreign_files(out, "evaluate") == []
    with atomic_dir(out, "evaluate") as tmp:
        (tmp / "metrics.json").write_text("{}")
    assert (out / ".gitignore").read_text() == "/plots\n" and foreign_files(out, "evaluate") == []
