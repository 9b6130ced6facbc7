"""A conditional normalizing flow in Keras 3, standalone (Keras and numpy only, like `mtt.core.layers`: it travels
with every logged flow model as `mtt_flow_layers.py`): rational-quadratic spline couplings over a vector (the two
neutrinos' momenta), each conditioned on the other half of the vector and on an event's embedding, and the flow head.

- The spline (Durkan, Bekasov, Murray, Papamakarios, arXiv:1906.04032): monotonic on [-bound, bound], made of K
  rational-quadratic pieces, the identity outside (linear tails). Its knots come from unconstrained numbers a network
  predicts: bin widths and heights by a softmax (they fill the interval), the derivatives at the K - 1 inner knots
  by a softplus (positive; 1 at the two ends, matching the tails). Written with `keras.ops`, so the same code runs
  in numpy for tests and in a TensorFlow graph for training. tensorflow-probability 0.25 has this bijector, but it
  imports `tf_keras` (Keras 2), whose wheel requires the full `tensorflow` package next to the pinned
  `tensorflow-cpu`: not a dependency worth taking for ~100 lines.
- `ConditionalFlow.log_prob(x, context)` is what training maximises (the neutrinos of simulated events given the
  reconstructed ones); `sample(context, seed)` draws from the posterior, from which any observable (m_tt, top pT,
  angles) follows.
- `NeutrinoFlow`, the flow head, and `FlowNLL`, its loss.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

#: the Keras registration package (`mtt.core.layers.PACKAGE`)
PACKAGE = "mtt"


def _serializable(cls: type) -> type:
    """Register `cls` as mtt>Name unless registered already (the package's module and a logged model's copy of this
    file may both be imported in one process: the first registration stays)."""
    if keras.saving.get_registered_object(f"{PACKAGE}>{cls.__name__}") is None:
        keras.saving.register_keras_serializable(package=PACKAGE)(cls)
    return cls

#: the smallest bin width, height and inner derivative: keeps every piece invertible in float32
MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3


def knots(widths: Any, heights: Any, derivatives: Any, bound: float) -> tuple[Any, Any, Any, Any, Any]:
    """Knot positions and slopes from unconstrained parameters (..., K), (..., K), (..., K - 1):
    (x knots, y knots, bin widths, bin heights, slopes at the K + 1 knots), each piece at least MIN_BIN wide."""
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
    return ops.squeeze(ops.take_along_axis(values, ops.expand_dims(index, -1), axis=-1), -1)


def _bin(position: Any, edges: Any) -> Any:
    """The piece each value falls in, 0 .. K - 1 (the last edge counts to the last piece)."""
    inner = edges[..., 1:-1]
    return ops.sum(ops.cast(ops.expand_dims(position, -1) >= inner, "int32"), axis=-1)


def spline(x: Any, widths: Any, heights: Any, derivatives: Any, bound: float = 5.0,
           inverse: bool = False) -> tuple[Any, Any]:
    """y = f(x) (or x = f^-1(y) with inverse) and log|dy/dx| at the input, elementwise: x has the shape of the
    parameters without their last axis (one spline per value); the identity, with a log-determinant of 0, outside
    [-bound, bound]."""
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
    return -0.5 * ops.sum(z**2, axis=-1) - 0.5 * math.log(2 * math.pi) * ops.shape(z)[-1]



@_serializable
class SplineCoupling(keras.layers.Layer):
    """Transforms the coordinates `mask` leaves free by rational-quadratic splines whose knots a small Dense
    network predicts from the kept coordinates and the context; it starts as the identity (last layer zero)."""

    def __init__(self, mask: list[bool], bins: int = 8, bound: float = 5.0, hidden: int = 64, depth: int = 2,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask, self.bins, self.bound, self.hidden, self.depth = list(mask), bins, bound, hidden, depth
        self.kept = [i for i, keep in enumerate(self.mask) if keep]
        self.free = [i for i, keep in enumerate(self.mask) if not keep]
        self.net = [keras.layers.Dense(hidden, activation="relu") for _ in range(depth)]
        self.out = keras.layers.Dense(len(self.free) * (3 * bins - 1), kernel_initializer="zeros",
                                      bias_initializer="zeros")

    def _knots(self, kept: Any, context: Any) -> tuple[Any, Any, Any]:
        """The unconstrained widths, heights and inner slopes of every free coordinate's spline."""
        h = ops.concatenate([kept, context], axis=-1)
        for layer in self.net:
            h = layer(h)
        raw = ops.reshape(self.out(h), (-1, len(self.free), 3 * self.bins - 1))
        # an all-zero output is the identity: equal bins and slopes of 1 (softplus(x) = 1 at x = log(e - 1))
        shift = ops.log(ops.expm1(ops.convert_to_tensor(1.0 - 1e-3)))
        return raw[..., :self.bins], raw[..., self.bins:2 * self.bins], raw[..., 2 * self.bins:] + shift

    def call(self, x: Any, context: Any, inverse: bool = False) -> tuple[Any, Any]:
        """(transformed x, log|det| per event); with inverse, the way back."""
        kept = ops.take(x, self.kept, axis=-1)
        free = ops.take(x, self.free, axis=-1)
        widths, heights, slopes = self._knots(kept, context)
        moved, log_det = spline(free, widths, heights, slopes, self.bound, inverse)
        columns = {i: kept[:, n] for n, i in enumerate(self.kept)} | {i: moved[:, n] for n, i in enumerate(self.free)}
        return ops.stack([columns[i] for i in range(len(self.mask))], axis=-1), ops.sum(log_det, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mask": self.mask, "bins": self.bins, "bound": self.bound,
                "hidden": self.hidden, "depth": self.depth}


