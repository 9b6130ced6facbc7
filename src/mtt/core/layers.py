"""The custom Keras objects of the m_tt models, standalone: this file imports Keras and numpy only, never `mtt`.

It is the one definition of every custom layer and loss (`mtt.core.model` imports them from here), and the same file
travels with every model logged to MLflow (`mtt.core.registry` copies it into the model's `code/` folder as
`mtt_layers.py` and names it the model's pyfunc `loader_module`). So `mlflow.pyfunc.load_model(...)` loads a
logged model in an environment with only the logged requirements installed, without this package.

`AffineScale`, `QuantileScale`: the scaler fitted on train, inside the model; `ToGeV`: head outputs -> m_tt in GeV;
`EventSymmetry`: the rotation about the beam and the mirror in z; `ObjectTokens`, `MaskedMean`: the set architecture;
`MixtureNLL`, `Pinball`, `MemberMean`: the MDN, quantile and ensemble losses; `_load_pyfunc`: MLflow's entry point.
The flow head's layers travel beside it (`mtt.core.flow_layers`, shipped as `mtt_flow_layers.py`).
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

#: the Keras registration package: objects are saved as "mtt>AffineScale", ...
PACKAGE = "mtt"


def _serializable(cls: type) -> type:
    """Register `cls` with Keras as mtt>Name, unless it is registered already: when a logged model's copy of this
    file is loaded in a process that imported `mtt.core.layers` too, the first registration stays (one class per
    name in the process); the copy loads its model with its own classes (`_load_pyfunc`)."""
    if keras.saving.get_registered_object(f"{PACKAGE}>{cls.__name__}") is None:
        keras.saving.register_keras_serializable(package=PACKAGE)(cls)
    return cls


# --- preprocessing -----------------------------------------------------------------------------------


@_serializable
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


@_serializable
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


# --- target transform --------------------------------------------------------------------------------


def target_to_gev(y: Any, kind: str, mean: float = 0.0, std: float = 1.0) -> Any:
    """Regression-target values -> m_tt in GeV (numpy arrays and Keras tensors): the inverse of the transform
    `kind` (none, log, standardize) that `mtt.core.model.TargetTransform` fits; here, for the shipped loader."""
    if kind == "log":
        return ops.exp(y)
    if kind == "standardize":
        return y * std + mean
    return y


@_serializable
class ToGeV(keras.layers.Layer):
    """The inference output: head outputs in the transformed target space -> m_tt in GeV."""

    def __init__(self, head: str, kind: str = "none", mean: float = 0.0, std: float = 1.0, components: int = 1,
                 members: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.head, self.kind, self.mean, self.std, self.components = head, kind, float(mean), float(std), components
        self.members = int(members)

    def call(self, y: Any) -> Any:
        y = combine_members(y, self.head, self.components, self.members)
        if self.head != "mdn":
            return target_to_gev(y, self.kind, self.mean, self.std)
        weights, mu, sigma = mdn_parameters(y, self.components * self.members)
        if self.kind == "log":  # mean of a log-normal mixture
            return ops.sum(weights * ops.exp(mu + 0.5 * sigma**2), axis=-1, keepdims=True)
        return target_to_gev(ops.sum(weights * mu, axis=-1, keepdims=True), self.kind, self.mean, self.std)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "head": self.head, "kind": self.kind, "mean": self.mean, "std": self.std,
                "components": self.components, "members": self.members}


# --- heads and losses --------------------------------------------------------------------------------

SIGMA_MIN = 1e-4
LOG_2PI = math.log(2.0 * math.pi)


def mdn_parameters(output: Any, components: int) -> tuple[Any, Any, Any]:
    """Split an MDN output (logits, means, raw widths) into weights, means and sigmas (> SIGMA_MIN)."""
    logits = output[..., :components]
    mu = output[..., components:2 * components]
    sigma = ops.softplus(output[..., 2 * components:]) + SIGMA_MIN
    return ops.softmax(logits, axis=-1), mu, sigma


def member_outputs(output: Any, members: int) -> list[Any]:
    """An ensemble's output split into its members' head outputs (side by side, equal widths)."""
    width = output.shape[-1] // members
    return [output[..., i * width:(i + 1) * width] for i in range(members)]


def combine_members(output: Any, head: str, components: int, members: int) -> Any:
    """An ensemble's output (its members' head outputs side by side) -> one head output: for an MDN the mixture
    of the members' mixtures with weight 1/members each (every member's log-weights normalised, so the softmax
    over all members * components logits gives each member its share), else the members' mean."""
    if members == 1:
        return output
    parts = member_outputs(output, members)
    if head != "mdn":
        return ops.mean(ops.stack(parts, axis=0), axis=0)
    k = components
    return ops.concatenate([ops.log_softmax(p[..., :k], axis=-1) for p in parts] + [p[..., k:2 * k] for p in parts]
                           + [p[..., 2 * k:] for p in parts], axis=-1)


