"""Resolution, bias and spectrum-width figures of m_tt predictions (pure numpy)."""

from __future__ import annotations

import numpy as np


def relative_residuals(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(pred - true) / true per event."""
    return (np.asarray(pred, dtype=np.float64) - true) / np.asarray(true, dtype=np.float64)


def resolution(pred: np.ndarray, true: np.ndarray) -> float:
    """Half-width of the central 68% interval of (pred - true) / true: robust against tails."""
    low, high = np.quantile(relative_residuals(pred, true), [0.16, 0.84])
    return float((high - low) / 2)


def median_bias(pred: np.ndarray, true: np.ndarray) -> float:
    """Median of (pred - true) / true."""
    return float(np.median(relative_residuals(pred, true)))


def width_ratio(pred: np.ndarray, true: np.ndarray) -> float:
    """std(pred) / std(true): below 1 when the predicted spectrum shrinks toward the peak (MSE regression)."""
    return float(np.std(pred) / np.std(true))
