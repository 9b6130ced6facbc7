"""A study folder as train and evaluate write it, with figures chosen by hand (the compare stage's input contract)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

EDGES = np.array([300.0, 400.0, 500.0, 700.0])
TRUTH = np.array([100, 300, 200])
ELLIPSE = {"resolution": 0.2, "bias": 0.01, "width_ratio": 1.6, "wasserstein": 60.0, "chi2_ndf": 9.0,
           "within_20pct": 0.7, "n_events": 600}


def figures(resolution: float, mdn: bool = False) -> dict[str, Any]:
    """evaluate's metrics.json of one configuration: the model, the baselines, the unfolding, the Z' fit."""
    out: dict[str, Any] = {
        "n_events": 600, "head": "mdn" if mdn else "point",
        "model": {"resolution": resolution, "bias": 0.04, "width_ratio": 0.75, "wasserstein": 30.0, "chi2_ndf": 30.0,
                  "within_20pct": 0.8, "crps": 70.0},
        "baseline_ellipse": ELLIPSE, "baseline_visible": {**ELLIPSE, "resolution": 0.25},
        "model_unfolded": {"width_ratio": 0.98, "wasserstein": 5.0, "chi2_ndf": 1.5},
        "ellipse_unfolded": {"width_ratio": 0.93, "wasserstein": 7.0, "chi2_ndf": 1.7},
        "zprime": {"model": {"position_shift": -0.1, "yield_ratio": 0.75},
                   "baseline_ellipse": {"position_shift": -0.03, "yield_ratio": 0.5}},
    }
    if mdn:
        out["mdn_window"] = {**out["model"], "resolution": resolution * 0.98}
        out["mdn_expected"] = {"width_ratio": 0.94, "wasserstein": 8.0, "chi2_ndf": 2.8}
        out["mdn"] = {"crps": 47.5, "coverage_68": 0.63}
    return out


def write_config(study: Path, config: str, resolution: float, run_id: str = "", mdn: bool = False,
                 wall_time_s: float = 10.0) -> None:
    """One configuration's train.json, history.csv and eval/ (metrics.json and the CSV tables)."""
    folder = study / config / "eval"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(figures(resolution, mdn)))
    (study / config / "train.json").write_text(json.dumps({"run_id": run_id, "wall_time_s": wall_time_s}))
    pd.DataFrame({"epoch": [0, 1, 2], "val_rmse_gev": [120.0, 110.0, 105.0]}).to_csv(study / config / "history.csv")
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    spectrum = {"m_tt": centres, "truth": TRUTH, "model": TRUTH * 0.9, "baseline_ellipse": TRUTH * 1.1}
    per_bin = {"m_tt_low": EDGES[:-1], "m_tt_high": EDGES[1:], "m_tt": centres, "n_events": TRUTH}
    for name in ("model", "baseline_ellipse", *(["mdn_window"] if mdn else [])):
        per_bin.update({f"{name}_bias": [0.1, 0.0, -0.1], f"{name}_resolution": [0.1, 0.12, 0.15]})
    if mdn:
        spectrum["mdn_expected"] = TRUTH * 1.0
    unfolded = {"m_tt_low": EDGES[:-1], "m_tt_high": EDGES[1:], "truth": TRUTH}
    for name in ("model_unfolded", "ellipse_unfolded"):
        unfolded.update({name: TRUTH * 1.02, f"{name}_stat_err": np.sqrt(TRUTH), f"{name}_sys_err": np.sqrt(TRUTH),
                         f"{name}_relative_uncertainty": [0.1, 0.08, 0.09]})
    # equal-width spectrum bins, as evaluate writes them
    pd.DataFrame(spectrum).assign(m_tt=[350.0, 450.0, 550.0]).to_csv(folder / "spectrum.csv", index=False)
    pd.DataFrame(per_bin).to_csv(folder / "per_bin.csv", index=False)
    pd.DataFrame(unfolded).to_csv(folder / "unfolded.csv", index=False)
