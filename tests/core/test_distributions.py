"""Per-event mixtures in GeV: known mixtures' samples, modes, medians, spectra, and the head's parametrisation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from mtt.core.distributions import Mixture

#: one event: 30% N(400, 40), 70% N(650, 80) (GeV, no transform)
HAND = Mixture(np.array([[0.3, 0.7]]), np.array([[400.0, 650.0]]), np.array([[40.0, 80.0]]))


def hand_pdf(m):
    return 0.3 * stats.norm.pdf(m, 400, 40) + 0.7 * stats.norm.pdf(m, 650, 80)


def test_samples_follow_a_known_two_component_mixture():
    many = Mixture(np.repeat(HAND.weights, 20_000, axis=0), np.repeat(HAND.mu, 20_000, axis=0),
                   np.repeat(HAND.sigma, 20_000, axis=0))
    draws = many.sample(np.random.default_rng(3))
    cdf = lambda m: 0.3 * stats.norm.cdf(m, 400, 40) + 0.7 * stats.norm.cdf(m, 650, 80)  # noqa: E731
    assert stats.kstest(draws, cdf).pvalue > 0.01
    assert np.array_equal(draws, many.sample(np.random.default_rng(3)))  # seeded


def test_mode_is_the_maximum_and_median_the_half_point():
    best = optimize.minimize_scalar(lambda m: -hand_pdf(m), bounds=(500, 800), method="bounded").x
    assert HAND.mode()[0] == pytest.approx(best, abs=0.05)
    assert HAND.cdf(HAND.median())[0] == pytest.approx(0.5, abs=1e-9)
    assert np.exp(HAND.log_pdf(np.array([500.0])))[0] == pytest.approx(hand_pdf(500.0), rel=1e-12)
    assert HAND.mean_gev()[0] == pytest.approx(0.3 * 400 + 0.7 * 650)


def test_log_transform_gives_a_normalised_density_and_lognormal_mean():
    mix = Mixture(np.array([[1.0]]), np.array([[np.log(500.0)]]), np.array([[0.2]]), kind="log")
    area, _ = integrate.quad(lambda m: np.exp(mix.log_pdf(np.array([m])))[0], 1, 5000, points=[500])
    assert area == pytest.approx(1.0, abs=1e-6)
    assert mix.mean_gev()[0] == pytest.approx(500 * np.exp(0.02))
    assert mix.median()[0] == pytest.approx(500.0, rel=1e-9)
    assert mix.mode()[0] == pytest.approx(500 * np.exp(-0.04), rel=1e-3)  # lognormal mode exp(mu - s^2)
    assert mix.gaussian_in_gev() is None


def test_standardized_target_maps_back_to_gev():
    mix = Mixture(np.array([[1.0]]), np.array([[0.5]]), np.array([[0.25]]), kind="standardize", mean=500, std=200)
    means, widths = mix.gaussian_in_gev()
    assert means[0, 0] == pytest.approx(600.0) and widths[0, 0] == pytest.approx(50.0)
    assert mix.quantile(0.84)[0] == pytest.approx(600 + 50 * stats.norm.ppf(0.84), rel=1e-9)


def test_expected_spectrum_is_each_events_probability_per_bin():
    edges = np.array([300.0, 500.0, 700.0, 900.0])
    expected = HAND.expected_spectrum(edges)
    by_hand = [integrate.quad(hand_pdf, lo, hi)[0] for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    np.testing.assert_allclose(expected, by_hand, rtol=1e-9)


def test_from_head_reads_the_output_as_the_keras_head_does():
    from mtt.core.model import mdn_parameters

    output = np.random.default_rng(0).normal(size=(5, 9))
    mix = Mixture.from_head(output, 3)
    weights, mu, sigma = (np.asarray(t) for t in mdn_parameters(output.astype(np.float32), 3))
    np.testing.assert_allclose(mix.weights, weights, rtol=1e-5)
    np.testing.assert_allclose(mix.mu, mu, rtol=1e-6)
    np.testing.assert_allclose(mix.sigma, sigma, rtol=1e-5)


def test_likelihood_maximum_undoes_an_exponential_prior_by_hand():
    """Posterior N(600, 100) under a prior exp(-m / 100): the likelihood N(600, 100) / prior peaks at
    mu + sigma^2 / lambda = 600 + 100 = 700 GeV, while the posterior mode stays at 600."""
    mix = Mixture(np.array([[1.0], [1.0]]), np.array([[600.0], [450.0]]), np.array([[100.0], [50.0]]))
    grid = np.arange(300.0, 1500.0, 1.0)
    found = mix.likelihood_maximum(grid, -grid / 100.0)
    np.testing.assert_allclose(found, [700.0, 475.0], atol=1.0)
    np.testing.assert_allclose(mix.mode(), [600.0, 450.0], atol=1.0)
    # a flat prior: the likelihood maximum is the mode
    np.testing.assert_allclose(mix.likelihood_maximum(grid, np.zeros_like(grid)), [600.0, 450.0], atol=1.0)


def test_most_probable_within_centres_the_window_on_a_lognormal_by_hand():
    """Symmetric in log m: |m - m_tt| / m_tt <= t is log m_tt in [log m - log(1 + t), log m - log(1 - t)],
    most probable when centred on mu, so m = 500 sqrt(1 - t^2) (497.49 GeV for t = 0.1)."""
    mix = Mixture(np.array([[1.0]]), np.array([[np.log(500.0)]]), np.array([[0.15]]), kind="log")
    assert mix.most_probable_within(0.1)[0] == pytest.approx(500 * np.sqrt(1 - 0.01), rel=2e-3)


def test_most_probable_within_weighs_a_spike_by_its_probability_not_its_height():
    """30% in a 2 GeV spike at 400, 70% in N(650, 40): the mode is the spike, but a +-10% window holds at
    most 0.3 there and about 0.6 around 650 GeV, where a direct maximisation of the window's probability
    puts it."""
    mix = Mixture(np.array([[0.3, 0.7]]), np.array([[400.0, 650.0]]), np.array([[2.0, 40.0]]))
    cdf = lambda m: 0.3 * stats.norm.cdf(m, 400, 2) + 0.7 * stats.norm.cdf(m, 650, 40)  # noqa: E731
    best = optimize.minimize_scalar(lambda m: -(cdf(m / 0.9) - cdf(m / 1.1)), bounds=(550, 750),
                                    method="bounded").x
    assert mix.mode()[0] == pytest.approx(400.0, abs=0.1)
    assert mix.most_probable_within(0.1)[0] == pytest.approx(best, rel=3e-3)
    assert cdf(best / 0.9) - cdf(best / 1.1) > 0.6 > 0.3 + 1e-3


def test_most_probable_within_refuses_a_tolerance_outside_0_1():
    with pytest.raises(ValueError, match="tolerance must be in"):
        HAND.most_probable_within(1.0)


def test_most_probable_within_stays_positive_for_a_mixture_reaching_below_zero():
    """An untrained head's mixture can put probability below 0 GeV: the search starts at 1 GeV instead."""
    mix = Mixture(np.array([[1.0]]), np.array([[50.0]]), np.array([[100.0]]))
    found = mix.most_probable_within(0.1)[0]
    assert np.isfinite(found) and found >= 1.0