@_serializable
class ConditionalFlow(keras.layers.Layer):
    """p(x | context): a standard normal pushed through `layers` spline couplings (x -> z is the density's
    direction, z -> x the sampling one)."""

    def __init__(self, dims: int, layers: int = 4, bins: int = 8, bound: float = 5.0, hidden: int = 64,
                 depth: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dims, self.n_layers, self.bins, self.bound, self.hidden, self.depth = (dims, layers, bins, bound,
                                                                                   hidden, depth)
        self.couplings = [SplineCoupling(mask, bins, bound, hidden, depth) for mask in coupling_masks(dims, layers)]

    def log_prob(self, x: Any, context: Any) -> Any:
        """log p(x | context) per event."""
        total = ops.zeros_like(x[:, 0])
        for coupling in self.couplings:
            x, log_det = coupling(x, context)
            total = total + log_det
        return standard_normal_log_prob(x) + total

    def call(self, x: Any, context: Any) -> Any:
        return self.log_prob(x, context)

    def sample(self, context: Any, seed: int | keras.random.SeedGenerator) -> Any:
        """One draw of x per context row."""
        z = keras.random.normal((ops.shape(context)[0], self.dims), seed=seed)
        for coupling in reversed(self.couplings):
            z, _ = coupling(z, context, inverse=True)
        return z

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dims": self.dims, "layers": self.n_layers, "bins": self.bins,
                "bound": self.bound, "hidden": self.hidden, "depth": self.depth}


#: the visible objects whose momenta join the sampled neutrinos: l+, l-, the two b-jet candidates
VISIBLE = ("lplus", "lminus", "b1", "b2")
VISIBLE_FIELDS = ("pt", "eta", "phi", "e")


def visible_columns(features: list[str]) -> list[int]:
    """Indices of the visible objects' pt, eta, phi, E among `features` (the lowlevel set); a ValueError names
    the columns the flow head needs and did not find."""
    wanted = [f"{name}_{k}" for name in VISIBLE for k in VISIBLE_FIELDS]
    missing = [c for c in wanted if c not in features]
    if missing:
        raise ValueError(f"the flow head adds the sampled neutrinos to the leptons and b jets, read from the "
                         f"lowlevel columns: missing {missing}; pick a feature_set with lowlevel (or extended)")
    return [features.index(c) for c in wanted]


