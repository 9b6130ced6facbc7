"""The three floors hold: stages import the ground floor and libraries, never each other (import-linter).

The contract lives in pyproject.toml ([tool.importlinter]); `lint-imports` checks it on the tree, and on a
copy of the tree with a deliberate violation it must fail and name the offending import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(root: Path) -> subprocess.CompletedProcess:
    """lint-imports with root's pyproject.toml, importing mtt from root/src (not the installed one)."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_the_contract():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout


def test_a_stage_importing_another_stage_breaks_it(tmp_path):
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    stage = tmp_path / "src" / "mtt" / "stages" / "evaluate" / "stage.py"
    stage.write_text(stage.read_text() + "\n\ndef _model_file() -> str:\n    from mtt.stages.train import stage\n\n"
                                          "    return stage.__name__\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "mtt.stages.evaluate.stage -> mtt.stages.train" in result.stdout


#: the one module allowed to be long: the analytic neutrino solutions and their vectorised solver
LONG_ON_PURPOSE = {"mtt/core/reco/ellipse.py"}


def test_modules_stay_small_and_the_command_line_thin():
    """No module of src/ over 400 lines (the ellipse solver excepted); cli.py, which knows no stage, under 100."""
    src = REPO / "src"
    sizes = {p.relative_to(src).as_posix(): len(p.read_text().splitlines()) for p in src.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 400 and name not in LONG_ON_PURPOSE} == {}
    assert sizes["mtt/cli.py"] < 100
