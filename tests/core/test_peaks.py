"""The Z' peak fit: a known Gaussian over a known background shape is found again (toys with fixed seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from mtt.core.errors import EvaluateError
from mtt.core.peaks import at_bound, expected_counts, fit_peak, fit_yield, gaussian_in_bins, negative_log_likelihood

EDGES = np.arange(300.0, 1501.0, 20.0)


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """A falling m_tt-like spectrum: 345 GeV threshold plus a gamma-shaped tail (mean ~ 530 GeV)."""
    return 345.0 + rng.gamma(1.6, 115.0, n)


def test_gaussian_in_bins_sums_to_the_share_inside():
    shares = gaussian_in_bins(EDGES, 750.0, 40.0)
    assert shares.sum() == pytest.approx(1.0, abs=1e-9)
    assert gaussian_in_bins(np.array([700.0, 750.0, 800.0]), 750.0, 50.0) == pytest.approx([0.3413447, 0.3413447])


def test_likelihood_is_smallest_at_the_truth_of_an_asimov_histogram():
    template = np.exp(-(EDGES[:-1] - 300.0) / 150.0)
    template /= template.sum()
    truth = np.array([5000.0, 250.0, 750.0, 40.0])
    asimov = expected_counts(truth, template, EDGES)
    at_truth = negative_log_likelihood(truth, asimov, template, EDGES)
    for shifted in ([5000, 250, 760, 40], [5000, 300, 750, 40], [5000, 250, 750, 50]):
        assert negative_log_likelihood(np.array(shifted, float), asimov, template, EDGES) > at_truth
    peak = fit_peak(asimov, template, EDGES)
    assert peak.position == pytest.approx(750.0, abs=0.5)
    assert peak.width == pytest.approx(40.0, abs=0.5)
    assert peak.signal == pytest.approx(250.0, rel=0.01)
    assert peak.converged and not peak.at_bound


def test_a_known_peak_is_recovered_in_a_toy():
    """5,151 SM-like events (the test split's size), 271 signal events at 750 +- 40 GeV (5%), a template from an
    independent 5,000-event sample: the peak within 2% and the yield within 25% (about 1.5 standard errors)."""
    rng = np.random.default_rng(1)
    observed = np.concatenate([_background(rng, 5151), rng.normal(750.0, 40.0, 271)])
    counts, _ = np.histogram(observed, EDGES)
    template, _ = np.histogram(_background(rng, 5000), EDGES)
    peak = fit_peak(counts, template, EDGES)
    assert peak.position == pytest.approx(750.0, rel=0.02)
    assert peak.signal == pytest.approx(271.0, rel=0.25)
    assert abs(peak.signal - 271.0) < 2 * peak.signal_error
    assert 10.0 < peak.signal_error < 100.0 and 0.0 < peak.position_error < 20.0


def test_a_peak_pulled_toward_the_bulk_is_found_where_it_was_put():
    rng = np.random.default_rng(2)
    observed = np.concatenate([_background(rng, 5151), rng.normal(620.0, 60.0, 271)])
    counts, _ = np.histogram(observed, EDGES)
    template, _ = np.histogram(_background(rng, 20000), EDGES)
    assert fit_peak(counts, template, EDGES).position == pytest.approx(620.0, rel=0.05)


def test_no_signal_gives_a_yield_compatible_with_zero():
    rng = np.random.default_rng(3)
    counts, _ = np.histogram(_background(rng, 5151), EDGES)
    template, _ = np.histogram(_background(rng, 20000), EDGES)
    peak = fit_peak(counts, template, EDGES)
    assert peak.signal < 3 * max(peak.signal_error, 10.0)


def test_a_parameter_on_its_limit_is_flagged():
    bounds = [(300.0, 1500.0), (5.0, 300.0)]
    assert not at_bound(np.array([750.0, 40.0]), bounds)
    assert at_bound(np.array([750.0, 300.0]), bounds) and at_bound(np.array([300.1, 40.0]), bounds)


def test_mismatched_or_empty_histograms_are_errors():
    with pytest.raises(EvaluateError, match="60 counts, 59 template bins"):
        fit_peak(np.ones(60), np.ones(59), EDGES)
    with pytest.raises(EvaluateError, match="empty histogram"):
        fit_peak(np.zeros(60), np.ones(60), EDGES)


def test_a_known_signal_shape_gives_the_yield_even_when_smeared_and_shifted():
    """A signal reconstructed 15% low with a wide skewed shape, in 30 toys: with its own template the yield is
    unbiased (mean within 5% of 271) and its error is of the size of the toys' spread (which the templates'
    own fluctuations widen a little: measured 58 against a mean error of 47)."""
    found = []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        counts, _ = np.histogram(np.concatenate([_background(rng, 5151), 640.0 + rng.gumbel(0.0, 60.0, 271)]), EDGES)
        background, _ = np.histogram(_background(rng, 20000), EDGES)
        signal, _ = np.histogram(640.0 + rng.gumbel(0.0, 60.0, 4000), EDGES)
        found.append(fit_yield(counts, background, signal))
    yields, errors = np.array(found).T
    assert np.mean(yields) == pytest.approx(271.0, rel=0.05)
    assert 0.8 < np.std(yields) / np.mean(errors) < 1.5
