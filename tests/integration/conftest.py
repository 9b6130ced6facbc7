"""A throwaway copy of this repository (its tracked and untracked-but-not-ignored files) to run DVC and MLflow in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output if it fails."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def tool_env(tmp_path) -> dict[str, str]:
    """Environment with this venv's tools first on PATH and a git identity."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.invalid", GIT_COMMITTER_NAME="test",
               GIT_COMMITTER_EMAIL="test@example.invalid", MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db")
    env.pop("MLFLOW_RUN_ID", None)
    return env


@pytest.fixture
def repo_copy(tmp_path, tool_env) -> Path:
    """A git repository holding this project's files, with a tiny `simulate` config."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    dest = tmp_path / "mtt"
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["simulate"].update(n_events=1500, events_per_chunk=750, workers=1, progress=False)
    params["simulate"]["zprime"].update(n_events=1500)
    params["train"].update(epochs=2, width=16, depth=2)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dest, tool_env)
    run(["git", "add", "-A"], dest, tool_env)
    run(["git", "commit", "-qm", "copy"], dest, tool_env)
    return dest
