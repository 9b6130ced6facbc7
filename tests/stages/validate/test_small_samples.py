"""Checks that stay quiet on small samples for statistical reasons, and still see real faults on large ones."""

from __future__ import annotations

import numpy as np

from mtt.stages.validate.params import ScalingParams, ValidateParams
from mtt.stages.validate.profile import feature_profile
from mtt.stages.validate.scaling import allowed_range
from mtt.stages.validate.suites import drift_expectations


def test_an_outside_rate_measured_on_few_train_events_carries_its_uncertainty():
    """2 of 37 events beyond |z| = 5 in a tail that 180 train events never reached: allowed; 2 of 3,700 on a
    100k-event train sample stays within the usual bound."""
    params = ScalingParams()
    _, _, mostly = allowed_range("standard", params, n_train=180, n=37, train_outside=0.0)
    assert 1 - mostly > 2 / 37
    _, _, mostly_large = allowed_range("standard", params, n_train=100_000, n=37_000, train_outside=0.0)
    assert 1 - mostly_large < 0.01


def test_the_kl_check_needs_enough_events_per_bin():
    """A padded jet column (70% zeros): no KL expectation for 40 events, one for 5,000."""
    rng = np.random.default_rng(1)
    values = np.where(rng.random(20_000) < 0.7, 0.0, rng.normal(0, 50, 20_000))
    drift = ValidateParams().drift
    profile = {"features": {"jet2_px": feature_profile(values, list(drift.quantiles), drift.bins)}}
    kinds = [type(e).__name__ for e in drift_expectations(profile, 40, ValidateParams())]
    assert "ExpectColumnKLDivergenceToBeLessThan" not in kinds and "ExpectColumnMeanToBeBetween" in kinds
    kinds = [type(e).__name__ for e in drift_expectations(profile, 5_000, ValidateParams())]
    assert "ExpectColumnKLDivergenceToBeLessThan" in kinds
