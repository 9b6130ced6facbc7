"""DVC really runs and versions the pipeline: repro, no-op repro, push to a remote, pull into a fresh clone."""

from __future__ import annotations

import json

import pytest
import yaml
from integration.conftest import run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]  # four configurations trained and evaluated


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_repro_then_nothing_to_do_then_push_and_pull(repo_copy, tool_env, tmp_path):
    first = run(["dvc", "repro"], repo_copy, tool_env)
    assert "Running stage 'simulate'" in first.stdout
    raw = repo_copy / "data" / "raw"
    produced = _files(raw)
    reference = _files(repo_copy / "data" / "reference")
    assert sorted(produced) == [".mtt-output.json", "events_00000.root", "events_00001.root", "simulation.json"]
    assert json.loads(produced["simulation.json"])["n_events"] == 1500

    assert "Running stage 'prepare'" in first.stdout
    assert sorted(p.name for p in (repo_copy / "data" / "prepared").iterdir()) == [
        ".mtt-output.json", "test.parquet", "train.parquet", "val.parquet"]
    assert "Running stage 'validate'" in first.stdout
    assert sorted(p.name for p in (repo_copy / "data" / "reference").iterdir()) == [
        ".mtt-output.json", "profile.json", "scalers.npz", "train_outside.json"]
    assert (repo_copy / "reports" / "data_docs" / "index.html").exists()
    configs = list(yaml.safe_load((repo_copy / "params.yaml").read_text())["study"]["configs"])
    for config in configs:  # one train and one evaluate per configuration of the study
        assert f"Running stage 'train@{config}'" in first.stdout
        assert f"Running stage 'evaluate@{config}'" in first.stdout
        assert sorted(p.name for p in (repo_copy / "models" / config).iterdir()) == [
            ".mtt-output.json", "model.json", "model.keras", "profile.json", "scaler.npz"]
        assert (repo_copy / "study" / config / "eval" / "plots" / "spectrum.png").stat().st_size > 5000
    eval_dir = repo_copy / "study" / "default" / "eval"
    # the Z' branch: simulated and prepared beside the SM sample, injected by evaluate
    assert "Running stage 'simulate_zprime'" in first.stdout and "Running stage 'prepare_zprime'" in first.stdout
    zprime_manifest = json.loads((repo_copy / "data" / "raw_zprime" / "simulation.json").read_text())
    assert zprime_manifest["params"]["process"] == "zprime" and zprime_manifest["n_events"] == 1500
    assert (eval_dir / "plots" / "zprime_injected.png").stat().st_size > 5000
    assert "model" in (eval_dir / "zprime.csv").read_text()
    # compare: the table of every configuration, and the headline as the DVC metrics
    assert "Running stage 'compare'" in first.stdout
    table = (repo_copy / "reports" / "comparison" / "comparison.md").read_text()
    assert all(f"| {config} |" in table or f"| **{config}** |" in table for config in configs)
    metrics = run(["dvc", "metrics", "show"], repo_copy, tool_env).stdout
    assert "reports/headline.json" in metrics and "default.model.resolution_ratio" in metrics
    assert "cutflow" not in metrics and "best_val_loss" not in metrics  # reports, not metrics
    assert "critical_failures" not in metrics and "reports/validation.json" not in metrics
    columns = run(["dvc", "exp", "show", "--csv"], repo_copy, tool_env).stdout.splitlines()[0].split(",")
    headline = [i for i, name in enumerate(columns) if name.endswith(("resolution_ratio", "width_ratio"))]
    assert headline and max(headline) < 20, columns[:25]  # `dvc exp show` leads with the headline
    plots = run(["dvc", "plots", "show", "--json"], repo_copy, tool_env).stdout
    assert "reports/comparison/spectra.png" in plots and "study/default/history.csv" in plots

    second = run(["dvc", "repro"], repo_copy, tool_env)
    assert "Running stage" not in second.stdout
    assert "didn't change" in second.stdout or "up to date" in second.stdout
    assert _files(raw) == produced

    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "local", str(remote)], repo_copy, tool_env)
    run(["dvc", "push"], repo_copy, tool_env)
    run(["git", "add", "-A"], repo_copy, tool_env)
    run(["git", "commit", "-qm", "pipeline run"], repo_copy, tool_env)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo_copy), str(clone)], tmp_path, tool_env)
    assert not (clone / "data" / "raw").exists()
    run(["dvc", "pull"], clone, tool_env)
    assert _files(clone / "data" / "raw") == produced  # byte-identical, without simulating again
    assert _files(clone / "data" / "reference") == reference
    status = run(["dvc", "status"], clone, tool_env)
    assert "up to date" in status.stdout
