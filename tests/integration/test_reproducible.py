"""A fresh clone reproduces the committed baseline: `dvc repro validate` at the committed params writes data,
reference and reports with the committed dvc.lock hashes, and `mtt baseline --check` passes."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from integration.conftest import REPO, run

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]  # a 200k-event simulate

#: the stages whose outputs depend on the events alone (no training): byte-identical on any x86-64 CPU with AVX2
#: and FMA, the mtt command capping the libraries there (mtt.core.cpu)
DATA_STAGES = ("simulate", "prepare", "validate")


def _outs(lock: dict, stage: str) -> list[tuple[str, str]]:
    """(path, md5) of a stage's outputs in a dvc.lock."""
    return [(out["path"], out["md5"]) for out in lock["stages"][stage]["outs"]]


def test_a_fresh_clone_reproduces_the_committed_data_stages(tmp_path, tool_env):
    clone = tmp_path / "clone"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, clone / name)
    run(["git", "init", "-q"], clone, tool_env)
    run(["git", "add", "-A"], clone, tool_env)
    run(["git", "commit", "-qm", "clone"], clone, tool_env)
    committed = yaml.safe_load((clone / "dvc.lock").read_text())

    run(["dvc", "repro", "validate"], clone, tool_env)
    fresh = yaml.safe_load((clone / "dvc.lock").read_text())
    for stage in DATA_STAGES:
        assert _outs(fresh, stage) == _outs(committed, stage), stage
    status = run(["git", "status", "--porcelain"], clone, tool_env).stdout
    assert status.strip() == "", status  # reports/cutflow.json, validation.json and dvc.lock as committed
    run(["mtt", "baseline", "--check"], clone, tool_env)  # exits 1 naming any figure that moved

    # an edit to the train params module re-runs train, never the data stages upstream
    train_params = clone / "src" / "mtt" / "stages" / "train" / "params.py"
    train_params.write_text(train_params.read_text() + "\n# an edit\n")
    upstream = run(["dvc", "status", *DATA_STAGES], clone, tool_env).stdout
    assert "up to date" in upstream, upstream
    assert "src/mtt/stages/train" in run(["dvc", "status", "train"], clone, tool_env).stdout
