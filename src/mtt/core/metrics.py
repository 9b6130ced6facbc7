"""Resolution, bias and spectrum-width figures of m_tt predictions (pure numpy)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

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


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean square of pred - true (GeV): the quantity MSE training minimises."""
    return float(np.sqrt(np.mean((np.asarray(pred, dtype=np.float64) - true) ** 2)))


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute pred - true (GeV)."""
    return float(np.mean(np.abs(np.asarray(pred, dtype=np.float64) - true)))


def fraction_within(pred: np.ndarray, true: np.ndarray, tolerance: float) -> float:
    """Fraction of events with `|pred - true| / true` within the tolerance (0.1 = +-10%)."""
    return float(np.mean(np.abs(relative_residuals(pred, true)) <= tolerance))


def wasserstein(pred: np.ndarray, true: np.ndarray) -> float:
    """Wasserstein-1 (earth mover's) distance between the predicted and true m_tt distributions (GeV)."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(pred, true))


def chi2_ndf(pred: np.ndarray, true: np.ndarray, edges: np.ndarray) -> float:
    """chi2/ndf of the two histograms (equal-size samples, Poisson errors of both): sum (p-t)^2/(p+t) / bins."""
    p, _ = np.histogram(pred, edges)
    t, _ = np.histogram(true, edges)
    filled = (p + t) > 0
    if not filled.any():
        return float("nan")
    return float(np.sum((p[filled] - t[filled]) ** 2 / (p[filled] + t[filled])) / filled.sum())


def median_response(pred: np.ndarray, true: np.ndarray, edges: np.ndarray, min_events: int = 10,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(bin centre, median prediction) in the bins of true m_tt with at least `min_events` events."""
    centres, medians = [], []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (true >= low) & (true < high)
        if inside.sum() >= min_events:
            centres.append((low + high) / 2)
            medians.append(float(np.median(pred[inside])))
    return np.asarray(centres), np.asarray(medians)


def response_slope(pred: np.ndarray, true: np.ndarray, edges: np.ndarray) -> float:
    """d(median prediction)/d(true m_tt): below 1 the estimate is compressed toward the bulk (an MSE fit's
    regression to the mean), and the spectrum it gives is narrower than the truth."""
    return _slope(*median_response(pred, true, edges))


def calibrated_resolution(pred: np.ndarray, true: np.ndarray, edges: np.ndarray) -> float:
    """The resolution after the median response is inverted (as a jet energy scale is): what separates m_tt
    values, and so what an unfolding of the estimate can resolve; a compressed estimate looks sharper than it is."""
    return _calibrated(pred, true, *median_response(pred, true, edges))


def _slope(centres: np.ndarray, medians: np.ndarray) -> float:
    return float(np.polyfit(centres, medians, 1)[0]) if centres.size >= 2 else float("nan")


def _calibrated(pred: np.ndarray, true: np.ndarray, centres: np.ndarray, medians: np.ndarray) -> float:
    """`calibrated_resolution` from a measured median response."""
    if centres.size < 2:
        return float("nan")
    increasing = np.maximum.accumulate(medians)
    keep = np.r_[True, np.diff(increasing) > 0]  # np.interp needs strictly increasing abscissae
    x, y = increasing[keep], centres[keep]
    if x.size < 2:
        return float("nan")
    calibrated = np.interp(pred, x, y)
    low, high = pred < x[0], pred > x[-1]  # beyond the measured response: its end segments, extended
    calibrated[low] = y[0] + (pred[low] - x[0]) * (y[1] - y[0]) / (x[1] - x[0])
    calibrated[high] = y[-1] + (pred[high] - x[-1]) * (y[-1] - y[-2]) / (x[-1] - x[-2])
    return resolution(calibrated, true)


def spectrum_figures(pred: np.ndarray, true: np.ndarray, edges: np.ndarray) -> dict[str, float]:
    """Every per-event and spectrum figure of one estimator on events with a finite prediction."""
    ok = np.isfinite(pred)
    pred, true = np.asarray(pred, dtype=np.float64)[ok], np.asarray(true, dtype=np.float64)[ok]
    if pred.size == 0:
        return {"fraction_reconstructed": 0.0}
    response = median_response(pred, true, edges)
    return {"resolution": resolution(pred, true), "bias": median_bias(pred, true), "rmse": rmse(pred, true),
            "mae": mae(pred, true), "within_10pct": fraction_within(pred, true, 0.1),
            "within_20pct": fraction_within(pred, true, 0.2), "width_ratio": width_ratio(pred, true),
            "wasserstein": wasserstein(pred, true), "chi2_ndf": chi2_ndf(pred, true, edges),
            "response_slope": _slope(*response), "calibrated_resolution": _calibrated(pred, true, *response),
            "fraction_reconstructed": float(ok.mean()), "n_events": int(ok.sum())}


def per_bin(pred: np.ndarray, true: np.ndarray, edges: np.ndarray) -> list[dict[str, float]]:
    """Bias and resolution in bins of true m_tt (NaN where a bin has fewer than 10 events)."""
    ok = np.isfinite(pred)
    pred, true = np.asarray(pred, dtype=np.float64)[ok], np.asarray(true, dtype=np.float64)[ok]
    index = np.digitize(true, edges) - 1
    rows = []
    for k in range(len(edges) - 1):
        inside = index == k
        enough = inside.sum() >= 10
        rows.append({"m_tt_low": float(edges[k]), "m_tt_high": float(edges[k + 1]), "n_events": int(inside.sum()),
                     "bias": median_bias(pred[inside], true[inside]) if enough else float("nan"),
                     "resolution": resolution(pred[inside], true[inside]) if enough else float("nan")})
    return rows


# --- distributional scores ---------------------------------------------------------------------------


def crps_point(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """CRPS per event of a point forecast: its absolute error (GeV), via scoringrules."""
    import scoringrules as sr

    return np.asarray(sr.crps_ensemble(np.asarray(true, np.float64), np.asarray(pred, np.float64)[:, None]))


def crps_gaussian_mixture(weights: np.ndarray, means: np.ndarray, widths: np.ndarray, true: np.ndarray) -> np.ndarray:
    """CRPS per event of a Gaussian-mixture forecast in GeV (closed form, scoringrules)."""
    import scoringrules as sr

    return np.asarray(sr.crps_mixnorm(np.asarray(true, np.float64), means, widths, weights))


def crps_samples(samples: np.ndarray, true: np.ndarray) -> np.ndarray:
    """CRPS per event from (n, m) forecast samples (the ensemble estimator), GeV."""
    import scoringrules as sr

    return np.asarray(sr.crps_ensemble(np.asarray(true, np.float64), samples))


def crps_quantiles(quantiles: np.ndarray, levels: list[float], true: np.ndarray) -> np.ndarray:
    """CRPS per event approximated from predicted quantiles (the quantile score average, scoringrules)."""
    import scoringrules as sr

    return np.asarray(sr.crps_quantile(np.asarray(true, np.float64), quantiles, np.asarray(levels)))


def coverage(low: np.ndarray, high: np.ndarray, true: np.ndarray) -> float:
    """Fraction of events whose truth lies in [low, high]."""
    return float(np.mean((true >= low) & (true <= high)))


def coverage_per_bin(low: np.ndarray, high: np.ndarray, true: np.ndarray, edges: np.ndarray,
                     min_events: int = 100, by: np.ndarray | None = None) -> np.ndarray:
    """Coverage in bins of true m_tt, or of `by` (e.g. the predicted median); NaN where a bin has fewer than
    `min_events`.

    Only the second is a calibration test: a calibrated forecast covers the truth at the nominal rate among
    events with the same prediction, but in a bin of *true* m_tt far from the bulk the truths sit in the
    tails of their forecasts (the prior pulls every forecast toward the bulk), so coverage there is lower
    even when every forecast is exact (tests/test_metrics.py shows it on a Gaussian toy).
    """
    index = np.digitize(true if by is None else by, edges) - 1
    out = np.full(len(edges) - 1, np.nan)
    for k in range(len(edges) - 1):
        inside = index == k
        if inside.sum() >= min_events:
            out[k] = coverage(low[inside], high[inside], true[inside])
    return out


def pit_flatness(pit: np.ndarray, bins: int = 10) -> tuple[np.ndarray, float]:
    """(PIT histogram counts, its chi2/ndf against flat): a calibrated forecast gives a flat histogram."""
    counts, _ = np.histogram(pit, bins=np.linspace(0.0, 1.0, bins + 1))
    expected = len(pit) / bins
    return counts, float(np.sum((counts - expected) ** 2 / expected) / (bins - 1))


def histogram_figures(counts: np.ndarray, true: np.ndarray, edges: np.ndarray) -> dict[str, float]:
    """Spectrum figures of an estimator that gives a histogram, not events (an expected or unfolded
    spectrum): width ratio and Wasserstein-1 of the binned distributions, chi2/ndf with Poisson errors of both."""
    from scipy.stats import wasserstein_distance

    truth, _ = np.histogram(true, edges)
    centres = (edges[:-1] + edges[1:]) / 2
    counts = np.clip(np.asarray(counts, dtype=np.float64), 0.0, None)

    def std(weights: np.ndarray) -> float:
        if weights.sum() <= 0:
            return float("nan")
        mean = np.average(centres, weights=weights)
        return float(np.sqrt(np.average((centres - mean) ** 2, weights=weights)))

    filled = (counts + truth) > 0
    if counts.sum() <= 0 or truth.sum() <= 0 or not filled.any():
        return {"width_ratio": float("nan"), "wasserstein": float("nan"), "chi2_ndf": float("nan")}
    truth_std = std(truth.astype(np.float64))
    return {"width_ratio": std(counts) / truth_std if truth_std > 0 else float("nan"),
            "wasserstein": float(wasserstein_distance(centres, centres, counts, truth)),
            "chi2_ndf": float(np.sum((counts[filled] - truth[filled]) ** 2 / (counts[filled] + truth[filled]))
                              / filled.sum())}


@dataclass(frozen=True)
class LearningCurve:
    """resolution(n) = limit + scale * (n / 1000)^-power, fitted to (n_train, resolution) points."""

    limit: float  # the resolution with unlimited training data
    scale: float
    power: float
    limit_error: float  # from the fit's covariance; nan with no degree of freedom left

    def at(self, n_train: np.ndarray | float) -> np.ndarray:
        """The fitted resolution at these training sizes (to draw the curve past the measured points)."""
        return self.limit + self.scale * (np.asarray(n_train, dtype=np.float64) / 1000.0) ** -self.power

    def n_train_for(self, target: float) -> float:
        """Training events for which the curve reaches `target`; inf when the limit is not below it."""
        if target <= self.limit or self.scale <= 0:
            return float("inf")
        return float(1000.0 * (self.scale / (target - self.limit)) ** (1.0 / self.power))


def learning_curve(n_train: np.ndarray, resolution: np.ndarray) -> LearningCurve:
    """Fit the saturating power law that says whether more data can reach a target at all: a curve still
    falling as n^-c with a limit below the target needs data, one that flattens above it needs a better model."""
    from scipy.optimize import curve_fit

    n, r = np.asarray(n_train, dtype=np.float64), np.asarray(resolution, dtype=np.float64)
    if n.size < 3 or np.unique(n).size < 3:
        raise ValueError(f"a learning curve needs at least 3 distinct n_train values, got {sorted(set(n.tolist()))}")
    order = np.argsort(n)
    start = (float(r[order][-1]) * 0.9, float(r[order][0] - r[order][-1]) * 2 + 1e-6, 0.5)
    with warnings.catch_warnings():  # 3 points leave no degree of freedom: no covariance, said by limit_error
        warnings.filterwarnings("ignore", "Covariance of the parameters could not be estimated")
        values, covariance = curve_fit(lambda x, a, b, c: a + b * (x / 1000.0) ** -c, n, r, p0=start,
                                       bounds=([0.0, 0.0, 0.01], [np.inf, np.inf, 3.0]), maxfev=20_000)
    error = float(np.sqrt(covariance[0, 0])) if n.size > 3 and np.isfinite(covariance[0, 0]) else float("nan")
    return LearningCurve(float(values[0]), float(values[1]), float(values[2]), error)
