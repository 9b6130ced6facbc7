"""Metric functions against hand examples."""

from __future__ import annotations

import numpy as np
import pytest

from mtt.core.metrics import (
    calibrated_resolution,
    chi2_ndf,
    fraction_within,
    learning_curve,
    mae,
    median_bias,
    per_bin,
    resolution,
    response_slope,
    rmse,
    spectrum_figures,
    wasserstein,
    width_ratio,
)


def test_a_known_gaussian_shift_gives_the_expected_bias_and_resolution():
    rng = np.random.default_rng(0)
    true = np.full(400_000, 500.0)
    pred = true * (1 + rng.normal(0.03, 0.1, true.size))  # +3% bias, 10% Gaussian resolution
    assert median_bias(pred, true) == pytest.approx(0.03, abs=1e-3)
    assert resolution(pred, true) == pytest.approx(0.1 * 0.9945, rel=1e-2)  # 68% half-width = 0.9945 sigma


def test_width_ratio_of_a_shrunken_spectrum():
    true = np.array([400.0, 500.0, 600.0, 700.0])
    pred = 550.0 + 0.5 * (true - 550.0)  # pulled halfway to the mean
    assert width_ratio(pred, true) == pytest.approx(0.5)
    assert width_ratio(true, true) == 1.0 and resolution(true, true) == 0.0 and median_bias(true, true) == 0.0


def test_rmse_mae_and_fractions_of_a_hand_example():
    true = np.array([100.0, 200.0, 400.0, 500.0])
    pred = np.array([105.0, 230.0, 400.0, 400.0])  # residuals 5, 30, 0, -100 GeV = 5%, 15%, 0%, -20%
    assert rmse(pred, true) == pytest.approx(np.sqrt((25 + 900 + 0 + 10000) / 4))
    assert mae(pred, true) == pytest.approx(135 / 4)
    assert fraction_within(pred, true, 0.1) == 0.5 and fraction_within(pred, true, 0.2) == 1.0


def test_identical_spectra_have_zero_distance_and_a_shift_gives_its_size():
    true = np.random.default_rng(1).gamma(9.0, 60.0, 5000) + 300
    edges = np.linspace(300, 1500, 25)
    assert wasserstein(true, true) == 0.0 and chi2_ndf(true, true, edges) == 0.0
    assert wasserstein(true + 20.0, true) == pytest.approx(20.0)  # W1 of a shift is the shift


def test_chi2_of_two_hand_histograms():
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    pred = np.array([0.5] * 4 + [1.5] * 6)  # counts 4, 6, 0
    true = np.array([0.5] * 6 + [1.5] * 4)  # counts 6, 4, 0: the empty bin does not count
    assert chi2_ndf(pred, true, edges) == pytest.approx((4 / 10 + 4 / 10) / 2)


def test_figures_skip_events_without_a_prediction_and_per_bin_shows_the_pull_to_the_peak():
    true = np.repeat([400.0, 600.0, 800.0], 100)
    pred = np.where(true < 500, 1.1 * true, np.where(true > 700, 0.9 * true, true))  # +10% low, -10% high
    pred[:5] = np.nan
    figures = spectrum_figures(pred, true, np.linspace(300, 900, 4))
    assert figures["fraction_reconstructed"] == pytest.approx(295 / 300) and figures["n_events"] == 295
    rows = per_bin(pred, true, np.array([300.0, 500.0, 700.0, 900.0]))
    assert [r["n_events"] for r in rows] == [95, 100, 100]
    assert [r["bias"] for r in rows] == pytest.approx([0.1, 0.0, -0.1])


def test_crps_of_a_gaussian_forecast_equals_the_closed_form():
    from scipy.stats import norm

    from mtt.core.metrics import crps_gaussian_mixture, crps_point

    y, mu, s = np.array([510.0, 300.0]), np.array([500.0, 420.0]), np.array([40.0, 60.0])
    z = (y - mu) / s
    closed = s * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))  # Gneiting & Raftery (2007)
    ours = crps_gaussian_mixture(np.ones((2, 1)), mu[:, None], s[:, None], y)
    np.testing.assert_allclose(ours, closed, rtol=1e-9)
    np.testing.assert_allclose(crps_point(np.array([500.0, 420.0]), y), [10.0, 120.0])  # the absolute error


