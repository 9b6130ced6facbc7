"""The scaler training uses: fitted on train only, saved with the reference, and checked.

Three mistakes are caught: a scaler fitted on the wrong split (its fitted state differs from a refit on
train), features scaled twice or not scaled (transformed values leave the range the scaler maps train to).
"""

from __future__ import annotations

import os
from typing import Any

import joblib
import numpy as np
from sklearn.preprocessing import MinMaxScaler, QuantileTransformer, RobustScaler, StandardScaler

from mtt.config import ScalingParams
from mtt.io import atomic_file

#: the fitted attributes that identify a scaler's training data
FITTED_STATE = {
    "minmax": ("data_min_", "data_max_"),
    "standard": ("mean_", "scale_"),
    "robust": ("center_", "scale_"),
    "quantile": ("quantiles_",),
}


def make_scaler(kind: str, n_rows: int) -> Any:
    """An unfitted scikit-learn scaler of the given kind."""
    if kind == "minmax":
        return MinMaxScaler()
    if kind == "standard":
        return StandardScaler()
    if kind == "robust":
        return RobustScaler()
    if kind == "quantile":
        return QuantileTransformer(n_quantiles=min(1000, max(n_rows, 10)), subsample=10**9, random_state=0)
    raise ValueError(f"validate.scaler: unknown scaler {kind!r}; allowed: {', '.join(FITTED_STATE)}")


def fit_scaler(kind: str, features: np.ndarray) -> Any:
    """Fit a scaler of `kind` on (train) features."""
    return make_scaler(kind, len(features)).fit(features)


def save_scaler(scaler: Any, kind: str, columns: list[str], path: str | os.PathLike[str]) -> None:
    """Save the fitted scaler with its kind and column order (joblib, atomically)."""
    with atomic_file(path) as tmp:
        joblib.dump({"kind": kind, "columns": list(columns), "scaler": scaler}, tmp)


def load_scaler(path: str | os.PathLike[str]) -> dict[str, Any]:
    """{"kind", "columns", "scaler"} as saved by `save_scaler`."""
    return joblib.load(path)


def fitted_on(scaler: Any, kind: str, train_features: np.ndarray) -> tuple[bool, float]:
    """Whether `scaler` was fitted on exactly these train features: refit and compare the fitted state."""
    reference = fit_scaler(kind, train_features)
    worst = 0.0
    for attribute in FITTED_STATE[kind]:
        ours, theirs = np.asarray(getattr(reference, attribute)), np.asarray(getattr(scaler, attribute))
        if ours.shape != theirs.shape:
            return False, float("inf")
        scale = np.maximum(np.abs(ours), 1e-12)
        worst = max(worst, float(np.max(np.abs(ours - theirs) / scale)))
    return worst < 1e-6, worst


def allowed_range(kind: str, params: ScalingParams, n_train: int | None = None,
                  n: int | None = None) -> tuple[float, float, float]:
    """(low, high, mostly): the range transformed values must stay in, for all but a fraction of them.

    With sample sizes, the fraction allows for statistics: a min-max fit on n_train events leaves 2/(n_train+1)
    of new events outside [0, 1] on average, and an n-event sample scatters by 5 binomial standard errors.
    """
    if kind in ("minmax", "quantile"):
        low, high, fraction = 0.0, 1.0, params.minmax_outside_max
        if n_train:
            fraction = max(fraction, 2.0 / (n_train + 1))
    else:
        low, high, fraction = -params.z_max, params.z_max, params.z_outside_max
    if n:
        fraction += 5.0 * np.sqrt(fraction * (1 - fraction) / n) + 1.0 / n
    return low, high, 1.0 - min(fraction, 1.0)


def out_of_range_fractions(scaled: np.ndarray, kind: str, params: ScalingParams) -> np.ndarray:
    """Per column, the fraction of transformed values outside the allowed range."""
    low, high, _ = allowed_range(kind, params)
    tolerance = 1e-6 * (high - low)
    return np.mean((scaled < low - tolerance) | (scaled > high + tolerance), axis=0)


def check_scaled_inputs(scaled: np.ndarray, columns: list[str], kind: str, params: ScalingParams) -> list[str]:
    """Problems with features that should already be scaled (not scaled, or scaled twice); empty if fine."""
    low, high, mostly = allowed_range(kind, params)
    fractions = out_of_range_fractions(scaled, kind, params)
    return [f"{column}: {fraction:.1%} of values outside [{low:g}, {high:g}] after {kind} scaling "
            f"(allowed {1 - mostly:.1%}): not scaled, or scaled twice?"
            for column, fraction in zip(columns, fractions, strict=True) if fraction > 1 - mostly]
