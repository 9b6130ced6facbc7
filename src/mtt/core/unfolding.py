"""Iterative Bayesian unfolding of a reconstructed m_tt histogram (D'Agostini), with pyunfold.

The response is built on one sample (the val split: the train split would give a response sharpened by
overfitting) and applied to another (test); reco-bin events whose truth lies outside the edges (fakes, e.g.
m_tt above the last edge) are taken off the observed histogram first. Prior and stopping rule, stated and
logged: start from `evaluate.unfold_prior` (default `smooth`: the response sample's truth with its bin-to-bin
fluctuations fitted away), iterate until the Kolmogorov-Smirnov distance between successive unfolded spectra
drops below `ts_stopping`, at most `max_iter` times; when methods are compared, all are unfolded with the
largest of their stopping points (`common_iterations`), because the relative uncertainty grows with the
number of iterations. Errors and covariance: Poisson replicas of the observed histogram (data statistics)
plus as many of the response sample (every migration count, lost event and fake, the prior rebuilt from each
replica: response statistics), each unfolded with the same number of iterations. The old errors (the response
truth histogram as prior, pyunfold's linear propagation with the prior held fixed) under-covered ~2x: on toy
ensembles with a known answer chi2/ndf 4.1-4.7; these give 0.91-0.95 (benchmarks/unfolding_toys.py,
benchmarks/RESULTS.md). pyunfold's propagated errors are kept as `adye_err`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtt.core.errors import EvaluateError


def merged_edges(edges: np.ndarray, true: np.ndarray, min_events: int) -> np.ndarray:
    """The edges with neighbouring bins merged, low to high, until every bin holds >= min_events of `true`
    (what is left at the top joins the last full bin): sparse tails would leave response columns empty."""
    counts, _ = np.histogram(true, edges)
    kept, running = [edges[0]], 0
    for count, high in zip(counts, edges[1:], strict=True):
        running += count
        if running >= min_events:
            kept.append(high)
            running = 0
    if kept[-1] != edges[-1]:
        if len(kept) > 1:
            kept[-1] = edges[-1]
        else:
            kept.append(edges[-1])
    return np.asarray(kept, dtype=np.float64)


#: the unfolding's priors: `smooth` (the response sample's truth with its bin-to-bin fluctuations fitted away),
#: `flat` (equal counts per GeV), `truth` (the response sample's truth histogram as it is: its fluctuations
#: pass into the unfolded spectrum, uncovered by the errors of a fixed prior)
PRIORS = ("smooth", "flat", "truth")
#: the smooth prior: a quadratic in m fitted to the log count density of the bin and this many neighbours on
#: either side, each bin weighted by its events (the inverse variance of a log count)
SMOOTH_HALF_WIDTH = 3


@dataclass(frozen=True)
class Response:
    """P(reco bin j | true bin i) with its binomial errors, the efficiency of each true bin, and the counts
    they came from (which the response replicas fluctuate)."""

    matrix: np.ndarray  # (n_reco, n_true), columns sum to the efficiencies
    errors: np.ndarray
    efficiencies: np.ndarray  # (n_true,)
    efficiency_errors: np.ndarray
    counts: np.ndarray  # events per true bin
    migrations: np.ndarray  # (n_reco, n_true) events per (reco bin, true bin)
    fakes: np.ndarray  # (n_reco,) events reconstructed in the bin whose truth lies outside the edges
    edges: np.ndarray  # the bin edges (GeV)
    lowest: float  # the lowest true value in the edges: where the spectrum starts (the tt threshold)

    @classmethod
    def build(cls, reco: np.ndarray, true: np.ndarray, edges: np.ndarray) -> Response:
        """From matched (reco, true) pairs; a reco value outside the edges counts as not reconstructed."""
        edges = np.asarray(edges, dtype=np.float64)
        true_bins = np.digitize(true, edges) - 1
        reco_bins = np.digitize(reco, edges) - 1
        n = len(edges) - 1
        inside = (true_bins >= 0) & (true_bins < n)
        counts = np.bincount(true_bins[inside], minlength=n).astype(np.float64)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            raise EvaluateError(f"unfolding: no events of the response sample in true m_tt bin {int(empty[0])} "
                                f"[{edges[empty[0]]:g}, {edges[empty[0] + 1]:g}) GeV: widen the bins or grow the "
                                "sample")
        seen = inside & (reco_bins >= 0) & (reco_bins < n)
        migrations = np.zeros((n, n))
        np.add.at(migrations, (reco_bins[seen], true_bins[seen]), 1.0)
        outside = ~inside & (reco_bins >= 0) & (reco_bins < n)
        fakes = np.bincount(reco_bins[outside], minlength=n).astype(np.float64)
        return cls.from_counts(migrations, counts, fakes, edges, float(np.min(true[inside])))

    @classmethod
    def from_counts(cls, migrations: np.ndarray, counts: np.ndarray, fakes: np.ndarray, edges: np.ndarray,
                    lowest: float) -> Response:
        """From the migration counts, the events per true bin (reconstructed or not) and the fakes per reco bin."""
        matrix = migrations / counts
        errors = np.sqrt(matrix * (1 - matrix) / counts)
        efficiencies = matrix.sum(axis=0)
        efficiency_errors = np.sqrt(np.maximum(efficiencies * (1 - efficiencies), 1e-12) / counts)
        return cls(matrix, errors, efficiencies, efficiency_errors, counts, migrations, fakes, edges, lowest)

    def purity(self) -> np.ndarray:
        """Per reco bin, the share of its events whose truth lies inside the edges (the rest, e.g. m_tt above
        the last edge reconstructed below it, is subtracted from the observed histogram before unfolding)."""
        return purity(self.migrations.sum(axis=1), self.fakes)

    def prior(self, kind: str) -> np.ndarray:
        """The normalised prior of this kind (one of PRIORS) on this response's true bins."""
        return prior(kind, self.counts, self.edges, self.lowest)


