"""Metric functions against hand examples."""

from __future__ import annotations

import numpy as np
import pytest

from mtt.metrics import median_bias, resolution, width_ratio


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
