"""`mtt baseline --check`: hand-made metrics files committed in a temporary git repository, then changed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mtt.cli import main as cli_main
from mtt.core.errors import ValidationFailed
from mtt.tools.baseline.baseline import (
    EXACT,
    IGNORED,
    TOLERANCE,
    BaselineError,
    Rules,
    checked_files,
    compare,
    figures,
    main,
    metrics_files,
)

ROOT = Path(__file__).resolve().parents[2]

DVC_YAML = """\
stages:
  prepare:
    cmd: mtt prepare
    metrics:
      - reports/cutflow.json:
          cache: false
  train:
    cmd: mtt train
    metrics:
      - reports/train_metrics.json:
          cache: false
"""
RULES = """\
exact:
  - "reports/cutflow.json:*"
ignore:
  - "reports/train_metrics.json:wall_time_s"
tolerance:
  "reports/train_metrics.json:val_resolution": 0.01
  "reports/train_metrics.json:*bias": 0.5
default: null
"""
CUTFLOW = {"cutflow": {"all": {"events": 2000}, "btag": {"events": 346, "efficiency": 0.173}},
           "splits": {"train": 242, "val": 52, "test": 52}}
TRAIN = {"val_resolution": 0.1531, "val_bias": 0.04, "wall_time_s": 80.0}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def _write(repo: Path, cutflow: dict, train: dict) -> None:
    (repo / "reports").mkdir(exist_ok=True)
    (repo / "reports" / "cutflow.json").write_text(json.dumps(cutflow))
    (repo / "reports" / "train_metrics.json").write_text(json.dumps(train))


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with dvc.yaml, baseline.yaml and two metrics files committed; the current folder."""
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "baseline.yaml").write_text(RULES)
    _write(tmp_path, CUTFLOW, TRAIN)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "baseline")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _failed(repo: Path) -> list[str]:
    return [row.figure for row in compare(repo, Rules.load(repo / "baseline.yaml")) if not row.ok]


def test_an_unchanged_tree_passes_with_every_figure_identical(repo, capsys):
    assert cli_main(["baseline", "--check"]) == 0
    out = capsys.readouterr().out
    assert "8 figures against git HEAD: 8 identical, 0 within tolerance, 0 beyond" in out
    assert "committed" not in out  # no table when nothing differs


def test_a_data_figure_must_be_equal_to_the_last_digit(repo, capsys):
    _write(repo, {**CUTFLOW, "splits": {"train": 242, "val": 52, "test": 53}}, TRAIN)
    assert cli_main(["baseline", "--check"]) == 1
    captured = capsys.readouterr()
    assert "reports/cutflow.json:splits.test" in captured.err and "1 figure(s) moved" in captured.err
    (line,) = [x for x in captured.out.splitlines() if x.startswith("reports/cutflow.json:splits.test")]
    assert line.split()[1:5] == ["52", "53", "exact", "NO"]
    cutflow = json.loads(json.dumps(CUTFLOW))
    cutflow["cutflow"]["btag"]["efficiency"] = 0.173 * (1 + 1e-15)  # float noise is a change for data figures
    _write(repo, cutflow, TRAIN)
    assert _failed(repo) == ["reports/cutflow.json:cutflow.btag.efficiency"]


def test_model_figures_pass_within_their_tolerance_and_fail_beyond(repo, capsys):
    _write(repo, CUTFLOW, {**TRAIN, "val_resolution": 0.1531 * 1.009, "val_bias": 0.059, "wall_time_s": 200.0})
    rows = main()
    out = capsys.readouterr().out
    assert "2 within tolerance, 0 beyond" in out and "wall_time_s" not in out  # ignored: never shown
    assert {r.figure: r.tolerance for r in rows if not r.identical} == {
        "reports/train_metrics.json:val_resolution": 0.01, "reports/train_metrics.json:val_bias": 0.5}
    _write(repo, CUTFLOW, {**TRAIN, "val_resolution": 0.1531 * 1.011, "val_bias": 0.061})
    with pytest.raises(ValidationFailed, match="2 figure.*val_resolution, reports/train_metrics.json:val_bias"):
        main()


