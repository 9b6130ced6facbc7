"""The `mtt` command: help, early param errors, a real tiny run."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import read_events

from mtt.cli import build_parser, main


def test_help_lists_the_stages(capsys):
    parser = build_parser()
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
                 str(tmp_path / "p.yaml")]) == 2
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
