"""Iterative Bayesian unfolding on a toy with a known response: closure, covariance, merged bins, bad input,
the priors, the replica errors, and their coverage on a toy ensemble."""

from __future__ import annotations

import numpy as np
import pytest

from mtt.core.errors import EvaluateError
from mtt.core.unfolding import (
    PRIORS,
    Response,
    chi2_ndf_covariance,
    common_iterations,
    iterate,
    merged_edges,
    prior,
    purity,
    stopping_iterations,
    unfold,
)

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
    # the replica errors are the square root of the covariance's diagonal; the data part alone is of the size
    # of pyunfold's linear propagation of the data errors
    np.testing.assert_allclose(np.sqrt(np.diag(result.covariance)), result.errors)
    assert (result.sys_err > 0).all() and (result.errors > result.stat_err).all()


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


R2 = np.array([[0.8, 0.3], [0.2, 0.7]])  # columns: P(reco | true), efficiencies 1


def test_one_iteration_from_a_flat_prior_is_the_hand_worked_bayes_update():
    # truth (100, 50) folds to (95, 55); prior (75, 75) folds to (82.5, 67.5);
    # n_0 = 75 (95 * 0.8 / 82.5 + 55 * 0.2 / 67.5) = 81.313, n_1 = 75 (95 * 0.3 / 82.5 + 55 * 0.7 / 67.5) = 68.687
    once = iterate(np.array([95.0, 55.0]), R2, np.ones(2), np.array([0.5, 0.5]), 1)
    np.testing.assert_allclose(once, [81.3131, 68.6869], rtol=1e-5)


def test_many_iterations_reach_the_inverse_of_a_2x2_response():
    """The fixed point is the maximum-likelihood solution: R^-1 data where that is positive."""
    data = R2 @ np.array([100.0, 50.0])
    np.testing.assert_allclose(np.linalg.solve(R2, data), [100.0, 50.0])
    np.testing.assert_allclose(iterate(data, R2, np.ones(2), np.array([0.5, 0.5]), 3000), [100.0, 50.0], rtol=1e-6)


def test_the_replica_iterations_are_pyunfolds():
    from pyunfold import iterative_unfold

    rng = np.random.default_rng(5)
    response = Response.build(*toy(20_000, rng), EDGES)
    observed = np.histogram(toy(5_000, rng)[0], EDGES)[0].astype(np.float64)
    start = response.prior("smooth")
    theirs = iterative_unfold(data=observed, data_err=np.sqrt(observed), response=response.matrix,
                              response_err=response.errors, efficiencies=response.efficiencies,
                              efficiencies_err=response.efficiency_errors, prior=start, ts_stopping=0.0, max_iter=7)
    np.testing.assert_allclose(iterate(observed, response.matrix, response.efficiencies, start, 7),
                               theirs["unfolded"], rtol=1e-10)
    # stacked: each replica as if alone
    stacked = iterate(np.stack([observed, 2 * observed]), response.matrix, response.efficiencies, start, 7)
    np.testing.assert_allclose(stacked[1], 2 * stacked[0], rtol=1e-10)


def test_the_priors_flat_truth_and_smooth():
    edges = np.array([300.0, 350.0, 400.0, 450.0, 500.0, 600.0, 700.0, 800.0, 900.0])
    counts = np.array([10.0, 30.0, 20.0, 12.0, 9.0, 4.0, 2.0, 1.0])
    np.testing.assert_allclose(prior("truth", counts, edges, 345.0), counts / 88)
    # flat: proportional to the widths, the first bin counted from the threshold (5, 50, 50, 50, 100, ...)
    widths = np.array([5.0, 50, 50, 50, 100, 100, 100, 100])
    np.testing.assert_allclose(prior("flat", counts, edges, 345.0), widths / widths.sum())
    # smooth: an exactly exponential spectrum from the threshold comes back as it is, to the density's
    # curvature within a bin (sinh(w / 2s) / (w / 2s): 1% for a 100 GeV bin of a 100 GeV slope), fluctuations not
    low = np.maximum(edges[:-1], 345.0)
    exact = np.exp(-(low - 345) / 100) - np.exp(-(edges[1:] - 345) / 100)
    np.testing.assert_allclose(prior("smooth", 1e6 * exact, edges, 345.0), exact / exact.sum(), rtol=0.015)
    noisy = np.random.default_rng(1).poisson(2e3 * exact, (200, exact.size)).astype(np.float64)  # stacked
    spread = {kind: np.std(prior(kind, noisy, edges, 345.0) / (exact / exact.sum()), axis=0) for kind in PRIORS}
    assert np.mean(spread["smooth"]) < 0.7 * np.mean(spread["truth"])
    np.testing.assert_allclose(prior("smooth", noisy, edges, 345.0)[7], prior("smooth", noisy[7], edges, 345.0))


