"""The overlay figures: a fixed colour per configuration, drawn from evaluate's tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from stages.compare.study_files import write_config

from mtt.stages.compare import figures


def test_a_configuration_keeps_its_colour_by_its_place() -> None:
    colours = figures.config_colours(["seed_baseline", "default", "hybrid_mdn"])
    assert colours == {"seed_baseline": "tab:blue", "default": "tab:orange", "hybrid_mdn": "tab:green"}
    assert "tab:red" not in figures.PALETTE  # the ellipse method's colour stays its own


def test_every_overlay_is_drawn(tmp_path: Path) -> None:
    study = tmp_path / "study"
    write_config(study, "a", 0.15)
    write_config(study, "b", 0.12, mdn=True)
    tables = {c: pd.read_csv(study / c / "eval" / "spectrum.csv") for c in ("a", "b")}
    figures.spectra(tables, ["model", "mdn_window", "mdn_expected"], "baseline_ellipse", tmp_path / "spectra.png")
    per_bin = {c: pd.read_csv(study / c / "eval" / "per_bin.csv") for c in ("a", "b")}
    figures.bias_resolution(per_bin, ["model", "mdn_window"], "baseline_ellipse", tmp_path / "bias.png")
    unfolded = {c: pd.read_csv(study / c / "eval" / "unfolded.csv") for c in ("a", "b")}
    figures.unfolded(unfolded, tmp_path / "unfolded.png")
    figures.loss_curves({c: pd.read_csv(study / c / "history.csv") for c in ("a", "b")}, tmp_path / "loss.png")
    assert all((tmp_path / n).stat().st_size > 5000 for n in ("spectra.png", "bias.png", "unfolded.png", "loss.png"))