def _check_prior(kind: str) -> None:
    if kind not in PRIORS:
        raise EvaluateError(f"evaluate.unfold_prior: {kind!r} is not one of {', '.join(PRIORS)}: give one of them")


def prior(kind: str, counts: np.ndarray, edges: np.ndarray, lowest: float,
          weights: np.ndarray | None = None) -> np.ndarray:
    """The normalised prior from true-bin counts (..., n_true) - stacked replicas alike - on these edges; the
    smooth fit weighs the bins by `weights` (default: the counts; replicas pass the nominal counts)."""
    _check_prior(kind)
    counts = np.asarray(counts, dtype=np.float64)
    low = np.maximum(edges[:-1], min(lowest, edges[-2]))  # the first filled bin starts at the threshold
    widths = np.maximum(edges[1:] - low, 1e-9 * (edges[-1] - edges[0]))
    if kind == "truth":
        shape = counts
    elif kind == "flat":
        shape = np.broadcast_to(widths, counts.shape)
    else:
        shape = np.exp(smoothed_log_density(counts, widths, (low + edges[1:]) / 2,
                                            counts if weights is None else weights)) * widths
    return shape / shape.sum(axis=-1, keepdims=True)


def smoothed_log_density(counts: np.ndarray, widths: np.ndarray, centres: np.ndarray, weights: np.ndarray,
                         half_width: int = SMOOTH_HALF_WIDTH) -> np.ndarray:
    """Per bin, the log count density at its centre from a quadratic fitted to it and its neighbours (a local
    weighted least-squares fit, weights the counts): a falling exponential or a power law comes out unbiased,
    bin-to-bin fluctuations are averaged over up to 2 * half_width + 1 bins."""
    n = counts.shape[-1]
    log_density = np.log(np.maximum(counts, 1e-300) / widths)
    scale = float(centres[-1] - centres[0]) or 1.0  # x of order one: a well-conditioned fit
    fitted = np.empty(counts.shape)
    for i in range(n):
        window = slice(max(0, i - half_width), min(n, i + half_width + 1))
        x = (centres[window] - centres[i]) / scale
        design = np.stack([np.ones_like(x), x, x**2], axis=-1)  # (w, 3)
        weight = np.broadcast_to(weights, counts.shape)[..., window]
        normal = np.einsum("...w,wa,wb->...ab", weight, design, design) + 1e-12 * np.eye(3)
        target = np.einsum("...w,wa,...w->...a", weight, design, log_density[..., window])
        fitted[..., i] = np.linalg.solve(normal, target[..., None])[..., 0, 0]
    return fitted