@_serializable
class VisibleMomenta(keras.layers.Layer):
    """Raw features -> (px, py, pz, E) of l+, l-, b1, b2 in GeV (n, 16): what the neutrinos are added to."""

    def __init__(self, indices: list[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.indices = list(indices)

    def call(self, x: Any) -> Any:
        columns = ops.take(x, self.indices, axis=-1)
        parts = []
        for i in range(len(VISIBLE)):
            pt, eta, phi, e = (columns[:, 4 * i + j] for j in range(4))
            parts += [pt * ops.cos(phi), pt * ops.sin(phi), pt * ops.sinh(eta), e]
        return ops.stack(parts, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "indices": self.indices}


def invariant_mass(p4: Any) -> Any:
    """sqrt(max(E^2 - p^2, 0)) over the last axis (px, py, pz, E)."""
    return ops.sqrt(ops.maximum(p4[..., 3] ** 2 - ops.sum(p4[..., :3] ** 2, axis=-1), 0.0))


def neutrino_p4(nu: Any) -> tuple[Any, Any]:
    """(neutrino, antineutrino) four-momenta (..., 4) of massless particles from (..., 6) px, py, pz in GeV."""
    out = []
    for i in (0, 3):
        p = nu[..., i:i + 3]
        out.append(ops.concatenate([p, ops.sqrt(ops.sum(p**2, axis=-1, keepdims=True))], axis=-1))
    return out[0], out[1]


@_serializable
class NeutrinoFlow(keras.layers.Layer):
    """The flow head: p(neutrinos | event) over the standardised (px, py, pz) of the neutrino and antineutrino.

    Its input is [context (context_dim) | visible momenta (16)]. Called plainly it passes that through (the
    training network's output; the loss, `FlowNLL`, reads the density from this layer); called with
    `sample=True` it returns m_tt in GeV from `samples` posterior draws per event, [median, draws...]: the
    inference model's output, whose first column is the point estimate every stage reads.
    """

    def __init__(self, context_dim: int, nu_mean: list[float], nu_std: list[float], shape: dict[str, Any] | None = None,
                 samples: int = 32, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context_dim, self.nu_mean, self.nu_std = context_dim, list(nu_mean), list(nu_std)
        self.shape = dict(shape or {})  # ConditionalFlow's layers, bins, bound, hidden, depth
        self.samples, self.seed = samples, seed
        self.flow = ConditionalFlow(len(self.nu_mean), **self.shape, name="conditional_flow")
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape: Any) -> None:
        dims = len(self.nu_mean)
        self.flow.log_prob(keras.KerasTensor((None, dims)), keras.KerasTensor((None, self.context_dim)))
        self.flow.built = True

    def context(self, x: Any) -> Any:
        return x[:, :self.context_dim]

    def log_prob(self, nu_scaled: Any, x: Any) -> Any:
        """log p(standardised neutrinos | event) per event (the training objective)."""
        return self.flow.log_prob(nu_scaled, self.context(x))

    def draw(self, x: Any, samples: int, seed: Any) -> Any:
        """(n, samples, 6) neutrino momenta in GeV drawn from each event's posterior."""
        context = ops.repeat(self.context(x), samples, axis=0)
        z = self.flow.sample(context, seed)
        nu = z * ops.convert_to_tensor(self.nu_std, dtype=z.dtype) + ops.convert_to_tensor(self.nu_mean, dtype=z.dtype)
        return ops.reshape(nu, (-1, samples, len(self.nu_mean)))

    def m_tt(self, x: Any, nu: Any) -> Any:
        """m_tt (n, samples) in GeV of the visible objects plus each drawn neutrino pair, times the drawn
        correction to the parton level when the flow models one (a 7th coordinate, log m_tt / m_reco)."""
        visible = ops.reshape(x[:, self.context_dim:], (-1, 1, len(VISIBLE), 4))
        nu_p4, antinu_p4 = neutrino_p4(nu[..., :6])
        m_reco = invariant_mass(ops.sum(visible, axis=2) + nu_p4 + antinu_p4)
        return m_reco * ops.exp(nu[..., 6]) if len(self.nu_mean) > 6 else m_reco

    def call(self, x: Any, sample: bool = False) -> Any:
        if not sample:
            return x
        draws = ops.sort(self.m_tt(x, self.draw(x, self.samples, self.seed_generator)), axis=-1)
        return ops.concatenate([draws[:, self.samples // 2:self.samples // 2 + 1], draws], axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "context_dim": self.context_dim, "nu_mean": self.nu_mean,
                "nu_std": self.nu_std, "shape": self.shape, "samples": self.samples, "seed": self.seed}


class FlowNLL(keras.losses.Loss):
    """-log p(standardised neutrinos | event) of the flow head (kept in-process: the saved model does not need it)."""

    def __init__(self, flow: NeutrinoFlow, **kwargs: Any) -> None:
        super().__init__(name="flow_nll", **kwargs)
        self.flow_layer = flow

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return -self.flow_layer.log_prob(ops.cast(y_true, y_pred.dtype), y_pred)


#: every custom object of this file, by its registered name
CUSTOM_OBJECTS = {f"{PACKAGE}>{cls.__name__}": cls for cls in (SplineCoupling, ConditionalFlow, VisibleMomenta,
                                                                NeutrinoFlow)}