@_serializable
class MemberMean(keras.losses.Loss):
    """An ensemble's loss: the mean of its members' losses, each on its own slice of the output. No gradient
    crosses between members, so they train as independent networks, in one fit."""

    def __init__(self, loss: Any, members: int, name: str = "member_mean", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.loss = loss if isinstance(loss, keras.losses.Loss) else keras.losses.get(loss)
        self.members = int(members)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        per_event = self.loss.call if isinstance(self.loss, keras.losses.Loss) else self.loss
        losses = [per_event(y_true, part) for part in member_outputs(y_pred, self.members)]
        return ops.mean(ops.stack(losses, axis=0), axis=0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "loss": keras.losses.serialize(self.loss), "members": self.members}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MemberMean:
        return cls(**{**config, "loss": keras.losses.deserialize(config["loss"])})


@_serializable
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


@_serializable
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


# --- augmentation: the symmetries of the collision ---------------------------------------------------


@_serializable
class EventSymmetry(keras.layers.Layer):
    """In training only, each event turned about the beam by a random angle (`rotate`: azimuths shifted, px/py
    pairs rotated) and mirrored in z with probability 1/2 (`reflect`: eta and pz change sign). pp collisions and
    the detector are symmetric under both and m_tt does not change, so every epoch shows the network new
    events instead of the same few thousand; at inference the layer passes the features through."""

    def __init__(self, n_features: int, phi: list[int], px: list[int], py: list[int], z_odd: list[int],
                 rotate: bool = True, reflect: bool = True, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_features, self.rotate, self.reflect, self.seed = int(n_features), bool(rotate), bool(reflect), seed
        self.phi, self.px, self.py, self.z_odd = ([int(i) for i in group] for group in (phi, px, py, z_odd))
        if len(self.px) != len(self.py):
            raise ValueError(f"EventSymmetry: {len(self.px)} px columns but {len(self.py)} py columns")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.source = self._source()

    def _source(self) -> list[int]:
        """Where each output column comes from in [features, turned azimuths, px, py, mirrored columns]."""
        source, offset = list(range(self.n_features)), self.n_features
        groups = ([self.phi, self.px, self.py] if self.rotate else []) + ([self.z_odd] if self.reflect else [])
        for group in groups:
            for j, column in enumerate(group):
                source[column] = offset + j
            offset += len(group)
        return source

    def call(self, x: Any, training: bool | None = None) -> Any:
        if not training or not (self.rotate or self.reflect):
            return x
        n, parts = ops.shape(x)[0], [x]
        if self.rotate:
            angle = keras.random.uniform((n, 1), -math.pi, math.pi, dtype=x.dtype, seed=self.seed_generator)
            phi = ops.take(x, self.phi, axis=1) + angle
            phi = phi - 2.0 * math.pi * ops.floor((phi + math.pi) / (2.0 * math.pi))  # back into [-pi, pi)
            px, py = ops.take(x, self.px, axis=1), ops.take(x, self.py, axis=1)
            cos, sin = ops.cos(angle), ops.sin(angle)
            parts += [phi, cos * px - sin * py, sin * px + cos * py]
        if self.reflect:
            flip = keras.random.uniform((n, 1), dtype=x.dtype, seed=self.seed_generator) < 0.5
            parts.append(ops.take(x, self.z_odd, axis=1) * ops.where(flip, -1.0, 1.0))
        return ops.take(ops.concatenate(parts, axis=1), self.source, axis=1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_features": self.n_features, "phi": self.phi, "px": self.px,
                "py": self.py, "z_odd": self.z_odd, "rotate": self.rotate, "reflect": self.reflect, "seed": self.seed}


# --- the set architecture: objects as tokens ----------------------------------------------------------

#: what a token holds: momentum, log energy, b tag (jets), muon flag (leptons), then its type, one-hot
TOKEN_FIELDS = ("px", "py", "pz", "loge", "btag", "muon")
TOKEN_TYPES = ("lplus", "lminus", "jet", "met")


@dataclass(frozen=True)
class TokenLayout:
    """Where each token field sits in the flat feature vector (`features`, then a 0 and a 1 column appended):
    `columns` (tokens x token width) and `present` (per token: its mask column, or the 1 column) index that
    extended vector; `globals` indexes the per-event features that are no token field."""

    columns: tuple[tuple[int, ...], ...]
    present: tuple[int, ...]
    globals: tuple[int, ...]

    @classmethod
    def of(cls, features: list[str], tokens: list[tuple[str, dict[str, str]]]) -> TokenLayout:
        """The layout of `tokens` (each: its type from TOKEN_TYPES, and its fields' columns, a jet's padding
        mask under "mask") among `features`; a missing column is a ValueError that names it."""
        index = {name: i for i, name in enumerate(features)}
        zero, one = len(features), len(features) + 1
        needed = [column for _, columns in tokens for column in columns.values()]
        missing = [c for c in needed if c not in index]
        unknown = sorted({kind for kind, _ in tokens} - set(TOKEN_TYPES))
        if missing or unknown:
            types = f", unknown token types {unknown} (known: {', '.join(TOKEN_TYPES)})" if unknown else ""
            raise ValueError(f"object tokens: columns {missing} not among the features{types}")
        rows = tuple(tuple(index[columns[f]] if f in columns else zero for f in TOKEN_FIELDS)
                     + tuple(one if kind == t else zero for t in TOKEN_TYPES) for kind, columns in tokens)
        present = tuple(index[columns["mask"]] if "mask" in columns else one for _, columns in tokens)
        used = set(needed)
        return cls(rows, present, tuple(i for i, name in enumerate(features) if name not in used))

    @property
    def width(self) -> int:
        return len(TOKEN_FIELDS) + len(TOKEN_TYPES)


@_serializable
class ObjectTokens(keras.layers.Layer):
    """Flat (scaled) features -> (tokens, mask, globals): one token per entry of `tokens` (l+, l-, each jet slot,
    MET: its type and the columns of its fields), each [px, py, pz, loge, btag, muon, type one-hot] with zeros
    for fields it lacks; a padded jet slot (mask 0) is all zeros; the per-event features that are no token
    field (n_jets, n_bjets, ...) are the globals."""

    def __init__(self, features: list[str], tokens: list[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.features = [str(name) for name in features]
        self.tokens = [[str(kind), {str(k): str(v) for k, v in columns.items()}] for kind, columns in tokens]
        self.token_layout = TokenLayout.of(self.features, self.tokens)

    def call(self, x: Any) -> tuple[Any, Any, Any]:
        layout = self.token_layout
        extended = ops.concatenate([x, ops.zeros_like(x[:, :1]), ops.ones_like(x[:, :1])], axis=1)
        fields = ops.take(extended, [i for row in layout.columns for i in row], axis=1)
        mask = ops.cast(ops.take(extended, list(layout.present), axis=1) > 0.5, x.dtype)
        tokens = ops.reshape(fields, (-1, len(layout.present), layout.width)) * ops.expand_dims(mask, -1)
        globals_ = ops.take(x, list(layout.globals), axis=1) if layout.globals else x[:, :0]
        return tokens, mask, globals_

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "features": self.features, "tokens": self.tokens}


@_serializable
class MaskedMean(keras.layers.Layer):
    """Mean over the present tokens only: padded slots never reach the event summary."""

    def call(self, inputs: list[Any]) -> Any:
        tokens, mask = inputs
        summed = ops.sum(ops.where(ops.expand_dims(mask, -1) > 0.5, tokens, 0.0), axis=1)
        return summed / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)


#: every custom object of this file, by its registered name
CUSTOM_OBJECTS = {f"{PACKAGE}>{cls.__name__}": cls for cls in (
    AffineScale, QuantileScale, ToGeV, MixtureNLL, MemberMean, Pinball, EventSymmetry, ObjectTokens, MaskedMean)}


# --- MLflow: the logged model's pyfunc loader ---------------------------------------------------------

#: the Keras file in the logged model's data folder (where `mlflow.keras.save_model` writes it)
MODEL_FILE = "model.keras"
#: events per batch of `InferenceModel.predict`
PREDICT_BATCH = 65536


class InferenceModel:
    """What `mlflow.pyfunc.load_model` predicts through: raw features in GeV (float32, in the order of the
    signature, the metadata's `features`) -> m_tt in GeV, one row per event (one column, or one per quantile)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        x = np.asarray(model_input, dtype=np.float32)
        return np.asarray(self.model.predict(x, batch_size=PREDICT_BATCH, verbose=0))


def _load_pyfunc(path: str) -> InferenceModel:
    """MLflow's pyfunc loader: the Keras model in the data folder `path`, built from the classes of this file."""
    with contextlib.suppress(ImportError):  # the flow head's layers, beside this file, register themselves
        import mtt_flow_layers  # noqa: F401  (a model logged before the flow head has none)
    with keras.saving.custom_object_scope(CUSTOM_OBJECTS):
        return InferenceModel(keras.saving.load_model(os.path.join(path, MODEL_FILE), compile=False))
