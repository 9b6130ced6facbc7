"""`mtt sweep` and `mtt tune` on the command line."""

from __future__ import annotations

from pathlib import Path

from mtt.cli import build_parser, discover
from mtt.core.command import fill_paths
from mtt.tools.params import load_params

PARAMS = Path(__file__).resolve().parents[3] / "params.yaml"


def test_the_command_line_has_sweep_and_tune():
    parser = build_parser(discover())
    assert "sweep" in parser.format_help() and "tune" in parser.format_help()
    args = parser.parse_args(["sweep", "-S", "n_train=1e4,3e4", "-S", "epochs=2", "--out", "x"])
    fill_paths(args, load_params(PARAMS).paths)  # as `mtt` does: a path left out is params.yaml's paths.<key>
    assert args.overrides == ["n_train=1e4,3e4", "epochs=2"] and args.prepared == "data/prepared"
    args = parser.parse_args(["tune", "-S", "n_trials=3", "-T", "epochs=2"])
    assert args.overrides == ["n_trials=3"] and args.train_overrides == ["epochs=2"] and args.out is None