def purity(reconstructed: np.ndarray, fakes: np.ndarray) -> np.ndarray:
    """reconstructed / (reconstructed + fakes) per reco bin (stacked replicas alike); 1 where both are empty."""
    total = reconstructed + fakes
    return np.divide(reconstructed, total, out=np.ones(np.shape(total)), where=total > 0)


def iterate(data: np.ndarray, matrix: np.ndarray, efficiencies: np.ndarray, prior: np.ndarray,
            iterations: int) -> np.ndarray:
    """D'Agostini's iterations, as pyunfold does them, on stacked inputs (replicas): data (..., n_reco),
    matrix (..., n_reco, n_true), efficiencies and prior (..., n_true); a bin of zero efficiency unfolds to 0."""
    inverse_efficiency = np.divide(1.0, efficiencies, out=np.zeros(np.shape(efficiencies)),
                                   where=np.asarray(efficiencies) > 0)
    causes = np.sum(data, axis=-1, keepdims=True) * prior
    for _ in range(iterations):
        folded = np.einsum("...ji,...i->...j", matrix, causes)
        ratio = np.divide(data, folded, out=np.zeros(np.broadcast_shapes(np.shape(data), folded.shape)),
                          where=folded > 0)
        causes = causes * np.einsum("...j,...ji->...i", ratio, matrix) * inverse_efficiency
    return causes


@dataclass(frozen=True)
class Unfolded:
    """An unfolded spectrum: counts per true bin, errors, covariance, and how it stopped."""

    counts: np.ndarray
    stat_err: np.ndarray  # data statistics: Poisson replicas of the observed histogram
    sys_err: np.ndarray  # response statistics: Poisson replicas of the response sample (matrix and prior)
    covariance: np.ndarray  # both, from the replicas: the quoted errors are the square root of its diagonal
    iterations: int
    ts: float
    adye_err: np.ndarray  # pyunfold's linear (Adye) propagation of data and response errors, prior held fixed
    replicas: int = 0  # per source

    @property
    def errors(self) -> np.ndarray:
        """The quoted error per bin (data and response statistics)."""
        return np.sqrt(self.stat_err**2 + self.sys_err**2)

    @property
    def relative_uncertainty(self) -> np.ndarray:
        total = self.errors
        return np.divide(total, self.counts, out=np.full_like(total, np.nan), where=self.counts > 0)

    def pulls(self, truth: np.ndarray) -> np.ndarray:
        """(unfolded - truth) / total error per bin."""
        total = self.errors
        return np.divide(self.counts - truth, total, out=np.full_like(total, np.nan), where=total > 0)

    def chi2_ndf_cov(self, truth: np.ndarray) -> float:
        """chi2 / ndf of (unfolded - truth) with the full covariance, its inverse debiased for the finite
        number of replicas it was estimated from (Hartlap et al. 2007: x (R - n - 2) / (R - 1))."""
        return chi2_ndf_covariance(self.counts - np.asarray(truth, dtype=np.float64), self.covariance,
                                   self.replicas)


def chi2_ndf_covariance(residual: np.ndarray, covariance: np.ndarray, replicas: int = 0) -> float:
    """r^T C^-1 r / n over the bins with a non-zero variance; with `replicas` > n + 2 the inverse of the
    replica covariance is debiased by (R - n - 2) / (R - 1)."""
    keep = np.diag(covariance) > 0
    residual, covariance = residual[keep], covariance[np.ix_(keep, keep)]
    n = int(keep.sum())
    if n == 0:
        return float("nan")
    chi2 = float(residual @ np.linalg.pinv(covariance, hermitian=True) @ residual)
    if replicas > n + 2:
        chi2 *= (replicas - n - 2) / (replicas - 1)
    return chi2 / n