def test_draws_read_like_a_mixture_worked_by_hand():
    from mtt.core.distributions import Draws

    draws = Draws.of(np.array([[500.0, 300.0, 400.0, 410.0, 420.0], [1000.0, 1000.0, 1000.0, 1000.0, 2000.0]]))
    assert draws.median().tolist() == [410.0, 1000.0] and draws.mean_gev().tolist() == [406.0, 1200.0]
    assert draws.cdf(np.array([405.0, 999.0])).tolist() == [0.4, 0.0]  # the PIT values
    # within +-10% of 400, 410 or 420: the three of them (410/1.1 = 372.7 .. 410/0.9 = 455.6); 500 holds 3 too
    # (454.5 .. 555.6: 500 only): 400 is the first with three
    assert draws.most_probable_within(0.1).tolist() == [400.0, 1000.0]
    assert draws.expected_spectrum(np.array([0.0, 450.0, 1500.0, 2500.0])).tolist() == [0.8, 0.2 + 0.8, 0.2]
    one = draws.sample(np.random.default_rng(0))
    assert one[0] in draws.values[0] and one[1] in draws.values[1]


def test_pdf_is_the_exponential_of_log_pdf_for_many_components():
    rng = np.random.default_rng(3)
    weights = rng.dirichlet(np.ones(25), size=40)
    mix = Mixture(weights, rng.normal(6.3, 0.3, (40, 25)), rng.uniform(1e-3, 0.4, (40, 25)), kind="log")
    grid = np.geomspace(200.0, 3000.0, 300)[None, :].repeat(40, axis=0)
    assert mix.pdf(grid) == pytest.approx(np.exp(mix.log_pdf(grid)), rel=1e-10, abs=1e-300)


def test_mode_finds_a_narrow_peak_beside_a_broad_one():
    mix = Mixture(np.array([[0.5, 0.5]]), np.array([[400.0, 900.0]]), np.array([[150.0, 5.0]]))
    assert mix.mode()[0] == pytest.approx(900.0, abs=0.05)


@pytest.mark.parametrize("kind", ["none", "standardize", "log"])
def test_log_pdf_folds_the_components_in_order(kind):
    """The same bits as adding each point's components left to right in log space (what the committed figures
    were made with), for a grid per event and for one value per event."""
    rng = np.random.default_rng(5)
    centre, spread = {"none": (700.0, 150.0), "standardize": (0.0, 1.0), "log": (6.5, 0.3)}[kind]
    mix = Mixture(rng.dirichlet(np.ones(25), size=30), rng.normal(centre, spread, (30, 25)),
                  rng.uniform(0.05, 0.5, (30, 25)) * spread, kind=kind, mean=700.0, std=250.0)
    for m in (np.geomspace(300.0, 2000.0, 50)[None, :].repeat(30, axis=0), rng.uniform(300.0, 2000.0, 30)):
        y = mix.to_target(m)[..., None]
        weights, mu, sigma = (a[:, None, :] if m.ndim == 2 else a for a in (mix.weights, mix.mu, mix.sigma))
        z = (y - mu) / sigma
        terms = np.log(np.maximum(weights, 1e-300)) - 0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
        expected = np.logaddexp.reduce(terms, axis=-1) + np.log(mix.jacobian(m))
        np.testing.assert_array_equal(mix.log_pdf(m), expected)
