"""Rational-quadratic spline flows (Durkan, Bekasov, Murray, Papamakarios, arXiv:1906.04032) in Keras 3 ops.

The building block of a conditional normalizing flow over the neutrinos (the nu2-Flows recipe): a monotonic
spline on [-bound, bound] made of K rational-quadratic pieces, the identity outside (linear tails). Its knots
come from unconstrained numbers a network predicts: bin widths and heights by a softmax (they fill the interval),
the derivatives at the K - 1 inner knots by a softplus (positive; 1 at the two ends, matching the tails).
Written with `keras.ops`, so the same code runs in numpy for tests and in a TensorFlow graph for training.

tensorflow-probability 0.25 has this bijector, but it imports `tf_keras` (Keras 2), whose wheel requires the full
`tensorflow` package next to the pinned `tensorflow-cpu`: not a dependency worth taking for ~100 lines.
"""

from __future__ import annotations

from typing import Any

#: the smallest bin width, height and inner derivative: keeps every piece invertible in float32
MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3


def knots(widths: Any, heights: Any, derivatives: Any, bound: float) -> tuple[Any, Any, Any, Any, Any]:
    """Knot positions and slopes from unconstrained parameters (..., K), (..., K), (..., K - 1):
    (x knots, y knots, bin widths, bin heights, slopes at the K + 1 knots), each piece at least MIN_BIN wide."""
    from keras import ops

    k = ops.shape(widths)[-1]
    w = MIN_BIN + (1 - MIN_BIN * k) * ops.softmax(widths, axis=-1)
    h = MIN_BIN + (1 - MIN_BIN * k) * ops.softmax(heights, axis=-1)
    w, h = 2 * bound * w, 2 * bound * h
    zero = ops.zeros_like(w[..., :1])
    x_knots = ops.concatenate([zero, ops.cumsum(w, axis=-1)], axis=-1) - bound
    y_knots = ops.concatenate([zero, ops.cumsum(h, axis=-1)], axis=-1) - bound
    one = ops.ones_like(w[..., :1])
    slopes = ops.concatenate([one, MIN_DERIVATIVE + ops.softplus(derivatives), one], axis=-1)
    return x_knots, y_knots, w, h, slopes


def _pick(values: Any, index: Any) -> Any:
    """values[..., index] per element (index has the shape of values without its last axis)."""
    from keras import ops

    return ops.squeeze(ops.take_along_axis(values, ops.expand_dims(index, -1), axis=-1), -1)


def _bin(position: Any, edges: Any) -> Any:
    """The piece each value falls in, 0 .. K - 1 (the last edge counts to the last piece)."""
    from keras import ops

    inner = edges[..., 1:-1]
    return ops.sum(ops.cast(ops.expand_dims(position, -1) >= inner, "int32"), axis=-1)


def spline(x: Any, widths: Any, heights: Any, derivatives: Any, bound: float = 5.0,
           inverse: bool = False) -> tuple[Any, Any]:
    """y = f(x) (or x = f^-1(y) with inverse) and log|dy/dx| at the input, elementwise: x has the shape of the
    parameters without their last axis (one spline per value); the identity, with a log-determinant of 0, outside
    [-bound, bound]."""
    from keras import ops

    x_knots, y_knots, w, h, slopes = knots(widths, heights, derivatives, bound)
    inside = ops.logical_and(x >= -bound, x <= bound)
    clipped = ops.clip(x, -bound, bound)
    k = _bin(clipped, y_knots if inverse else x_knots)
    x0, y0, wk, hk = _pick(x_knots, k), _pick(y_knots, k), _pick(w, k), _pick(h, k)
    d0, d1 = _pick(slopes, k), _pick(slopes, k + 1)
    s = hk / wk
    if inverse:
        dy = clipped - y0
        a = hk * (s - d0) + dy * (d1 + d0 - 2 * s)
        b = hk * d0 - dy * (d1 + d0 - 2 * s)
        c = -s * dy
        xi = 2 * c / (-b - ops.sqrt(ops.maximum(b * b - 4 * a * c, 0.0)))
        out = x0 + xi * wk
    else:
        xi = (clipped - x0) / wk
        out = y0 + hk * (s * xi**2 + d0 * xi * (1 - xi)) / (s + (d1 + d0 - 2 * s) * xi * (1 - xi))
    xi = ops.clip(xi, 0.0, 1.0)
    denominator = s + (d1 + d0 - 2 * s) * xi * (1 - xi)
    derivative = s**2 * (d1 * xi**2 + 2 * s * xi * (1 - xi) + d0 * (1 - xi) ** 2) / denominator**2
    log_det = ops.log(derivative)
    if inverse:
        log_det = -log_det
    return ops.where(inside, out, x), ops.where(inside, log_det, ops.zeros_like(log_det))


def coupling_masks(dims: int, layers: int) -> list[list[bool]]:
    """Which inputs each coupling layer keeps (True) and which it transforms: halves, alternating, so that after
    two layers every coordinate was transformed conditioned on the others."""
    first = [i % 2 == 0 for i in range(dims)]
    return [first if n % 2 == 0 else [not keep for keep in first] for n in range(layers)]


def standard_normal_log_prob(z: Any) -> Any:
    """log N(z; 0, 1) summed over the last axis: the flow's base density."""
    import math

    from keras import ops

    return -0.5 * ops.sum(z**2, axis=-1) - 0.5 * math.log(2 * math.pi) * ops.shape(z)[-1]
