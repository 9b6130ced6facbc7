"""The compare stage on a study folder: its files, its refusals, and the MLflow parent run in a real store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from stages.compare.study_files import write_config

from mtt.cli import main as cli
from mtt.stages.compare.params import StudyParams
from mtt.stages.compare.stage import CompareError, run_compare
from mtt.stages.compare.table import rounded
from mtt.stages.compare.tracking import CHILDREN_TAG, PARENT_TAG

PARAMS = StudyParams(configs={"seed_baseline": "seed_baseline", "hybrid_mdn": "hybrid_mdn"}, recommended="hybrid_mdn")


@pytest.fixture
def study(tmp_path: Path, store: MlflowClient) -> Path:
    """Two configurations' outputs (their runs in no store: compare then writes files only), with a fresh
    tracking store so that nothing reaches the project's."""
    folder = tmp_path / "study"
    write_config(folder, "seed_baseline", 0.15)
    write_config(folder, "hybrid_mdn", 0.12, mdn=True)
    return folder


def test_it_writes_the_table_the_figures_and_the_headline(study: Path, tmp_path: Path) -> None:
    table = run_compare(PARAMS, study, tmp_path / "comparison", tmp_path / "headline.json")
    assert len(table) == 9
    out = tmp_path / "comparison"
    assert sorted(p.name for p in out.iterdir()) == [
        ".mtt-output.json", "bias_resolution.png", "comparison.json", "comparison.md", "loss_curves.png",
        "spectra.png", "unfolded.png"]
    assert all((out / name).stat().st_size > 5000 for name in ("spectra.png", "bias_resolution.png"))
    assert json.loads((out / "comparison.json").read_text()) == rounded(table)
    headline = json.loads((tmp_path / "headline.json").read_text())
    assert headline["hybrid_mdn"]["mdn_window"] == {"resolution_ratio": 0.588}  # its spectrum: mdn_expected


def test_the_same_outputs_give_the_same_bytes(study: Path, tmp_path: Path) -> None:
    run_compare(PARAMS, study, tmp_path / "a", tmp_path / "a.json")
    run_compare(PARAMS, study, tmp_path / "b", tmp_path / "b.json")
    for name in ("comparison.md", "comparison.json", "spectra.png", "loss_curves.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_a_configuration_not_yet_evaluated_is_named_with_the_command(study: Path, tmp_path: Path) -> None:
    shutil.rmtree(study / "hybrid_mdn" / "eval")
    with pytest.raises(CompareError, match=r"hybrid_mdn/eval/metrics.json: missing.*dvc repro evaluate@hybrid_mdn"):
        run_compare(PARAMS, study, tmp_path / "comparison", tmp_path / "headline.json")
    assert not (tmp_path / "comparison").exists() and not (tmp_path / "headline.json").exists()


def test_configurations_evaluated_on_other_events_are_refused(study: Path, tmp_path: Path) -> None:
    metrics = study / "hybrid_mdn" / "eval" / "metrics.json"
    figures = json.loads(metrics.read_text())
    figures["baseline_ellipse"]["resolution"] = 0.21  # another test split gives the ellipse method other figures
    metrics.write_text(json.dumps(figures))
    with pytest.raises(CompareError, match="'seed_baseline' and 'hybrid_mdn' were evaluated on different events"):
        run_compare(PARAMS, study, tmp_path / "comparison", tmp_path / "headline.json")


def test_the_user_folder_is_not_replaced(study: Path, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert cli(["compare", "--params", str(Path(__file__).parents[3] / "params.yaml"), "--study", str(study), "--out",
                str(tmp_path / "mine"), "--headline", str(tmp_path / "h.json")]) == 2
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_the_training_runs_become_children_of_one_parent(store: MlflowClient, study: Path, tmp_path: Path) -> None:
    """A real local store: the configurations' runs nest under a parent holding the comparison; a rerun over the
    same runs updates that parent instead of making a second one."""
    experiment = store.create_experiment("mtt")
    runs = {}
    for config in PARAMS.configs:
        run = store.create_run(experiment, run_name=config, tags={"data.train_sha256": "ab" * 32})
        store.set_terminated(run.info.run_id)
        runs[config] = run.info.run_id
        write_config(tmp_path / "with_runs", config, 0.15 if config == "seed_baseline" else 0.12, run.info.run_id,
                     mdn=config == "hybrid_mdn")
    for _ in range(2):
        run_compare(PARAMS, tmp_path / "with_runs", tmp_path / "comparison", tmp_path / "headline.json",
                    overwrite=True)
    parents = store.search_runs([experiment], filter_string=f"tags.`{CHILDREN_TAG}` != ''")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_name == "study abababab" and parent.info.status == "FINISHED"
    assert {store.get_run(r).data.tags[PARENT_TAG] for r in runs.values()} == {parent.info.run_id}
    assert parent.data.metrics["study/hybrid_mdn.mdn_window.resolution_ratio"] == 0.588
    assert parent.data.metrics["test/baseline_ellipse.resolution"] == 0.2  # logged once, on the parent
    assert "test/model.resolution" not in parent.data.metrics  # a model's figures stay on its own run
    assert "| **hybrid_mdn** |" in parent.data.tags["mlflow.note.content"]
    logged = {a.path for a in store.list_artifacts(parent.info.run_id, "comparison")}
    assert {"comparison/comparison.md", "comparison/spectra.png"} <= logged


def test_runs_in_another_store_leave_the_files_alone(store: MlflowClient, study: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run_compare(PARAMS, study, tmp_path / "comparison", tmp_path / "headline.json")
    assert "the comparison is in files only" in capsys.readouterr().out
    assert (tmp_path / "comparison" / "comparison.md").is_file()
