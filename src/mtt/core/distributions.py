"""Per-event m_tt distributions predicted by a mixture density network, in GeV (pure numpy and scipy).

The MDN head predicts, per event, a Gaussian mixture in the regression target space y = T(m_tt) (T: none,
standardize or log). In GeV the density is f(m) = sum_k w_k N(T(m); mu_k, sigma_k) `|T'(m)|`, the CDF is the
mixture CDF at T(m), and samples are T^-1 of mixture samples. From it: the median and any quantile (by
bisection on the CDF), the mode (the maximum-likelihood m_tt, on a fine grid refined by a parabola), a
seeded sample, and the expected spectrum (each event's probability in each bin, summed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, softmax

#: the relative tolerance of `most_probable_within` by default: evaluate.mdn_window, predict's m_tt_window
MDN_WINDOW = 0.1
#: the floor the head adds to its widths (mtt.core.model.SIGMA_MIN)
SIGMA_MIN = 1e-4
#: GeV range searched for modes and quantiles
M_MIN, M_MAX = 1.0, 50_000.0


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


@dataclass(frozen=True)
class Mixture:
    """n per-event mixtures of k Gaussians in target space, and the target transform back to GeV."""

    weights: np.ndarray  # (n, k), rows sum to 1
    mu: np.ndarray  # (n, k)
    sigma: np.ndarray  # (n, k)
    kind: str = "none"  # target transform: none | standardize | log
    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def from_head(cls, output: np.ndarray, components: int, kind: str = "none", mean: float = 0.0,
                  std: float = 1.0) -> Mixture:
        """From the raw MDN head output (logits, means, raw widths), as `mtt.core.model.mdn_parameters` reads it."""
        output = np.asarray(output, dtype=np.float64)
        k = components
        return cls(softmax(output[:, :k], axis=1), output[:, k:2 * k], _softplus(output[:, 2 * k:]) + SIGMA_MIN,
                   kind, mean, std)

    def __len__(self) -> int:
        return len(self.weights)

    # --- the transform --------------------------------------------------------------------------------

    def to_target(self, m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=np.float64)
        if self.kind == "log":
            return np.log(np.maximum(m, 1e-300))
        if self.kind == "standardize":
            return (m - self.mean) / self.std
        return m

    def to_gev(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.kind == "log":
            return np.exp(y)
        if self.kind == "standardize":
            return y * self.std + self.mean
        return y

    def jacobian(self, m: np.ndarray) -> np.ndarray:
        """`|dT/dm|`."""
        m = np.asarray(m, dtype=np.float64)
        if self.kind == "log":
            return 1.0 / np.maximum(m, 1e-300)
        if self.kind == "standardize":
            return np.full_like(m, 1.0 / self.std)
        return np.ones_like(m)

    # --- density, CDF, quantiles ------------------------------------------------------------------------

    def _select(self, rows: slice | np.ndarray) -> Mixture:
        return Mixture(self.weights[rows], self.mu[rows], self.sigma[rows], self.kind, self.mean, self.std)

    def cdf(self, m: np.ndarray) -> np.ndarray:
        """P(m_tt <= m) per event; `m` is (n,) or (n, g)."""
        y = self.to_target(m)
        y = y[..., None]
        weights, mu, sigma = (a[:, None, :] if y.ndim == 3 else a for a in (self.weights, self.mu, self.sigma))
        return np.sum(weights * ndtr((y - mu) / sigma), axis=-1)

    def log_pdf(self, m: np.ndarray) -> np.ndarray:
        """log f(m) in GeV^-1 per event; `m` is (n,) or (n, g).

        Components first: the sum over them is then a fold of whole (n, g) slabs, 2-4x faster than folding each
        point's 25 terms, with the same operations in the same order (the same bits)."""
        y = self.to_target(m)
        weights, mu, sigma = (a.T.reshape(a.shape[1], len(a), *(1,) * (y.ndim - 1))
                              for a in (self.weights, self.mu, self.sigma))
        z = (y - mu) / sigma
        terms = np.log(np.maximum(weights, 1e-300)) - 0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
        return np.logaddexp.reduce(terms, axis=0) + np.log(self.jacobian(m))

    def quantile(self, p: float, iterations: int = 60) -> np.ndarray:
        """The per-event p-quantile in GeV, by bisection on the CDF in target space."""
        low = np.min(self.mu - 12 * self.sigma, axis=1)
        high = np.max(self.mu + 12 * self.sigma, axis=1)
        if self.kind == "log":
            low, high = np.maximum(low, np.log(M_MIN)), np.minimum(high, np.log(M_MAX))
        for _ in range(iterations):
            middle = 0.5 * (low + high)
            below = np.sum(self.weights * ndtr((middle[:, None] - self.mu) / self.sigma), axis=1) < p
            low, high = np.where(below, middle, low), np.where(below, high, middle)
        return self.to_gev(0.5 * (low + high))

    def median(self) -> np.ndarray:
        return self.quantile(0.5)

    def mean_gev(self) -> np.ndarray:
        """The mixture mean in GeV (what the inference model's `ToGeV` layer returns)."""
        if self.kind == "log":
            return np.sum(self.weights * np.exp(self.mu + 0.5 * self.sigma**2), axis=1)
        return self.to_gev(np.sum(self.weights * self.mu, axis=1))

    def mode(self, points: int = 2000, chunk: int = 32) -> np.ndarray:
        """The per-event maximum of the density in GeV: the best of a fine grid spanning every component,
        refined by the parabola through it and its neighbours."""
        out = np.empty(len(self))
        steps = np.linspace(0.0, 1.0, points)
        for start in range(0, len(self), chunk):
            part = self._select(slice(start, start + chunk))
            low = part.to_gev(np.min(part.mu - 6 * part.sigma, axis=1))
            high = part.to_gev(np.max(part.mu + 6 * part.sigma, axis=1))
            low, high = np.clip(low, M_MIN, M_MAX), np.clip(high, M_MIN, M_MAX)
            grid = low[:, None] + (high - low)[:, None] * steps
            values = np.log(np.maximum(part.pdf(grid), 1e-300))
            best = np.clip(np.argmax(values, axis=1), 1, points - 2)
            rows = np.arange(len(part))
            left, centre, right = (values[rows, best + d] for d in (-1, 0, 1))
            curvature = left - 2 * centre + right
            shift = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1.0), 0.0)
            out[start:start + chunk] = grid[rows, best] + np.clip(shift, -1, 1) * (high - low) / (points - 1)
        return out

    def pdf(self, m: np.ndarray) -> np.ndarray:
        """f(m) in GeV^-1 per event, summed directly (no logs: the mode's grid needs only the peak's
        values, which cannot underflow); `m` is (n, g)."""
        y = self.to_target(m)[..., None]
        scale = self.weights / (self.sigma * np.sqrt(2 * np.pi))
        z = (y - self.mu[:, None, :]) / self.sigma[:, None, :]
        return np.matmul(np.exp(-0.5 * z * z), scale[:, :, None])[..., 0] * self.jacobian(m)

    def most_probable_within(self, tolerance: float, points: int = 400, chunk: int = 128) -> np.ndarray:
        """Per event, the m in GeV most probably within the relative `tolerance` of the true m_tt, i.e. the
        maximum of P(m / (1 + t) <= m_tt <= m / (1 - t)): the Bayes choice when an estimate counts only if
        `|m - m_tt| / m_tt <= t` (resolution, fraction within 20%); unlike the mode it weighs a narrow spike by
        its probability, not its height. Searched on a log grid spanning the 0.5%-99.5% quantiles."""
        if not 0.0 < tolerance < 1.0:
            raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
        low = np.clip(self.quantile(0.005), M_MIN, M_MAX)  # a mixture reaching below 0 GeV starts at M_MIN
        high = np.clip(self.quantile(0.995), low * 1.001, M_MAX)
        out = np.empty(len(self))
        steps = np.linspace(0.0, 1.0, points)
        for start in range(0, len(self), chunk):
            part, rows = self._select(slice(start, start + chunk)), slice(start, start + chunk)
            grid = low[rows, None] * (high[rows] / low[rows])[:, None] ** steps
            inside = part.cdf(grid / (1.0 - tolerance)) - part.cdf(grid / (1.0 + tolerance))
            out[rows] = grid[np.arange(len(part)), np.argmax(inside, axis=1)]
        return out

    def likelihood_maximum(self, grid: np.ndarray, log_prior: np.ndarray, chunk: int = 256) -> np.ndarray:
        """Per event, the m on `grid` (GeV) that maximises f(m | x) / prior(m): the posterior divided by the
        training prior is the likelihood p(x | m) up to a constant, so its maximum does not depend on the
        spectrum the network was trained on (Du et al., arXiv:2404.18992), unlike the mode or the mean."""
        out = np.empty(len(self))
        for start in range(0, len(self), chunk):
            part = self._select(slice(start, start + chunk))
            values = part.log_pdf(np.broadcast_to(grid, (len(part), len(grid)))) - log_prior
            out[start:start + chunk] = grid[np.argmax(values, axis=1)]
        return out

    # --- samples and spectra ----------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One draw per event, in GeV."""
        cumulative = np.cumsum(self.weights, axis=1)
        component = np.minimum((rng.random(len(self))[:, None] > cumulative).sum(axis=1), self.weights.shape[1] - 1)
        rows = np.arange(len(self))
        return self.to_gev(self.mu[rows, component] + self.sigma[rows, component] * rng.standard_normal(len(self)))

    def expected_spectrum(self, edges: np.ndarray) -> np.ndarray:
        """Sum over events of each event's probability to fall in each bin (events per bin)."""
        cdf = self.cdf(np.broadcast_to(np.asarray(edges, dtype=np.float64), (len(self), len(edges))))
        return np.sum(np.diff(cdf, axis=1), axis=0)

    def gaussian_in_gev(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(means, widths) in GeV when the mixture is Gaussian in GeV too (none, standardize), else None."""
        if self.kind == "log":
            return None
        scale = self.std if self.kind == "standardize" else 1.0
        return self.to_gev(self.mu), self.sigma * scale



@dataclass
class Draws:
    """Per-event m_tt distributions given as posterior draws (n, k) in GeV (the flow head's): the same readings
    as a `Mixture` (median, quantiles, CDF, the most probable value within a tolerance, a draw, the expected
    spectrum), from the empirical distribution of the draws."""

    values: np.ndarray  # (n, k), sorted per event

    @classmethod
    def of(cls, draws: np.ndarray) -> Draws:
        """Sort each event's draws once: quantiles and the CDF read the order statistics."""
        return cls(np.sort(np.asarray(draws, dtype=np.float64), axis=1))

    def __len__(self) -> int:
        return len(self.values)

    def quantile(self, p: float) -> np.ndarray:
        return np.quantile(self.values, p, axis=1)

    def median(self) -> np.ndarray:
        return self.quantile(0.5)

    def mean_gev(self) -> np.ndarray:
        return self.values.mean(axis=1)

    def cdf(self, m: np.ndarray) -> np.ndarray:
        """Fraction of each event's draws at or below m (n,): the PIT value at the truth."""
        return (self.values <= np.asarray(m, dtype=np.float64)[:, None]).mean(axis=1)

    def most_probable_within(self, tolerance: float, chunk: int = 4096) -> np.ndarray:
        """Per event, the draw m with the most draws in [m / (1 + t), m / (1 - t)] (ties: the lowest): the
        `Mixture.most_probable_within` rule read from the draws (the window holding the most posterior mass)."""
        if not 0.0 < tolerance < 1.0:
            raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
        out = np.empty(len(self))
        for start in range(0, len(self), chunk):
            part = self.values[start:start + chunk]
            candidate = part[:, :, None]
            inside = ((part[:, None, :] >= candidate / (1 + tolerance))
                      & (part[:, None, :] <= candidate / (1 - tolerance))).sum(axis=2)
            out[start:start + chunk] = part[np.arange(len(part)), np.argmax(inside, axis=1)]
        return out

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One of each event's draws, chosen at random (a draw from the posterior)."""
        return self.values[np.arange(len(self)), rng.integers(0, self.values.shape[1], len(self))]

    def expected_spectrum(self, edges: np.ndarray) -> np.ndarray:
        """Each event's fraction of draws per bin, summed over events (events per bin)."""
        counts, _ = np.histogram(self.values.ravel(), edges)
        return counts / self.values.shape[1]
