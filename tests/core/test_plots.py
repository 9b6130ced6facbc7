"""Every plot is written as a non-empty PNG, in the mplhep style, without warnings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtt.core import plots
from mtt.core.metrics import per_bin

PNG = b"\x89PNG"


def _is_png(path):
    return path.is_file() and path.stat().st_size > 5000 and path.read_bytes()[:4] == PNG


def test_every_plot_is_a_png(tmp_path):
    rng = np.random.default_rng(0)
    true = rng.gamma(9.0, 60.0, 3000) + 300
    estimates = {"model": 550 + 0.6 * (true - 550), "baseline": true * rng.normal(1, 0.2, true.size)}
    estimates["baseline"][:50] = np.nan  # no solution for some events
    edges = np.linspace(300, 1500, 25)
    plots.spectrum(true, estimates, edges, tmp_path / "spectrum.png")
    plots.response_matrix(estimates["baseline"], true, edges, tmp_path / "response.png", "baseline")
    tables = {name: pd.DataFrame(per_bin(pred, true, edges)) for name, pred in estimates.items()}
    plots.bias_resolution(tables, tmp_path / "bias.png")
    plots.residuals(true, estimates, tmp_path / "residuals.png")
    history = pd.DataFrame({"epoch": [0, 1, 2], "loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.5],
                            "val_width_ratio": [0.5, 0.7, 0.75]})
    plots.loss_curve(history, tmp_path / "loss.png")
    for name in ("spectrum", "response", "bias", "residuals", "loss"):
        assert _is_png(tmp_path / f"{name}.png"), name
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


def test_every_estimator_has_one_colour_of_its_own():
    """The same estimator is the same colour in every figure, and no two estimators share one."""
    from mtt.core.plots import COLOURS, SPARE, colour

    assert len(set(COLOURS.values())) == len(COLOURS) and not set(SPARE) & set(COLOURS.values())
    assert colour("mdn_mean") != colour("model") and colour("mdn_expected") != colour("baseline_ellipse")
    assert colour("seed_baseline") == colour("seed_baseline") in SPARE
