"""Keras models for m_tt regression: preprocessing inside the model, a Dense stack, and three heads.

- Preprocessing layers reproduce the scaler fitted on train (minmax, standard, robust, quantile) and an
  optional log of momentum-like features, so a saved model takes raw features in GeV.
- Architectures: `dense` (a Dense stack on the flat features) and `set` (the objects of the `objects`
  feature set as tokens: l+, l-, the jet slots and MET, through a transformer encoder with the jets'
  padding mask and a masked mean, then the Dense stack; no positional encoding, so the jet order does not
  matter). Both take the same flat feature vector, so scaler, saved model and evaluation do not change.
- Heads: `point` (one value; loss mse, mae, huber or log-cosh), `mdn` (a mixture of K Gaussians trained by
  negative log-likelihood, Bishop 1994), `quantile` (one output per quantile, pinball loss).
- The target transform (none, log, standardize) is inverted by the inference model, which returns GeV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import keras
import numpy as np
from keras import ops

from mtt.config import TrainParams
from mtt.dataset import JET_FIELDS, LEPTON_FIELDS, LEPTON_SLOTS
from mtt.preprocessing import Scaler

PACKAGE = "mtt"


# --- preprocessing -----------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package=PACKAGE)
class AffineScale(keras.layers.Layer):
    """(x - offset) / scale per feature, after log1p of the features in `log_mask`: a fitted linear scaler."""

    def __init__(self, offset: list[float], scale: list[float], log_mask: list[bool] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.offset = [float(v) for v in offset]
        self.scale = [float(v) for v in scale]
        self.log_mask = [bool(v) for v in (log_mask or [False] * len(offset))]

    def call(self, x: Any) -> Any:
        x = _log_features(x, self.log_mask)
        return (x - ops.convert_to_tensor(self.offset, x.dtype)) / ops.convert_to_tensor(self.scale, x.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "offset": self.offset, "scale": self.scale, "log_mask": self.log_mask}


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantileScale(keras.layers.Layer):
    """Piecewise-linear map of each feature from its train quantiles to [0, 1] (QuantileTransformer, uniform)."""

    def __init__(self, quantiles: list[list[float]], references: list[float], log_mask: list[bool] | None = None,
                 unscaled: list[bool] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.quantiles = [[float(v) for v in column] for column in quantiles]
        self.references = [float(v) for v in references]
        self.log_mask = [bool(v) for v in (log_mask or [False] * len(quantiles))]
        self.unscaled = [bool(v) for v in (unscaled or [False] * len(quantiles))]

    def call(self, x: Any) -> Any:
        x = _log_features(x, self.log_mask)
        references = ops.convert_to_tensor(self.references, x.dtype)
        columns = []
        for j, knots in enumerate(self.quantiles):
            if self.unscaled[j]:  # a padding mask stays 0/1
                columns.append(x[:, j])
                continue
            xp = ops.convert_to_tensor(knots, x.dtype)
            # sklearn averages interpolation from both ends so that repeated quantiles map to their middle
            forward = _interp(x[:, j], xp, references)
            backward = -_interp(-x[:, j], -ops.flip(xp, 0), -ops.flip(references, 0))
            columns.append(0.5 * (forward + backward))
        return ops.stack(columns, axis=1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "quantiles": self.quantiles, "references": self.references,
                "log_mask": self.log_mask, "unscaled": self.unscaled}


def _log_features(x: Any, log_mask: list[bool]) -> Any:
    if not any(log_mask):
        return x
    mask = ops.convert_to_tensor(log_mask)
    return ops.where(mask, ops.log1p(ops.maximum(x, 0.0)), x)


def _interp(x: Any, xp: Any, fp: Any) -> Any:
    """np.interp for a 1-D tensor: linear between knots, clamped to the end values outside."""
    n = xp.shape[0]
    index = ops.clip(ops.searchsorted(xp, x, side="right"), 1, n - 1)
    x0, x1 = ops.take(xp, index - 1), ops.take(xp, index)
    f0, f1 = ops.take(fp, index - 1), ops.take(fp, index)
    width = ops.where(x1 > x0, x1 - x0, ops.ones_like(x1))
    value = f0 + (ops.clip(x, x0, x1) - x0) / width * (f1 - f0)
    return ops.where(x <= xp[0], fp[0], ops.where(x >= xp[n - 1], fp[n - 1], value))


def preprocessing_layer(scaler: Scaler) -> keras.layers.Layer:
    """The Keras layer that applies a fitted scaler (after log1p of the features in its log mask), passing its
    `unscaled` columns (padding masks) through unchanged."""
    log_mask = list(scaler.log_mask)
    if scaler.kind in ("minmax", "standard", "robust"):
        offset, scale = scaler.affine()  # 0 and 1 for the unscaled columns
        return AffineScale(offset.tolist(), scale.tolist(), log_mask, name=f"scale_{scaler.kind}")
    if scaler.kind == "quantile":
        return QuantileScale(np.asarray(scaler.state["quantiles_"]).T.tolist(),
                             np.asarray(scaler.state["references_"]).tolist(), log_mask, list(scaler.unscaled),
                             name="scale_quantile")
    raise ValueError(f"unknown scaler {scaler.kind!r}; allowed: minmax, standard, robust, quantile")


# --- target transform --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetTransform:
    """m_tt (GeV) <-> the regression target: none, log, or standardize (with train mean and std)."""

    kind: str = "none"
    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def fit(cls, kind: str, m_tt: np.ndarray) -> TargetTransform:
        if kind not in ("none", "log", "standardize"):
            raise ValueError(f"unknown target transform {kind!r}; allowed: none, log, standardize")
        if kind == "standardize":
            return cls(kind, float(np.mean(m_tt)), float(np.std(m_tt)))
        return cls(kind)

    def forward(self, m_tt: np.ndarray) -> np.ndarray:
        if self.kind == "log":
            return np.log(m_tt)
        if self.kind == "standardize":
            return (m_tt - self.mean) / self.std
        return np.asarray(m_tt)

    def inverse(self, y: Any) -> Any:
        """Transformed values -> GeV (works on numpy arrays and Keras tensors)."""
        if self.kind == "log":
            return ops.exp(y)
        if self.kind == "standardize":
            return y * self.std + self.mean
        return y


@keras.saving.register_keras_serializable(package=PACKAGE)
class ToGeV(keras.layers.Layer):
    """The inference output: head outputs in the transformed target space -> m_tt in GeV."""

    def __init__(self, head: str, kind: str = "none", mean: float = 0.0, std: float = 1.0, components: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.head, self.kind, self.mean, self.std, self.components = head, kind, float(mean), float(std), components

    def call(self, y: Any) -> Any:
        transform = TargetTransform(self.kind, self.mean, self.std)
        if self.head != "mdn":
            return transform.inverse(y)
        weights, mu, sigma = mdn_parameters(y, self.components)
        if self.kind == "log":  # mean of a log-normal mixture
            mean = ops.sum(weights * ops.exp(mu + 0.5 * sigma**2), axis=-1, keepdims=True)
        else:
            mean = transform.inverse(ops.sum(weights * mu, axis=-1, keepdims=True))
        return mean

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "head": self.head, "kind": self.kind, "mean": self.mean, "std": self.std,
                "components": self.components}


# --- heads and losses --------------------------------------------------------------------------------

SIGMA_MIN = 1e-4
LOG_2PI = math.log(2.0 * math.pi)


def mdn_parameters(output: Any, components: int) -> tuple[Any, Any, Any]:
    """Split an MDN output (logits, means, raw widths) into weights, means and sigmas (> SIGMA_MIN)."""
    logits = output[..., :components]
    mu = output[..., components:2 * components]
    sigma = ops.softplus(output[..., 2 * components:]) + SIGMA_MIN
    return ops.softmax(logits, axis=-1), mu, sigma


@keras.saving.register_keras_serializable(package=PACKAGE)
class MixtureNLL(keras.losses.Loss):
    """Negative log-likelihood of the target under the predicted Gaussian mixture."""

    def __init__(self, components: int, name: str = "mdn_nll", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.components = components

    def call(self, y_true: Any, y_pred: Any) -> Any:
        k = self.components
        log_weights = ops.log_softmax(y_pred[..., :k], axis=-1)
        mu = y_pred[..., k:2 * k]
        sigma = ops.softplus(y_pred[..., 2 * k:]) + SIGMA_MIN
        y = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1, 1))
        log_normal = -0.5 * ((y - mu) / sigma) ** 2 - ops.log(sigma) - 0.5 * LOG_2PI
        return -ops.logsumexp(log_weights + log_normal, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "components": self.components}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Pinball(keras.losses.Loss):
    """Pinball (quantile) loss summed over the predicted quantiles."""

    def __init__(self, quantiles: list[float], name: str = "pinball", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.quantiles = [float(q) for q in quantiles]

    def call(self, y_true: Any, y_pred: Any) -> Any:
        q = ops.convert_to_tensor(self.quantiles, y_pred.dtype)
        error = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1, 1)) - y_pred
        return ops.sum(ops.maximum(q * error, (q - 1.0) * error), axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "quantiles": self.quantiles}


POINT_LOSSES = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "huber": "huber", "log_cosh": "log_cosh"}


# --- the set architecture: objects as tokens ----------------------------------------------------------

#: what a token holds: momentum, log energy, b tag (jets), muon flag (leptons), then its type, one-hot
TOKEN_FIELDS = ("px", "py", "pz", "loge", "btag", "muon")
TOKEN_TYPES = ("lplus", "lminus", "jet", "met")
#: the MET token's fields
MET_FIELDS = {"px": "met_px", "py": "met_py"}


@dataclass(frozen=True)
class TokenLayout:
    """Where each token field sits in the flat feature vector (`features`, then a 0 and a 1 column appended):
    `columns` (tokens x token width) and `present` (per token: its mask column, or the 1 column) index that
    extended vector; `globals` indexes the per-event features that are no token field."""

    columns: tuple[tuple[int, ...], ...]
    present: tuple[int, ...]
    globals: tuple[int, ...]

    @classmethod
    def of(cls, features: list[str]) -> TokenLayout:
        """The layout of l+, l-, every jet slot (by its `_mask` column) and MET among `features`."""
        index = {name: i for i, name in enumerate(features)}
        zero, one = len(features), len(features) + 1
        jets = _jet_slots(features)
        tokens: list[tuple[str, dict[str, str]]] = [
            *((slot, {f: f"{slot}_{f}" for f in LEPTON_FIELDS}) for slot in LEPTON_SLOTS),
            *(("jet", {f: f"{jet}_{f}" for f in JET_FIELDS}) for jet in jets), ("met", MET_FIELDS)]
        needed = [column for _, columns in tokens for column in columns.values()]
        missing = [c for c in needed if c not in index] + ([] if jets else ["jet0_mask (no jet slot)"])
        if missing:
            raise ValueError(f"the set architecture needs the columns of the `objects` feature set (l+, l-, jet "
                             f"slots with their mask, MET): missing {missing}; pick a feature_set with objects "
                             "(objects, or e.g. objects+ellipse)")
        rows = tuple(tuple(index[columns[f]] if f in columns else zero for f in TOKEN_FIELDS)
                     + tuple(one if kind == t else zero for t in TOKEN_TYPES) for kind, columns in tokens)
        present = tuple(index[columns["mask"]] if "mask" in columns else one for _, columns in tokens)
        used = set(needed)
        return cls(rows, present, tuple(i for i, name in enumerate(features) if name not in used))

    @property
    def width(self) -> int:
        return len(TOKEN_FIELDS) + len(TOKEN_TYPES)


def _jet_slots(features: list[str]) -> list[str]:
    """The jet slots among `features`: jet0, jet1, ... (each named by its mask column)."""
    suffix = "_mask"
    return [name.removesuffix(suffix) for name in features
            if name.startswith("jet") and name.endswith(suffix) and name[3:-len(suffix)].isdigit()]


@keras.saving.register_keras_serializable(package=PACKAGE)
class ObjectTokens(keras.layers.Layer):
    """Flat (scaled) features -> (tokens, mask, globals): one token per lepton, jet slot and MET, each
    [px, py, pz, loge, btag, muon, type one-hot] with zeros for fields it lacks; a padded jet slot (mask 0)
    is all zeros; the per-event features that are no token field (n_jets, n_bjets, ...) are the globals."""

    def __init__(self, features: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.features = [str(name) for name in features]
        self.token_layout = TokenLayout.of(self.features)

    def call(self, x: Any) -> tuple[Any, Any, Any]:
        layout = self.token_layout
        extended = ops.concatenate([x, ops.zeros_like(x[:, :1]), ops.ones_like(x[:, :1])], axis=1)
        fields = ops.take(extended, [i for row in layout.columns for i in row], axis=1)
        mask = ops.cast(ops.take(extended, list(layout.present), axis=1) > 0.5, x.dtype)
        tokens = ops.reshape(fields, (-1, len(layout.present), layout.width)) * ops.expand_dims(mask, -1)
        globals_ = ops.take(x, list(layout.globals), axis=1) if layout.globals else x[:, :0]
        return tokens, mask, globals_

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "features": self.features}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedMean(keras.layers.Layer):
    """Mean over the present tokens only: padded slots never reach the event summary."""

    def call(self, inputs: list[Any]) -> Any:
        tokens, mask = inputs
        summed = ops.sum(ops.where(ops.expand_dims(mask, -1) > 0.5, tokens, 0.0), axis=1)
        return summed / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)


def _encoder_block(h: Any, mask: Any, spec: ModelSpec, i: int) -> Any:
    """Pre-norm transformer block: masked multi-head self-attention and a feed-forward net, each residual."""
    a = keras.layers.LayerNormalization(name=f"attention_norm_{i}")(h)
    a = keras.layers.MultiHeadAttention(spec.set_heads, spec.set_dim // spec.set_heads, name=f"attention_{i}")(
        a, a, value_mask=mask)  # no token attends to a padded jet slot
    h = keras.layers.Add(name=f"attention_residual_{i}")([h, a])
    f = keras.layers.LayerNormalization(name=f"feed_forward_norm_{i}")(h)
    f = keras.layers.Dense(2 * spec.set_dim, activation=spec.activation, name=f"feed_forward_{i}")(f)
    f = keras.layers.Dense(spec.set_dim, name=f"feed_forward_out_{i}")(f)
    return keras.layers.Add(name=f"feed_forward_residual_{i}")([h, f])


def set_encoder(x: Any, features: list[str], spec: ModelSpec, seed: int) -> Any:
    """Scaled features -> [masked mean of the encoded objects, globals]: invariant under jet-slot order."""
    split = ObjectTokens(features, name="object_tokens")
    tokens, mask, globals_ = split(x)
    h = keras.layers.Dense(spec.set_dim, kernel_initializer=keras.initializers.GlorotUniform(seed + 200),
                           name="token_embedding")(tokens)
    for i in range(spec.set_layers):
        h = _encoder_block(h, mask, spec, i)
    pooled = MaskedMean(name="masked_mean")([keras.layers.LayerNormalization(name="set_norm")(h), mask])
    if not split.token_layout.globals:
        return pooled
    return keras.layers.Concatenate(name="objects_and_globals")([pooled, globals_])


# --- the network -------------------------------------------------------------------------------------

ARCHITECTURES = ("dense", "set")
#: ModelSpec fields whose TrainParams name differs
PARAM_NAMES = {"components": "mdn_components"}


@dataclass(frozen=True)
class ModelSpec:
    """Architecture and head of a regressor (the seed baseline: 4 x 100 ReLU, point head, MSE)."""

    depth: int = 4
    width: int = 100
    activation: str = "relu"
    batch_norm: bool = False
    dropout: float = 0.0
    residual: bool = False
    head: str = "point"
    loss: str = "mse"
    components: int = 5
    quantiles: tuple[float, ...] = (0.16, 0.5, 0.84)
    architecture: str = "dense"
    #: the set architecture: token width, attention blocks, heads
    set_dim: int = 64
    set_layers: int = 2
    set_heads: int = 4

    @classmethod
    def of(cls, params: TrainParams) -> ModelSpec:
        """The architecture and head that the train params describe (each field from its train param)."""
        values = {f.name: getattr(params, PARAM_NAMES.get(f.name, f.name)) for f in fields(cls)}
        return cls(**{**values, "quantiles": tuple(values["quantiles"])})

    def outputs(self) -> int:
        return {"point": 1, "mdn": 3 * self.components, "quantile": len(self.quantiles)}[self.head]

    def loss_function(self) -> Any:
        if self.head == "mdn":
            return MixtureNLL(self.components)
        if self.head == "quantile":
            return Pinball(list(self.quantiles))
        if self.loss not in POINT_LOSSES:
            raise ValueError(f"unknown loss {self.loss!r} for the point head; allowed: {', '.join(POINT_LOSSES)}")
        return POINT_LOSSES[self.loss]

    def check(self) -> None:
        """Stop on an unknown head or architecture before any layer is built."""
        if self.head not in ("point", "mdn", "quantile"):
            raise ValueError(f"unknown head {self.head!r}; allowed: point, mdn, quantile")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; allowed: {', '.join(ARCHITECTURES)}")


def dense_stack(x: Any, spec: ModelSpec, seed: int) -> Any:
    """`depth` Dense layers of `width` with the activation, optional batch norm, dropout and residuals."""
    for i in range(spec.depth):
        dense = keras.layers.Dense(spec.width, kernel_initializer=keras.initializers.GlorotUniform(seed + i),
                                   name=f"dense_{i}")
        y = dense(x)
        if spec.batch_norm:
            y = keras.layers.BatchNormalization(name=f"batch_norm_{i}")(y)
        y = keras.layers.Activation(spec.activation, name=f"{spec.activation}_{i}")(y)
        if spec.dropout > 0:
            y = keras.layers.Dropout(spec.dropout, seed=seed + i, name=f"dropout_{i}")(y)
        x = keras.layers.Add(name=f"residual_{i}")([x, y]) if spec.residual and i > 0 else y
    return x


def build_network(features: int | list[str], spec: ModelSpec, preprocessing: keras.layers.Layer | None = None,
                  seed: int = 0) -> keras.Model:
    """Raw features -> (preprocessing) -> (set encoder) -> Dense stack -> head output in the transformed
    target space. `features`: their names (the set architecture reads them), or only their number."""
    spec.check()
    names = list(features) if not isinstance(features, int) else None
    if spec.architecture == "set" and names is None:
        raise ValueError("the set architecture needs the feature names, not only their number")
    inputs = keras.Input((len(names) if names is not None else features,), name="features")
    x = preprocessing(inputs) if preprocessing is not None else inputs
    if spec.architecture == "set":
        x = set_encoder(x, names, spec, seed)
    x = dense_stack(x, spec, seed)
    outputs = keras.layers.Dense(spec.outputs(), kernel_initializer=keras.initializers.GlorotUniform(seed + 99),
                                 name=f"{spec.head}_head")(x)
    return keras.Model(inputs, outputs, name="mtt_regressor")


def inference_model(network: keras.Model, spec: ModelSpec, target: TargetTransform) -> keras.Model:
    """Raw features -> m_tt in GeV (the point value, the mixture mean, or every quantile)."""
    gev = ToGeV(spec.head, target.kind, target.mean, target.std, spec.components, name="to_gev")(network.output)
    return keras.Model(network.input, gev, name="mtt_inference")