def test_a_calibrated_forecast_has_nominal_coverage_and_a_flat_pit():
    from scipy.stats import norm

    from mtt.core.metrics import coverage, coverage_per_bin, pit_flatness

    rng = np.random.default_rng(4)
    mu = rng.uniform(350, 1200, 40_000)
    true = mu + 50 * rng.standard_normal(mu.size)  # the forecast N(mu, 50) is calibrated
    low, high = mu + 50 * norm.ppf(0.16), mu + 50 * norm.ppf(0.84)
    assert coverage(low, high, true) == pytest.approx(0.68, abs=0.01)
    per_bin = coverage_per_bin(low, high, true, np.linspace(300, 1300, 6))
    assert np.nanmax(np.abs(per_bin - 0.68)) < 0.03
    counts, chi2 = pit_flatness(norm.cdf(true, mu, 50))
    assert chi2 < 3 and counts.min() > 0.9 * counts.mean()
    _, skewed = pit_flatness(norm.cdf(true, mu, 25))  # too narrow: a U-shaped PIT
    assert skewed > 100


def test_coverage_is_nominal_per_predicted_bin_but_not_per_true_bin_for_an_exact_posterior():
    """Prior N(500, 150), measurement x = m + N(0, 100): the exact posterior is N(w x + (1 - w) 500, 83)."""
    from scipy.stats import norm

    from mtt.core.metrics import coverage_per_bin

    rng = np.random.default_rng(8)
    true = rng.normal(500, 150, 200_000)
    x = true + rng.normal(0, 100, true.size)
    w = 150**2 / (150**2 + 100**2)
    centre, width = w * x + (1 - w) * 500, np.sqrt(w) * 100
    low, high = centre + width * norm.ppf(0.16), centre + width * norm.ppf(0.84)
    edges = np.linspace(100, 900, 9)
    by_prediction = coverage_per_bin(low, high, true, edges, by=centre)
    by_truth = coverage_per_bin(low, high, true, edges)
    assert np.nanmax(np.abs(by_prediction - 0.68)) < 0.02  # calibrated wherever the prediction lies
    assert by_truth[0] < 0.45 and by_truth[-1] < 0.45 and by_truth[3] > 0.75  # tails under, bulk over


def test_a_compressed_estimate_has_its_slope_and_the_resolution_of_the_uncompressed_one():
    """pred = 200 + 0.5 true + N(0, 10 GeV) separates m_tt as well as true + N(0, 20 GeV)."""
    rng = np.random.default_rng(5)
    true = rng.uniform(400, 1000, 200_000)
    noise = rng.standard_normal(true.size)
    compressed = 200 + 0.5 * true + 10 * noise
    edges = np.arange(400.0, 1001.0, 25.0)
    assert response_slope(compressed, true, edges) == pytest.approx(0.5, abs=0.005)
    expected = resolution(true + 20 * noise, true)
    assert calibrated_resolution(compressed, true, edges) == pytest.approx(expected, rel=0.03)
    assert response_slope(true, true, edges) == pytest.approx(1.0, abs=0.005)


def test_learning_curve_recovers_a_saturating_power_law_worked_by_hand():
    """r(n) = 0.5 + 0.2 / sqrt(n / 1000): 0.6 at 4k, 0.55 at 16k, 0.52 at 100k; 0.55 needs 16k events, and
    0.5 (the limit) is never reached."""
    n = np.array([4_000, 16_000, 40_000, 100_000, 400_000])
    curve = learning_curve(n, 0.5 + 0.2 / np.sqrt(n / 1000))
    assert (curve.limit, curve.scale, curve.power) == pytest.approx((0.5, 0.2, 0.5), rel=1e-5)
    assert curve.limit_error == pytest.approx(0.0, abs=1e-6)
    assert curve.n_train_for(0.55) == pytest.approx(16_000, rel=1e-4)
    assert curve.n_train_for(0.5) == np.inf and curve.n_train_for(0.45) == np.inf
    assert curve.at(4_000) == pytest.approx(0.6, rel=1e-6)


def test_learning_curve_of_three_points_has_no_limit_error_and_two_points_are_refused():
    n = np.array([4_000, 16_000, 100_000])
    curve = learning_curve(n, 0.5 + 0.2 / np.sqrt(n / 1000))
    assert curve.limit == pytest.approx(0.5, rel=1e-4) and np.isnan(curve.limit_error)
    with pytest.raises(ValueError, match="at least 3 distinct n_train values, got \\[4000.0, 16000.0\\]"):
        learning_curve(np.array([4_000, 16_000, 16_000]), np.array([0.6, 0.55, 0.56]))
