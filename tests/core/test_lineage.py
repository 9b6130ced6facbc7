"""Run lineage: the git state (pipeline outputs do not make the code dirty), committed files, data checks."""

from __future__ import annotations

from mtt.core.lineage import committed_text, git_state


def test_git_state_outside_a_checkout(tmp_path):
    assert git_state(tmp_path) == {"git_commit": "", "git_dirty": ""}


def test_log_data_checks_attaches_summary_and_docs(tmp_path):
    import json

    import mlflow
    from mlflow.tracking import MlflowClient

    from mtt.core.lineage import log_data_checks
    from mtt.core.tracking import ensure_experiment

    summary = tmp_path / "validation.json"
    summary.write_text(json.dumps({"critical_failures": 0, "warnings": 2,
                                   "splits": {"val": {"evaluated": 10, "passed": 9, "failed": 1}}}))
    docs = tmp_path / "docs"
    (docs / "validations").mkdir(parents=True)
    (docs / "index.html").write_text("<html>data docs</html>")
    (docs / "validations" / "val.html").write_text("<html>val</html>")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    try:
        experiment = ensure_experiment("checks", start=tmp_path)
        assert ensure_experiment("checks", start=tmp_path) == experiment
        with mlflow.start_run(experiment_id=experiment) as run:
            log_data_checks(summary, docs)
        assert (tmp_path / "mlartifacts" / run.info.run_id / "artifacts" / "data_checks" / "validation.json").exists()
        client = MlflowClient(tracking_uri=uri)
        logged = client.get_run(run.info.run_id)
        # counts as tags: one-point metrics would be a chart section of zeros in the UI
        assert logged.data.tags["data_checks.warnings"] == "2" and logged.data.tags["data_checks.val_failed"] == "1"
        assert not logged.data.metrics
        names = {a.path for a in client.list_artifacts(run.info.run_id, "data_checks")}
        assert names == {"data_checks/validation.json", "data_checks/data_docs"}
        assert {a.path for a in client.list_artifacts(run.info.run_id, "data_checks/data_docs")} == {
            "data_checks/data_docs/index.html", "data_checks/data_docs/validations"}
    finally:
        mlflow.set_tracking_uri(None)


def _git(folder, *args):
    import subprocess

    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)


def test_pipeline_outputs_do_not_make_the_code_dirty(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages:\n  train:\n    cmd: x\n    outs: [models]\n"
                                       "    metrics: [reports/train.json: {cache: false}]\n    plots: [eval/a.csv]\n")
    (tmp_path / "reports").mkdir()
    (tmp_path / "eval").mkdir()
    for name in ("dvc.lock", "reports/train.json", "eval/a.csv", "code.py"):
        (tmp_path / name).write_text("0\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "x", "--allow-empty")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "files")
    for name in ("dvc.lock", "reports/train.json", "eval/a.csv"):  # what `dvc repro` rewrites
        (tmp_path / name).write_text("1\n")
    state = git_state(tmp_path)
    assert state["git_dirty"] == "false" and state["mlflow.source.git.commit"] == state["git_commit"] != ""
    (tmp_path / "code.py").write_text("1\n")
    assert git_state(tmp_path)["git_dirty"] == "true"


def test_committed_text_is_the_file_at_head(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("train: {width: 16}\n")
    assert committed_text(params) is None  # not a checkout
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "params.yaml")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "params")
    params.write_text("train: {width: 32}\n")
    assert committed_text(params) == "train: {width: 16}\n"
