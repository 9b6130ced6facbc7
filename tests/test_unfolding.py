"""Iterative Bayesian unfolding on a toy with a known response: closure, covariance, merged bins, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mtt.errors import EvaluateError
from mtt.unfolding import Response, common_iterations, merged_edges, stopping_iterations, unfold

EDGES = np.linspace(300.0, 1300.0, 11)


def toy(n, rng):
    """A falling spectrum from a 345 GeV threshold, smeared by 12%: (reco, true)."""
    true = 345 + rng.exponential(200, n)
    return true * (1 + 0.12 * rng.standard_normal(n)), true


def test_unfolding_a_toy_recovers_the_truth_within_its_uncertainties():
    rng = np.random.default_rng(11)
    response = Response.build(*toy(40_000, rng), EDGES)
    reco, true = toy(8_000, rng)
    result = unfold(np.histogram(reco, EDGES)[0], response, replicas=60, seed=1)
    truth = np.histogram(true, EDGES)[0]
    pulls = result.pulls(truth)
    assert np.mean(pulls**2) < 2 and abs(np.mean(pulls)) < 0.5
    assert 1 <= result.iterations < 100
    # the covariance of Poisson replicas matches pyunfold's propagated statistical errors
    np.testing.assert_allclose(np.sqrt(np.diag(result.covariance)), result.stat_err, rtol=0.3)


def test_response_columns_are_probabilities_and_efficiencies():
    reco = np.array([350.0, 450.0, 2000.0, 450.0])  # the third is reconstructed outside the range
    true = np.array([350.0, 350.0, 350.0, 450.0])
    response = Response.build(reco, true, np.array([300.0, 400.0, 500.0]))
    np.testing.assert_allclose(response.matrix, [[1 / 3, 0.0], [1 / 3, 1.0]])
    np.testing.assert_allclose(response.efficiencies, [2 / 3, 1.0])


def test_an_empty_true_bin_is_named():
    with pytest.raises(EvaluateError, match=r"no events of the response sample in true m_tt bin 1 \[400, 500\)"):
        Response.build(np.array([350.0]), np.array([350.0]), np.array([300.0, 400.0, 500.0]))


def test_sparse_bins_are_merged_until_each_holds_enough_events():
    true = np.array([310.0] * 30 + [420.0] * 5 + [460.0] * 20 + [800.0] * 3)
    edges = np.array([300.0, 400.0, 450.0, 500.0, 900.0, 1000.0])
    assert merged_edges(edges, true, 20).tolist() == [300.0, 400.0, 1000.0]


def test_compared_methods_are_unfolded_with_one_iteration_count():
    """The relative uncertainty grows with the iterations: a comparison needs the same count for both."""
    rng = np.random.default_rng(3)
    true = 345 + rng.exponential(150, 40_000)
    sharp, broad = true * rng.normal(1, 0.05, true.size), true * rng.normal(1, 0.25, true.size)
    inputs = [(np.histogram(reco[20_000:], EDGES)[0], Response.build(reco[:20_000], true[:20_000], EDGES))
              for reco in (sharp, broad)]
    own = [stopping_iterations(observed, response, 1e-3, 100) for observed, response in inputs]
    common, each = common_iterations(inputs, 1e-3, 100)
    assert common == max(own) and each == own
    assert min(own) < common
    results = [unfold(observed, response, replicas=5, iterations=common) for observed, response in inputs]
    assert [r.iterations for r in results] == [common, common]
    early = int(np.argmin(own))
    stopped_early = unfold(*inputs[early], replicas=5)
    assert stopped_early.iterations == own[early]
    assert np.mean(stopped_early.relative_uncertainty) < np.mean(results[early].relative_uncertainty)
