"""Comparing runs in the MLflow UI as a physicist does, in a real headless Chromium.

Three small training runs that differ in one param each (one by -S, one by editing params.yaml, one as a DVC
experiment would), the UI as `mtt ui` starts it (one worker, no job runner), and Debian's Chromium driven by
Playwright: the runs table names each run after its differing param and shows the data digest, the run page
opens with the per-epoch curves (val RMSE in GeV among them), the compare view lists the three runs.
Screenshots are kept in test-artifacts/ui/ (or $MTT_TEST_ARTIFACTS).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from mtt import cli
from mtt.stages.compare.tracking import log_study
from mtt.tools.store import store

pytestmark = [pytest.mark.integration, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: what the probe of this machine kind found Chromium needs as root on a closed network
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: the three runs: how each differs from the committed params.yaml, and the name the UI must show
RUNS = {"learning_rate=0.01": "an -S override", "width=24": "params.yaml edited", "clear-mica: batch_size=128":
        "a DVC experiment"}


#: the part of the (tall) page a screenshot keeps
TOP = {"x": 0, "y": 0, "width": 1600, "height": 900}


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True,
                   capture_output=True)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (dvc.yaml, MLproject, a committed small params.yaml) with its own SQLite store."""
    folder = tmp_path / "mtt"
    folder.mkdir()
    for name in ("dvc.yaml", "MLproject"):
        shutil.copy2(REPO / name, folder / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update(epochs=3, width=16, depth=1, batch_size=64, registered_model="")
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _git(folder, "init", "-q")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-qm", "project")
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    return folder


def _train(project: Path, prepared: Path, *overrides: str) -> None:
    args = ["train", "--params", str(project / "params.yaml"), "--prepared", str(prepared), "--reference",
            str(prepared.parent / "reference"), "--model", str(project / "models"), "--metrics", "", "--history",
            "", "--checkpoints", "", "--validation", "", "--docs", ""]
    for override in overrides:
        args += ["-S", override]
    assert cli.main(args) == 0


def _three_runs(project: Path, prepared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _train(project, prepared, "learning_rate=0.01")
    committed = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(committed.replace("width: 16", "width: 24", 1))
    _train(project, prepared)
    (project / "params.yaml").write_text(committed)
    with monkeypatch.context() as patch:
        patch.setenv("DVC_EXP_NAME", "clear-mica")  # what `dvc exp run` sets for its stages
        _train(project, prepared, "batch_size=128")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ui(project: Path):
    """The UI server as `mtt ui` runs it; its base URL."""
    port = _free_port()
    command = store.server_command(os.environ["MLFLOW_TRACKING_URI"], "127.0.0.1", port)
    server = subprocess.Popen(command, env={**os.environ, **store.UI_ENVIRONMENT}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the MLflow UI did not start ({' '.join(command)})")
                time.sleep(0.5)
        yield base, server
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


@pytest.fixture
def screenshots() -> Path:
    folder = Path(os.environ.get("MTT_TEST_ARTIFACTS", REPO / "test-artifacts")) / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _section_order(text: str) -> list[str]:
    """Section titles of the run page's metric tab, in page order: each title line is followed by '(N)'."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [lines[i - 1] for i in range(1, len(lines)) if lines[i].startswith("(") and lines[i].endswith(")")
            and lines[i][1:-1].isdigit()]


def test_runs_compare_in_the_ui(project, small_prepared, monkeypatch, ui, screenshots):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser` (scripts/setup-browser.sh) first")
    uri = os.environ["MLFLOW_TRACKING_URI"]
    _three_runs(project, small_prepared, monkeypatch)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("mtt").experiment_id
    runs = {run.info.run_name: run for run in client.search_runs([experiment])}
    assert set(runs) == set(RUNS)  # each named after what differs from the committed params.yaml
    assert runs["clear-mica: batch_size=128"].data.tags["dvc.exp_name"] == "clear-mica"
    digest = runs["width=24"].data.tags["data.train_sha256"][:16]
    base, _ = ui

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 2400})
        try:
            # the runs table, at the URL `mtt ui` prints
            page.goto(store.runs_url(base, experiment))
            for name in RUNS:
                page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
            page.get_by_text(f"prepared/train ({digest[:8]}", exact=False).first.wait_for(timeout=30_000)
            page.screenshot(path=str(screenshots / "runs.png"), clip=TOP)

            # one run's metrics: the per-epoch physics curves are the first section, val RMSE in GeV among them
            run_id = runs["width=24"].info.run_id
            page.goto(f"{base}/#/experiments/{experiment}/runs/{run_id}/model-metrics?workflowType=machine_learning")
            page.get_by_text("epoch/val_rmse_gev", exact=False).first.wait_for(timeout=60_000)
            text = page.inner_text("body")
            sections = _section_order(text)
            assert sections[:3] == ["epoch", "final", "watch"], sections  # the diagnostics after the physics
            assert text.index("epoch/val_rmse_gev") < text.index(f"\n{sections[1]}\n"), sections
            page.screenshot(path=str(screenshots / "run_metrics.png"), clip=TOP)

            # the compare view of the three runs
            ids = json.dumps([run.info.run_id for run in runs.values()]).replace(" ", "")
            page.goto(f'{base}/#/compare-runs?runs={ids}&experiments=["{experiment}"]')
            page.get_by_text("Comparing 3 Runs", exact=False).first.wait_for(timeout=60_000)
            compared = page.inner_text("body")
            assert all(name in compared for name in RUNS)
            page.screenshot(path=str(screenshots / "compare.png"), full_page=True)

            # the compare stage gathers the runs under one parent run, which leads the runs table
            (project / "comparison").mkdir()
            (project / "comparison" / "comparison.md").write_text("| configuration |\n|---|\n")
            parent = log_study({name: run.info.run_id for name, run in runs.items()}, {}, {}, "test",
                               "the comparison", project / "comparison", [])
            assert {client.get_run(r.info.run_id).data.tags["mlflow.parentRunId"] for r in runs.values()} == {parent}
            page.goto(store.runs_url(base, experiment))
            page.get_by_text(f"study {digest[:8]}", exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=str(screenshots / "runs_with_parent.png"), clip=TOP)
        finally:
            browser.close()
