"""A conditional normalizing flow in Keras 3: spline coupling layers over a vector (the two neutrinos' momenta),
each conditioned on the other half of the vector and on an event's embedding.

`ConditionalFlow.log_prob(x, context)` is what training maximises (the neutrinos of simulated events given the
reconstructed ones); `sample(context, seed)` draws from the posterior, from which any observable (m_tt, top pT,
angles) follows. The splines are `mtt.core.flows.spline`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mtt.core.flows import coupling_masks, spline, standard_normal_log_prob


@keras.saving.register_keras_serializable(package="mtt")
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


@keras.saving.register_keras_serializable(package="mtt")
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
