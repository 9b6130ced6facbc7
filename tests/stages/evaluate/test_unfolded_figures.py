"""evaluate's figures of an unfolded spectrum: chi2 with the quoted errors and with the full covariance."""

from __future__ import annotations

import numpy as np
import pytest

from mtt.core.unfolding import Unfolded
from mtt.stages.evaluate.estimators import unfolded_figures


def test_the_diagonal_and_the_covariance_chi2_by_hand():
    # errors 1 and 2, correlation 0.5: C = [[1, 1], [1, 4]], C^-1 = [[4, -1], [-1, 1]] / 3
    covariance = np.array([[1.0, 1.0], [1.0, 4.0]])
    unfolded = Unfolded(np.array([11.0, 22.0]), np.array([1.0, 2.0]), np.zeros(2), covariance, iterations=4, ts=0.0,
                        adye_err=np.ones(2))
    figures = unfolded_figures(unfolded, np.array([10.0, 20.0]))
    # residual (1, 2): pulls (1, 1); r C^-1 r = (4 - 4 + 4) / 3 = 4 / 3, per bin 2 / 3
    assert figures == {"chi2_ndf_errors": pytest.approx(1.0), "chi2_ndf_cov": pytest.approx(2 / 3),
                       "mean_pull": pytest.approx(1.0), "iterations": 4}