def _unfold(observed: np.ndarray, response: Response, ts_stopping: float, max_iter: int, prior_kind: str) -> dict:
    from pyunfold import iterative_unfold

    kept = response.purity()
    return iterative_unfold(data=observed * kept, data_err=np.sqrt(np.maximum(observed, 1.0)) * kept,
                            response=response.matrix,
                            response_err=response.errors, efficiencies=response.efficiencies,
                            efficiencies_err=response.efficiency_errors, prior=response.prior(prior_kind),
                            ts="ks", ts_stopping=ts_stopping, max_iter=max_iter)


def stopping_iterations(observed: np.ndarray, response: Response, ts_stopping: float, max_iter: int,
                        prior_kind: str = "smooth") -> int:
    """How many iterations the KS stopping rule takes on this histogram."""
    return int(_unfold(np.asarray(observed, dtype=np.float64), response, ts_stopping, max_iter,
                       prior_kind)["num_iterations"])


def common_iterations(inputs: list[tuple[np.ndarray, Response]], ts_stopping: float, max_iter: int,
                      prior_kind: str = "smooth") -> tuple[int, list[int]]:
    """(one iteration count for methods that are compared: the largest of their own stopping points, each
    method's own stopping point)."""
    own = [stopping_iterations(observed, response, ts_stopping, max_iter, prior_kind) for observed, response in inputs]
    return max(own), own


def data_replicas(observed: np.ndarray, response: Response, prior_kind: str, iterations: int, replicas: int,
                  rng: np.random.Generator) -> np.ndarray:
    """(replicas, n_true) unfoldings of Poisson fluctuations of the observed histogram, the response fixed."""
    data = rng.poisson(observed, (replicas, observed.size)) * response.purity()
    return iterate(data, response.matrix, response.efficiencies, response.prior(prior_kind), iterations)


def response_replicas(observed: np.ndarray, response: Response, prior_kind: str, iterations: int, replicas: int,
                      rng: np.random.Generator) -> np.ndarray:
    """(replicas, n_true) unfoldings of the observed histogram through Poisson fluctuations of the response
    sample (every migration count, every true bin's lost events, every reco bin's fakes; the prior rebuilt)."""
    migrations = rng.poisson(response.migrations, (replicas, *response.migrations.shape)).astype(np.float64)
    lost = rng.poisson(response.counts - response.migrations.sum(axis=0), (replicas, response.counts.size))
    fakes = rng.poisson(response.fakes, (replicas, response.fakes.size))
    counts = migrations.sum(axis=1) + lost
    matrix = np.divide(migrations, counts[:, None, :], out=np.zeros_like(migrations), where=counts[:, None, :] > 0)
    priors = prior(prior_kind, counts, response.edges, response.lowest, response.counts)
    return iterate(observed * purity(migrations.sum(axis=2), fakes), matrix, matrix.sum(axis=1), priors, iterations)


def unfold(observed: np.ndarray, response: Response, ts_stopping: float = 1e-3, max_iter: int = 100,
           replicas: int = 100, seed: int = 0, iterations: int | None = None, prior: str = "smooth") -> Unfolded:
    """Unfold an observed reco histogram (by the stopping rule, or exactly `iterations` times) from a prior of
    this kind; the errors and covariance from `replicas` Poisson fluctuations of the data and as many of the
    response sample, each unfolded with the same number of iterations."""
    _check_prior(prior)
    observed = np.asarray(observed, dtype=np.float64)
    if iterations is not None:
        ts_stopping, max_iter = 0.0, iterations
    result = _unfold(observed, response, ts_stopping, max_iter, prior)
    iterations = int(result["num_iterations"])
    rng = np.random.default_rng(seed)
    data_cov = np.cov(data_replicas(observed, response, prior, iterations, replicas, rng), rowvar=False)
    response_cov = np.cov(response_replicas(observed, response, prior, iterations, replicas, rng), rowvar=False)
    adye = np.sqrt(np.asarray(result["stat_err"]) ** 2 + np.asarray(result["sys_err"]) ** 2)
    return Unfolded(np.asarray(result["unfolded"]), np.sqrt(np.diag(data_cov)), np.sqrt(np.diag(response_cov)),
                    data_cov + response_cov, iterations, float(result["ts_iter"]), adye, replicas)
