"""A resonance over a known background shape: the binned fit that finds a Z' peak in a reconstructed spectrum.

The model of the observed counts n_i is b * t_i + s * g_i(mu, sigma): t the background template (the same
estimator on SM-only events, normalised to unit sum), g a Gaussian integrated over each bin, b and s the
background and signal yields. The extended binned Poisson likelihood is maximised over (b, s, mu, sigma)
from a few starts at the largest excesses over the template; uncertainties come from the inverse of the
numerical Hessian of -ln L. A Gaussian is the simplest peak shape: where an estimator smears the signal into a
wide, skewed shape the Gaussian takes the core, and the fitted yield falls short of the injected one — which
is the effect the Z' study measures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import ndtr

from mtt.core.errors import EvaluateError

#: starts of the fit: the bins with the largest smoothed excess over the template
N_STARTS = 3


@dataclass(frozen=True)
class Peak:
    """The fitted resonance: position and width (GeV), signal and background yields, their uncertainties."""

    position: float
    width: float
    signal: float
    background: float
    position_error: float
    signal_error: float
    converged: bool
    at_bound: bool  # the width or position ended on its limit: the Gaussian took background, not a peak

    def as_dict(self) -> dict[str, float]:
        """Plain numbers for metrics.json and MLflow."""
        return {k: float(v) for k, v in asdict(self).items()}


def gaussian_in_bins(edges: np.ndarray, position: float, width: float) -> np.ndarray:
    """The share of a unit Gaussian in each bin."""
    return np.diff(ndtr((edges - position) / width))


def expected_counts(theta: np.ndarray, template: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """b * t + s * g(mu, sigma) per bin, for theta = (b, s, mu, sigma)."""
    background, signal, position, width = theta
    return background * template + signal * gaussian_in_bins(edges, position, width)


def negative_log_likelihood(theta: np.ndarray, counts: np.ndarray, template: np.ndarray,
                            edges: np.ndarray) -> float:
    """Extended binned Poisson -ln L (constants dropped); counts may be non-integer (an expected spectrum)."""
    expected = np.maximum(expected_counts(theta, template, edges), 1e-12)
    return float(np.sum(expected - counts * np.log(expected)))


def excess_starts(counts: np.ndarray, template: np.ndarray, edges: np.ndarray) -> list[float]:
    """Bin centres of the largest excesses over the template (3-bin running mean): where a peak may sit."""
    excess = counts - counts.sum() * template
    smooth = np.convolve(excess, np.ones(3) / 3, mode="same")
    centres = (edges[:-1] + edges[1:]) / 2
    return [float(centres[i]) for i in np.argsort(smooth)[::-1][:N_STARTS]]


def hessian(f: object, x: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Central-difference Hessian of a scalar function (for the fit's covariance)."""
    n = len(x)
    out = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            def at(di: float, dj: float, i: int = i, j: int = j) -> float:
                y = x.copy()
                y[i] += di * steps[i]
                y[j] += dj * steps[j]
                return f(y)  # type: ignore[operator]

            value = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * steps[i] * steps[j])
            out[i, j] = out[j, i] = value
    return out


def fit_peak(counts: np.ndarray, template: np.ndarray, edges: np.ndarray) -> Peak:
    """Maximum-likelihood signal Gaussian over a background template, both as counts in the same bins."""
    counts = np.asarray(counts, dtype=np.float64)
    template = np.asarray(template, dtype=np.float64)
    if counts.shape != template.shape or len(edges) != len(counts) + 1:
        raise EvaluateError(f"peak fit: {len(counts)} counts, {len(template)} template bins, {len(edges)} edges")
    if template.sum() <= 0 or counts.sum() <= 0:
        raise EvaluateError("peak fit: an empty histogram (no events inside the fit range)")
    template = template / template.sum()
    n, bin_width = counts.sum(), float(np.min(np.diff(edges)))
    span = float(edges[-1] - edges[0])
    bounds = [(0.0, 2 * n), (0.0, n), (float(edges[0]), float(edges[-1])), (bin_width / 4, span / 4)]

    def nll(theta: np.ndarray) -> float:
        return negative_log_likelihood(theta, counts, template, edges)

    best = None
    for start in excess_starts(counts, template, edges):
        theta0 = np.array([0.95 * n, 0.05 * n, start, 2 * bin_width])
        found = minimize(nll, theta0, method="L-BFGS-B", bounds=bounds,
                         options={"ftol": 1e-14, "gtol": 1e-9, "maxiter": 10_000})
        if best is None or found.fun < best.fun:
            best = found
    assert best is not None
    theta = best.x
    steps = np.maximum(np.abs(theta) * 1e-4, [1e-2, 1e-2, 1e-2 * bin_width, 1e-2 * bin_width])
    try:
        covariance = np.linalg.inv(hessian(nll, theta, steps))
        errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    except np.linalg.LinAlgError:
        errors = np.full(4, np.nan)
    return Peak(position=float(theta[2]), width=float(theta[3]), signal=float(theta[1]),
                background=float(theta[0]), position_error=float(errors[2]), signal_error=float(errors[1]),
                converged=bool(best.success), at_bound=at_bound(theta[2:], bounds[2:]))


def at_bound(values: np.ndarray, bounds: list[tuple[float, float]], tolerance: float = 1e-3) -> bool:
    """Whether any parameter sits on a limit (within `tolerance` of its range)."""
    return any(min(v - low, high - v) <= tolerance * (high - low) for v, (low, high) in zip(values, bounds,
                                                                                             strict=True))


def fit_yield(counts: np.ndarray, background: np.ndarray, signal: np.ndarray) -> tuple[float, float]:
    """(signal yield, its error) with both shapes known (templates as counts in the same bins): the search for a
    given signal hypothesis, where the estimator's own smearing of the signal is part of its template."""
    counts = np.asarray(counts, dtype=np.float64)
    shapes = [np.asarray(t, dtype=np.float64) / np.sum(t) for t in (background, signal)]
    n = counts.sum()

    basis = np.stack(shapes)

    def nll(theta: np.ndarray) -> float:
        expected = np.maximum(theta @ basis, 1e-12)
        return float(np.sum(expected - counts * np.log(expected)))

    def gradient(theta: np.ndarray) -> np.ndarray:
        return basis @ (1.0 - counts / np.maximum(theta @ basis, 1e-12))

    # the yields are linear in the model, so with the analytic gradient the fit converges from any start (with
    # numerical gradients and two nearly equal shapes it stopped where it started)
    found = minimize(nll, np.array([0.9 * n, 0.1 * n]), jac=gradient, method="L-BFGS-B",
                     bounds=[(0.0, 2 * n), (0.0, n)], options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 10_000})
    steps = np.maximum(np.abs(found.x) * 1e-4, 1e-2)
    try:
        error = float(np.sqrt(max(np.linalg.inv(hessian(nll, found.x, steps))[1, 1], 0.0)))
    except np.linalg.LinAlgError:
        error = float("nan")
    return float(found.x[1]), error
