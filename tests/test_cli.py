"""The `mtt` command: help, early param errors, a real tiny run."""

from __future__ import annotations

import subprocess
import sys

from conftest import read_events

from mtt.cli import build_parser, main


def test_help_lists_the_stages(capsys):
    parser = build_parser()
    help_text = parser.format_help()
    assert "simulate" in help_text


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
