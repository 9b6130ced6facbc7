"""The train reference profile: per-feature moments, quantiles and an equal-population histogram.

Written by the validate stage as a tracked output; val, test and any new data are compared against it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtt.core.io import write_json

QUANTILE_GRID = np.linspace(0.0, 1.0, 401)


def feature_profile(values: np.ndarray, quantiles: list[float], bins: int) -> dict[str, Any]:
    """n, mean, std, min, max, quantiles and histogram (edges at train quantiles, weights) of one feature."""
    values = np.asarray(values, dtype=np.float64)
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size < 2:  # a constant feature: one bin around its value
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    counts, _ = np.histogram(values, bins=edges)
    centred = values - values.mean()
    variance = float(np.mean(centred**2))
    return {
        "n": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "quantiles": {str(q): float(v) for q, v in zip(quantiles, np.quantile(values, quantiles), strict=True)},
        "kurtosis": float(np.mean(centred**4) / variance**2) if variance > 0 else 3.0,
        #: the inverse CDF on a fine grid, to turn probability tolerances into value ranges
        "quantile_grid": np.quantile(values, QUANTILE_GRID).tolist(),
        "bin_edges": edges.tolist(),
        "bin_weights": (counts / counts.sum()).tolist(),
        **log_moments(values),
    }


def log_moments(values: np.ndarray) -> dict[str, float]:
    """Mean and standard deviation of log(x) for a positive feature (the scale-shift check); empty otherwise."""
    if values.size == 0 or values.min() <= 0:
        return {}
    logged = np.log(values)
    return {"log_mean": float(logged.mean()), "log_std": float(logged.std())}


def build_profile(train: pd.DataFrame, columns: list[str], quantiles: list[float], bins: int) -> dict[str, Any]:
    """The reference profile of `columns` of the train split."""
    return {"columns": list(columns), "n_rows": int(len(train)),
            "features": {c: feature_profile(train[c].to_numpy(), quantiles, bins) for c in columns}}


def save_profile(profile: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the profile as JSON (atomically)."""
    write_json(path, profile, indent=1)


def load_profile(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a profile written by `save_profile`."""
    return json.loads(Path(path).read_text())
