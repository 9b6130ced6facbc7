"""How far scaled val, test or new data may leave the range the reference scaler maps train into.

Two mistakes are caught this way: features not scaled, and features scaled twice (transformed values leave
the range); a scaler fitted on the wrong split is caught by `reference.scaler_check`.
"""

from __future__ import annotations

import numpy as np

from mtt.stages.validate.params import ScalingParams


def allowed_range(kind: str, params: ScalingParams, n_train: int | None = None,
                  n: int | None = None, train_outside: float = 0.0) -> tuple[float, float, float]:
    """(low, high, mostly): the range transformed values must stay in, for all but a fraction of them.

    With sample sizes, the fraction allows for statistics: a min-max fit on n_train events leaves 2/(n_train+1)
    of new events outside [0, 1] on average, and an n-event sample scatters by 5 binomial standard errors.
    A feature whose train values already leave the range (|z| > z_max in a long pT tail) may leave it as
    often as train does (`train_outside`), plus one train event's worth: a rate measured on n_train events is
    known to about 1/n_train (a heavy tail that 180 train events never reached is not a zero rate).
    """
    kind = kind.removesuffix("+log")
    if kind in ("minmax", "quantile"):
        low, high, fraction = 0.0, 1.0, params.minmax_outside_max
        if n_train:
            fraction = max(fraction, 2.0 / (n_train + 1))
    else:
        low, high, fraction = -params.z_max, params.z_max, params.z_outside_max
    fraction = max(fraction, train_outside + (1.0 / (n_train + 1) if n_train else 0.0))
    if n:
        fraction += 5.0 * np.sqrt(fraction * (1 - fraction) / n) + 1.0 / n
    return low, high, 1.0 - min(fraction, 1.0)


def out_of_range_fractions(scaled: np.ndarray, kind: str, params: ScalingParams) -> np.ndarray:
    """Per column, the fraction of transformed values outside the allowed range."""
    low, high, _ = allowed_range(kind, params)
    tolerance = 1e-6 * (high - low)
    return np.mean((scaled < low - tolerance) | (scaled > high + tolerance), axis=0)

