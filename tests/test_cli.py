"""The `mtt` command: help, early param errors, a real tiny run."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import read_events

from mtt.cli import build_parser, discover, main
from mtt.core.params import PathsParams

PATHS_KEYS = list(PathsParams.model_fields)


def test_help_lists_the_stages(capsys):
    parser = build_parser(discover())
    help_text = parser.format_help()
    assert "simulate" in help_text and "prepare" in help_text and "validate" in help_text


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "mtt", "simulate", "--help"], capture_output=True, text=True,
                            check=True)
    assert "--out" in result.stdout and "-S KEY=VALUE" in result.stdout


def test_bad_param_exits_2_naming_the_key(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("simulate:\n  n_events: -3\n")
    assert main(["simulate", "--params", str(params), "--out", str(tmp_path / "raw")]) == 2
    err = capsys.readouterr().err
    assert "mtt simulate: error:" in err and "simulate.n_events: Input should be greater than 0" in err
    assert not (tmp_path / "raw").exists()


def test_simulate_subcommand_runs(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("simulate:\n  n_events: 40\n  workers: 1\n  progress: false\n")
    assert main(["simulate", "--params", str(params), "--out", str(tmp_path / "raw"), "-S", "seed=3"]) == 0
    assert "simulate: 40 events in 1 file(s)" in capsys.readouterr().out
    assert len(read_events(tmp_path / "raw")) == 40


def test_prepare_subcommand_runs_after_simulate(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("simulate:\n  n_events: 300\n  workers: 1\n  progress: false\n")
    assert main(["simulate", "--params", str(params), "--out", str(tmp_path / "raw")]) == 0
    assert main(["prepare", "--params", str(params), "--input", str(tmp_path / "raw"), "--out",
                 str(tmp_path / "prepared"), "--metrics", str(tmp_path / "cutflow.json"),
                 "-S", "selection.n_btag_min=0"]) == 0
    out = capsys.readouterr().out
    assert "prepare: 300 events read" in out and "two_leptons" in out
    assert sorted(p.name for p in (tmp_path / "prepared").iterdir()) == [".mtt-output.json", "test.parquet",
                                                                        "train.parquet", "val.parquet"]


def test_prepare_bad_input_exits_2(tmp_path, capsys):
    (tmp_path / "x.root").write_text("nope")
    assert main(["prepare", "--input", str(tmp_path / "x.root"), "--out", str(tmp_path / "out"), "--params",
                 str(tmp_path / "p.yaml")]) == 2
    assert "params file not found" in capsys.readouterr().err
    (tmp_path / "p.yaml").write_text("{}\n")
    assert main(["prepare", "--input", str(tmp_path / "x.root"), "--out", str(tmp_path / "out"), "--params",
                 str(tmp_path / "p.yaml"), "--metrics", str(tmp_path / "cutflow.json")]) == 2
    assert "x.root: not a readable ROOT file" in capsys.readouterr().err


@pytest.mark.slow
def test_validate_exits_1_on_a_failed_check_and_2_on_missing_input(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("simulate:\n  n_events: 1500\n  workers: 1\n  progress: false\n")
    assert main(["simulate", "--params", str(params), "--out", str(tmp_path / "raw")]) == 0
    assert main(["prepare", "--params", str(params), "--input", str(tmp_path / "raw"), "--out",
                 str(tmp_path / "prepared"), "--metrics", str(tmp_path / "cutflow.json")]) == 0
    common = ["--params", str(params), "--reference", str(tmp_path / "reference"), "--summary",
              str(tmp_path / "validation.json"), "--docs", str(tmp_path / "docs")]
    assert main(["validate", "--prepared", str(tmp_path / "prepared"), *common]) == 0
    assert "validate: " in capsys.readouterr().out
    # the same data read as if it were in MeV: the units check stops it
    mev = tmp_path / "mev.parquet"
    import pandas as pd

    frame = pd.read_parquet(tmp_path / "prepared" / "val.parquet")
    frame[["lplus_pt", "lminus_pt", "b1_pt", "b2_pt"]] *= 1000
    frame.to_parquet(mev)
    assert main(["validate", "--data", str(mev), *common]) == 1
    assert "units: lplus_pt" in capsys.readouterr().err
    assert main(["validate", "--prepared", str(tmp_path / "nothing"), *common]) == 2
    assert "prepared split missing" in capsys.readouterr().err


def test_path_options_default_to_the_params_files_paths(tmp_path, capsys, monkeypatch):
    """`mtt simulate` alone writes where params.yaml's paths.raw says (what dvc.yaml passes too)."""
    monkeypatch.chdir(tmp_path)
    paths = "".join(f"  {key}: out/{key}\n" for key in PATHS_KEYS)
    (tmp_path / "params.yaml").write_text(f"simulate:\n  n_events: 20\n  workers: 1\n  progress: false\n"
                                          f"paths:\n{paths}")
    assert main(["simulate"]) == 0
    assert len(read_events(tmp_path / "out" / "raw")) == 20


def test_a_missing_path_without_a_paths_section_is_named(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("simulate:\n  n_events: 20\n")
    assert main(["simulate", "--params", str(params)]) == 2
    assert "--out: not given, and" in capsys.readouterr().err


def test_every_stage_and_tool_declares_its_own_command():
    """The command line knows no stage: every command comes from a stage's or a tool's command module."""
    commands = discover()
    assert list(commands)[:7] == ["simulate", "prepare", "validate", "train", "evaluate", "compare", "predict"]
    assert {c.run.__module__.rsplit(".", 1)[0] for c in commands.values()} <= {
        f"mtt.stages.{s}" for s in ("simulate", "prepare", "validate", "train", "evaluate", "compare", "predict")} | {
        f"mtt.tools.{t}" for t in ("sweep", "store", "runs", "promote", "report", "baseline", "studydoc")}
