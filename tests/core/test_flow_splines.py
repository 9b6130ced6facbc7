"""The rational-quadratic spline: a case worked by hand, the identity, invertibility and its log-determinant."""

from __future__ import annotations

import numpy as np
import pytest

from mtt.core.flow_layers import knots, spline


def _unconstrained(widths: list[float], heights: list[float], slopes: list[float]) -> tuple[np.ndarray, ...]:
    """The network outputs that give these bin widths, heights (fractions of the interval) and inner slopes."""
    return (np.log(np.asarray(widths))[None], np.log(np.asarray(heights))[None],
            np.log(np.expm1(np.asarray(slopes) - 1e-3))[None])


def test_a_two_piece_spline_worked_by_hand() -> None:
    """Knots x = (-1, 0, 1), y = (-1, -0.5, 1), slope 1 everywhere at the knots. At x = -0.5 (xi = 1/2 in the first
    piece, s = 0.5): y = -1 + 0.5 (0.5/4 + 1/4) / (0.5 + 1/4) = -0.75, dy/dx = 0.25 (1/4 + 1/4 + 1/4) / 0.75^2 = 1/3."""
    w, h, d = _unconstrained([0.5, 0.5], [0.25, 0.75], [1.0])
    y, log_det = spline(np.array([-0.5]), w, h, d, bound=1.0)
    assert float(y[0]) == pytest.approx(-0.75, abs=2e-3)
    assert float(np.exp(log_det[0])) == pytest.approx(1 / 3, rel=5e-3)
    x_knots, y_knots, *_ = knots(w, h, d, 1.0)
    assert np.allclose(x_knots, [[-1, 0, 1]], atol=2e-3) and np.allclose(y_knots, [[-1, -0.5, 1]], atol=2e-3)


def test_equal_bins_and_unit_slopes_are_the_identity() -> None:
    x = np.linspace(-4.9, 4.9, 50)
    zeros = np.zeros((50, 8))
    y, log_det = spline(x, zeros, zeros, np.full((50, 7), np.log(np.expm1(1 - 1e-3))), bound=5.0)
    assert np.allclose(y, x, atol=1e-6) and np.allclose(log_det, 0.0, atol=1e-6)


def test_the_inverse_undoes_the_spline_and_the_log_determinants_cancel() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-6, 6, size=2000)  # some outside the interval: the identity tails
    w, h, d = rng.normal(size=(2000, 6)), rng.normal(size=(2000, 6)), rng.normal(size=(2000, 5))
    y, forward = spline(x, w, h, d, bound=5.0)
    back, inverse = spline(y, w, h, d, bound=5.0, inverse=True)
    assert np.allclose(back, x, atol=1e-5)
    assert np.allclose(forward + inverse, 0.0, atol=1e-5)


def test_the_log_determinant_is_the_slope() -> None:
    """log|dy/dx| against a central difference of the spline itself."""
    rng = np.random.default_rng(2)
    x = rng.uniform(-4.5, 4.5, size=500)
    w, h, d = rng.normal(size=(500, 8)), rng.normal(size=(500, 8)), rng.normal(size=(500, 7))
    step = 1e-5
    up, _ = spline(x + step, w, h, d)
    down, _ = spline(x - step, w, h, d)
    _, log_det = spline(x, w, h, d)
    assert np.allclose(np.exp(log_det), (up - down) / (2 * step), rtol=1e-4)


def test_the_spline_is_monotonic() -> None:
    x = np.linspace(-5, 5, 4001)
    rng = np.random.default_rng(3)
    w, h, d = (np.repeat(rng.normal(size=(1, n)), len(x), axis=0) for n in (10, 10, 9))
    y, _ = spline(x, w, h, d)
    assert np.all(np.diff(np.asarray(y)) > 0)