def test_the_first_matching_rule_wins_and_unnamed_figures_fail_without_a_default(repo):
    rules = Rules.load(repo / "baseline.yaml")
    assert rules.rule("reports/cutflow.json:splits.val") == (EXACT, 0.0)
    assert rules.rule("reports/train_metrics.json:wall_time_s") == (IGNORED, None)
    assert rules.rule("reports/train_metrics.json:val_bias") == (TOLERANCE, 0.5)
    _write(repo, CUTFLOW, {**TRAIN, "best_epoch": 7})  # a new figure: nothing to compare with
    assert _failed(repo) == []
    _git(repo, "commit", "-qam", "best_epoch")
    _write(repo, CUTFLOW, {**TRAIN, "best_epoch": 8})
    (row,) = [r for r in compare(repo, rules) if not r.ok]
    assert row.figure == "reports/train_metrics.json:best_epoch" and row.note == "no rule in baseline.yaml"
    (repo / "baseline.yaml").write_text(RULES.replace("default: null", "default: 0.2"))
    assert _failed(repo) == []


def test_missing_files_and_figures_fail_by_name(repo):
    (repo / "reports" / "train_metrics.json").unlink()
    (row,) = [r for r in compare(repo, Rules.load(repo / "baseline.yaml")) if not r.ok]
    assert row.figure == "reports/train_metrics.json" and "dvc repro" in row.note
    _write(repo, {"cutflow": CUTFLOW["cutflow"]}, TRAIN)
    assert _failed(repo) == [f"reports/cutflow.json:splits.{s}" for s in ("train", "val", "test")]


def test_lists_are_compared_element_by_element():
    assert figures(json.dumps({"edges": [300.0, 350.0], "n": {"a": 1}}), "m.json") == {
        "m.json:edges.0": 300.0, "m.json:edges.1": 350.0, "m.json:n.a": 1}


def test_outside_git_or_with_bad_rules_it_says_what_to_do(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "baseline.yaml").write_text(RULES)
    _write(tmp_path, CUTFLOW, TRAIN)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above tmp_path either
    with pytest.raises(BaselineError, match="no metrics file is committed at git HEAD"):
        compare(tmp_path, Rules.load(tmp_path / "baseline.yaml"))
    (tmp_path / "baseline.yaml").write_text("tolerance:\n  'x:*': -1\n")
    with pytest.raises(BaselineError, match=r"baseline.yaml: tolerance must map patterns"):
        Rules.load(tmp_path / "baseline.yaml")
    with pytest.raises(BaselineError, match="missing; run from the project's root"):
        Rules.load(tmp_path / "nowhere.yaml")
    (tmp_path / "reports" / "cutflow.json").write_text("{")
    with pytest.raises(BaselineError, match="reports/cutflow.json: not valid JSON"):
        figures((tmp_path / "reports" / "cutflow.json").read_text(), "reports/cutflow.json")


def test_the_projects_rules_name_every_committed_figure():
    """A figure the project's baseline.yaml does not classify would fall to the default: name it instead."""
    rules = Rules.load(ROOT / "baseline.yaml")
    assert rules.default is None
    files = checked_files(ROOT, rules)
    assert metrics_files(ROOT / "dvc.yaml") == ["reports/headline.json"]  # what `dvc exp show` leads with
    assert {"reports/headline.json", "reports/validation.json", "reports/cutflow.json",
            "study/default/eval/metrics.json", "study/hybrid_mdn/train.json"} <= set(files)
    unnamed = [figure for name in files for figure in figures((ROOT / name).read_text(), name)
               if rules.rule(figure) == (TOLERANCE, None)]
    assert unnamed == []
    assert rules.rule("study/hybrid_mdn/eval/metrics.json:baseline_ellipse.resolution") == (EXACT, 0.0)
    assert rules.rule("study/default/eval/metrics.json:model.resolution")[0] == TOLERANCE


def test_files_beyond_the_dvc_metrics_are_checked_too(repo: Path) -> None:
    """baseline.yaml's `files` (globs) adds outputs that are not DVC metrics, e.g. each configuration's figures."""
    (repo / "study" / "a").mkdir(parents=True)
    (repo / "study" / "a" / "train.json").write_text(json.dumps({"val_resolution": 0.2}))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "study")
    (repo / "study" / "a" / "train.json").write_text(json.dumps({"val_resolution": 0.3}))
    (repo / "baseline.yaml").write_text(RULES + "files:\n  - study/*/train.json\n"
                                        "  - reports/cutflow.json\n")
    rules = Rules.load(repo / "baseline.yaml")
    assert checked_files(repo, rules) == ["reports/cutflow.json", "reports/train_metrics.json", "study/a/train.json"]
    moved = [r for r in compare(repo, rules) if r.figure == "study/a/train.json:val_resolution"]
    assert len(moved) == 1 and not moved[0].ok