def test_an_unknown_prior_names_the_param():
    with pytest.raises(EvaluateError, match=r"evaluate.unfold_prior: 'jeffreys' is not one of smooth, flat, truth"):
        prior("jeffreys", np.ones(3), np.array([0.0, 1.0, 2.0, 3.0]), 0.0)


def test_fakes_truth_outside_the_edges_reconstructed_inside_are_counted_and_taken_off():
    reco = np.array([350.0, 450.0, 450.0, 450.0])
    true = np.array([350.0, 450.0, 450.0, 700.0])  # the last: true above the edges, reconstructed in bin 1
    response = Response.build(reco, true, np.array([300.0, 400.0, 500.0]))
    np.testing.assert_allclose(response.fakes, [0.0, 1.0])
    np.testing.assert_allclose(response.purity(), [1.0, 2 / 3])
    np.testing.assert_allclose(purity(np.array([[0.0, 3.0]]), np.array([[0.0, 1.0]])), [[1.0, 0.75]])


def test_chi2_with_the_full_covariance_by_hand():
    assert chi2_ndf_covariance(np.array([1.0, 2.0]), np.diag([1.0, 4.0])) == pytest.approx(1.0)
    # C = [[2, 1], [1, 2]]: C^-1 = [[2, -1], [-1, 2]] / 3, r = (1, 1): r C^-1 r = 2 / 3, per bin 1 / 3
    correlated = np.array([[2.0, 1.0], [1.0, 2.0]])
    assert chi2_ndf_covariance(np.ones(2), correlated) == pytest.approx(1 / 3)
    # estimated from 10 replicas: the inverse debiased by (10 - 2 - 2) / (10 - 1)
    assert chi2_ndf_covariance(np.ones(2), correlated, replicas=10) == pytest.approx(1 / 3 * 6 / 9)
    # a bin without variance is left out
    assert chi2_ndf_covariance(np.array([1.0, 5.0]), np.diag([1.0, 0.0])) == pytest.approx(1.0)


def test_replica_errors_are_seeded_and_split_into_data_and_response():
    rng = np.random.default_rng(2)
    response = Response.build(*toy(10_000, rng), EDGES)
    observed = np.histogram(toy(10_000, rng)[0], EDGES)[0]
    first, again = (unfold(observed, response, replicas=50, seed=3) for _ in range(2))
    np.testing.assert_array_equal(first.covariance, again.covariance)
    np.testing.assert_allclose(np.diag(first.covariance), first.stat_err**2 + first.sys_err**2)
    assert not np.array_equal(unfold(observed, response, replicas=50, seed=4).covariance, first.covariance)
    # equal sample sizes: the response statistics count about as much as the data's
    assert 0.3 < np.median(first.sys_err / first.stat_err) < 3


def _toys_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "benchmarks" / "unfolding_toys.py"
    spec = importlib.util.spec_from_file_location("unfolding_toys", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_quoted_errors_cover_on_a_small_toy_ensemble():
    """8 toys of 20k events (benchmarks/unfolding_toys.py runs the full study): the replica errors with the
    smooth prior cover, pyunfold's errors with the response truth as prior (the old setting) do not."""
    toys = _toys_module()
    for harder in (False, True):
        rows = toys.ensemble(8, 20_000, harder, seed=8, replicas=300, priors=("smooth", "truth"))
        now, before = toys.summary(rows["smooth"]), toys.summary(rows["before"])
        assert 0.6 < now["chi2_ndf"] < 1.5 and 0.5 < now["chi2_ndf_cov"] < 1.5
        assert 0.7 < now["width_mean"] < 1.3
        assert before["chi2_ndf"] > 1.8
