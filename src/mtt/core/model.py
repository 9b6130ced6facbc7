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
- Training-time augmentation (`train.augment`): the event turned about the beam and mirrored in z, inside the
  model and identity at inference. An ensemble (`train.ensemble`): members side by side in one network, each
  with its own initial weights and loss, combined by the inference model.

The custom layers and losses are defined in `mtt.core.layers`, a standalone file (Keras and numpy only) that travels
with every model logged to MLflow; this module builds the networks from them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import keras
import numpy as np

from mtt.core.dataset import JET_FIELDS, LEPTON_FIELDS, LEPTON_SLOTS, NEUTRINOS, symmetry_roles
from mtt.core.flow_layers import FlowNLL, NeutrinoFlow, VisibleMomenta, visible_columns
from mtt.core.layers import PACKAGE as PACKAGE
from mtt.core.layers import SIGMA_MIN as SIGMA_MIN
from mtt.core.layers import (
    AffineScale,
    EventSymmetry,
    MaskedMean,
    MemberMean,
    MixtureNLL,
    ObjectTokens,
    Pinball,
    QuantileScale,
    ToGeV,
    target_to_gev,
)
from mtt.core.layers import mdn_parameters as mdn_parameters
from mtt.core.preprocessing import Scaler

# --- preprocessing -----------------------------------------------------------------------------------


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
        """The transform `kind`, with the mean and std of the train m_tt it standardizes by."""
        if kind not in ("none", "log", "standardize"):
            raise ValueError(f"unknown target transform {kind!r}; allowed: none, log, standardize")
        if kind == "standardize":
            return cls(kind, float(np.mean(m_tt)), float(np.std(m_tt)))
        return cls(kind)

    def forward(self, m_tt: np.ndarray) -> np.ndarray:
        """m_tt in GeV -> the regression target the network is trained on."""
        if self.kind == "log":
            return np.log(m_tt)
        if self.kind == "standardize":
            return (m_tt - self.mean) / self.std
        return np.asarray(m_tt)

    def inverse(self, y: Any) -> Any:
        """Transformed values -> GeV (works on numpy arrays and Keras tensors)."""
        return target_to_gev(y, self.kind, self.mean, self.std)


@dataclass(frozen=True)
class NeutrinoScale:
    """The flow head's target: the truth neutrinos' px, py, pz standardised by their train mean and std."""

    mean: tuple[float, ...] = (0.0,) * len(NEUTRINOS)
    std: tuple[float, ...] = (1.0,) * len(NEUTRINOS)

    @classmethod
    def fit(cls, neutrinos: np.ndarray) -> NeutrinoScale:
        """Mean and std per column of the train neutrinos (n, 6), GeV."""
        return cls(tuple(float(v) for v in neutrinos.mean(axis=0)), tuple(float(v) for v in neutrinos.std(axis=0)))

    def forward(self, neutrinos: np.ndarray) -> np.ndarray:
        """GeV -> the standardised coordinates the flow models."""
        return (neutrinos - np.asarray(self.mean)) / np.asarray(self.std)


def flow_target(neutrinos: np.ndarray, x: np.ndarray, features: list[str], m_tt: np.ndarray,
                correction: bool) -> np.ndarray:
    """What the flow learns per event: the truth neutrinos (n, 6), and with `correction` a 7th coordinate,
    log(m_tt / m_reco), m_reco the mass of the reconstructed leptons and b jets plus the true neutrinos: the jets'
    response and mix-ups that the neutrinos alone cannot carry (without it, draws of m_tt miss that spread)."""
    if not correction:
        return neutrinos
    pt, eta, phi, energy = (x[:, visible_columns(features)].astype(np.float64).reshape(len(x), 4, 4)[..., i]
                            for i in range(4))
    total = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), energy], axis=-1).sum(axis=1)
    for nu in (neutrinos[:, :3], neutrinos[:, 3:]):
        total += np.concatenate([nu, np.linalg.norm(nu, axis=1, keepdims=True)], axis=1)
    m_reco = np.sqrt(np.maximum(total[:, 3] ** 2 - np.sum(total[:, :3] ** 2, axis=1), 1.0))
    return np.column_stack([neutrinos, np.log(m_tt / m_reco)])


# --- heads and losses --------------------------------------------------------------------------------

POINT_LOSSES = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "huber": "huber", "log_cosh": "log_cosh"}


# --- the set architecture: objects as tokens ----------------------------------------------------------

#: the MET token's fields
MET_FIELDS = {"px": "met_px", "py": "met_py"}


def _jet_slots(features: list[str]) -> list[str]:
    """The jet slots among `features`: jet0, jet1, ... (each named by its mask column)."""
    suffix = "_mask"
    return [name.removesuffix(suffix) for name in features
            if name.startswith("jet") and name.endswith(suffix) and name[3:-len(suffix)].isdigit()]


def object_tokens(features: list[str]) -> list[tuple[str, dict[str, str]]]:
    """The tokens of the `objects` feature set among `features`, as `ObjectTokens` takes them: l+, l-, every
    jet slot (by its `_mask` column) and MET, each with the columns of its fields; a ValueError names the
    columns the set architecture needs and did not find."""
    jets = _jet_slots(features)
    tokens: list[tuple[str, dict[str, str]]] = [
        *((slot, {f: f"{slot}_{f}" for f in LEPTON_FIELDS}) for slot in LEPTON_SLOTS),
        *(("jet", {f: f"{jet}_{f}" for f in JET_FIELDS}) for jet in jets), ("met", MET_FIELDS)]
    present = set(features)
    missing = [c for _, columns in tokens for c in columns.values() if c not in present]
    missing += [] if jets else ["jet0_mask (no jet slot)"]
    if missing:
        raise ValueError(f"the set architecture needs the columns of the `objects` feature set (l+, l-, jet "
                         f"slots with their mask, MET): missing {missing}; pick a feature_set with objects "
                         "(objects, or e.g. objects+ellipse)")
    return tokens


def _encoder_block(h: Any, mask: Any, spec: ModelSpec, i: int, prefix: str = "") -> Any:
    """Pre-norm transformer block: masked multi-head self-attention and a feed-forward net, each residual."""
    a = keras.layers.LayerNormalization(name=f"{prefix}attention_norm_{i}")(h)
    a = keras.layers.MultiHeadAttention(spec.set_heads, spec.set_dim // spec.set_heads,
                                        name=f"{prefix}attention_{i}")(a, a, value_mask=mask)  # padded slots unseen
    h = keras.layers.Add(name=f"{prefix}attention_residual_{i}")([h, a])
    f = keras.layers.LayerNormalization(name=f"{prefix}feed_forward_norm_{i}")(h)
    f = keras.layers.Dense(2 * spec.set_dim, activation=spec.activation, name=f"{prefix}feed_forward_{i}")(f)
    f = keras.layers.Dense(spec.set_dim, name=f"{prefix}feed_forward_out_{i}")(f)
    return keras.layers.Add(name=f"{prefix}feed_forward_residual_{i}")([h, f])


def set_encoder(x: Any, features: list[str], spec: ModelSpec, seed: int, prefix: str = "") -> Any:
    """Scaled features -> [masked mean of the encoded objects, globals]: invariant under jet-slot order."""
    split = ObjectTokens(features, object_tokens(features), name=f"{prefix}object_tokens")
    tokens, mask, globals_ = split(x)
    h = keras.layers.Dense(spec.set_dim, kernel_initializer=keras.initializers.GlorotUniform(seed + 200),
                           name=f"{prefix}token_embedding")(tokens)
    for i in range(spec.set_layers):
        h = _encoder_block(h, mask, spec, i, prefix)
    pooled = MaskedMean(name=f"{prefix}masked_mean")([keras.layers.LayerNormalization(name=f"{prefix}set_norm")(h),
                                                      mask])
    if not split.token_layout.globals:
        return pooled
    return keras.layers.Concatenate(name=f"{prefix}objects_and_globals")([pooled, globals_])


# --- the network -------------------------------------------------------------------------------------

ARCHITECTURES = ("dense", "set")
HEADS = ("point", "mdn", "quantile", "flow")
#: ModelSpec fields whose train param's name differs
PARAM_NAMES = {"components": "mdn_components", "members": "ensemble"}
#: the augmentations of train.augment: the rotation about the beam, the mirror in z
AUGMENTATIONS = ("phi_rotation", "z_reflection")


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
    #: training-time augmentations (AUGMENTATIONS) and the ensemble's size
    augment: tuple[str, ...] = ()
    members: int = 1
    #: the flow head: embedding width, coupling layers, spline pieces, conditioner width, draws per event
    flow_context: int = 32
    flow_layers: int = 6
    flow_bins: int = 8
    flow_hidden: int = 64
    flow_samples: int = 32

    @classmethod
    def of(cls, params: Any) -> ModelSpec:
        """The architecture and head that the train section describes (each field from its train param)."""
        values = {f.name: getattr(params, PARAM_NAMES.get(f.name, f.name)) for f in fields(cls)}
        return cls(**{**values, "quantiles": tuple(values["quantiles"]), "augment": tuple(values["augment"])})

    def outputs(self) -> int:
        """Head outputs of one member."""
        return {"point": 1, "mdn": 3 * self.components, "quantile": len(self.quantiles),
                "flow": self.flow_context}[self.head]

    def loss_function(self) -> Any:
        """The head's loss; for an ensemble, the mean of the members' losses."""
        loss = self._member_loss()
        return MemberMean(loss, self.members) if self.members > 1 else loss

    def _member_loss(self) -> Any:
        if self.head == "mdn":
            return MixtureNLL(self.components)
        if self.head == "quantile":
            return Pinball(list(self.quantiles))
        if self.loss not in POINT_LOSSES:
            raise ValueError(f"unknown loss {self.loss!r} for the point head; allowed: {', '.join(POINT_LOSSES)}")
        return POINT_LOSSES[self.loss]

    def check(self) -> None:
        """Stop on an unknown head or architecture before any layer is built."""
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; allowed: {', '.join(HEADS)}")
        if self.head == "flow" and (self.members > 1 or self.augment):
            raise ValueError("the flow head trains one network on unchanged events: no ensemble, no augmentation")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; allowed: {', '.join(ARCHITECTURES)}")
        unknown = [a for a in self.augment if a not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"unknown augmentation {unknown}; allowed: {', '.join(AUGMENTATIONS)}")
        if self.members < 1:
            raise ValueError(f"an ensemble needs at least one member, got {self.members}")


def dense_stack(x: Any, spec: ModelSpec, seed: int, prefix: str = "") -> Any:
    """`depth` Dense layers of `width` with the activation, optional batch norm, dropout and residuals."""
    for i in range(spec.depth):
        dense = keras.layers.Dense(spec.width, kernel_initializer=keras.initializers.GlorotUniform(seed + i),
                                   name=f"{prefix}dense_{i}")
        y = dense(x)
        if spec.batch_norm:
            y = keras.layers.BatchNormalization(name=f"{prefix}batch_norm_{i}")(y)
        y = keras.layers.Activation(spec.activation, name=f"{prefix}{spec.activation}_{i}")(y)
        if spec.dropout > 0:
            y = keras.layers.Dropout(spec.dropout, seed=seed + i, name=f"{prefix}dropout_{i}")(y)
        x = keras.layers.Add(name=f"{prefix}residual_{i}")([x, y]) if spec.residual and i > 0 else y
    return x


#: seed offset between ensemble members: each member's layers start from their own initial weights
MEMBER_SEED_STRIDE = 1000


def augmentation_layer(names: list[str], augment: tuple[str, ...], seed: int) -> EventSymmetry:
    """The training-time symmetry layer for `augment` on the features `names` (their roles from the contract)."""
    roles = symmetry_roles(names)
    return EventSymmetry(len(names), roles.phi, roles.px, roles.py, roles.z_odd, rotate="phi_rotation" in augment,
                         reflect="z_reflection" in augment, seed=seed + 300, name="event_symmetry")


def member(x: Any, names: list[str] | None, spec: ModelSpec, seed: int, prefix: str = "") -> Any:
    """One network on the scaled features: (set encoder) -> Dense stack -> head output."""
    if spec.architecture == "set":
        x = set_encoder(x, names, spec, seed, prefix)
    x = dense_stack(x, spec, seed, prefix)
    return keras.layers.Dense(spec.outputs(), kernel_initializer=keras.initializers.GlorotUniform(seed + 99),
                              name=f"{prefix}{spec.head}_head")(x)


def build_network(features: int | list[str], spec: ModelSpec, preprocessing: keras.layers.Layer | None = None,
                  seed: int = 0, neutrino_scale: NeutrinoScale | None = None) -> keras.Model:
    """Raw features -> (augmentation, training only) -> (preprocessing) -> per member: (set encoder) -> Dense
    stack -> head output in the transformed target space; an ensemble's members side by side. `features`:
    their names (the set architecture and the augmentation read them), or only their number."""
    spec.check()
    names = list(features) if not isinstance(features, int) else None
    flow = spec.head == "flow"
    for needs, why in ((spec.architecture == "set", "the set architecture"), (bool(spec.augment), "augmentation"),
                       (flow, "the flow head")):
        if needs and names is None:
            raise ValueError(f"{why} needs the feature names, not only their number")
    inputs = keras.Input((len(names) if names is not None else features,), name="features")
    x = augmentation_layer(names, spec.augment, seed)(inputs) if spec.augment else inputs
    x = preprocessing(x) if preprocessing is not None else x
    if flow:
        context = member(x, names, spec, seed)
        visible = VisibleMomenta(visible_columns(names), name="visible_momenta")(inputs)
        scale = neutrino_scale or NeutrinoScale()
        shape = {"layers": spec.flow_layers, "bins": spec.flow_bins, "hidden": spec.flow_hidden}
        outputs = NeutrinoFlow(spec.flow_context, list(scale.mean), list(scale.std), shape, spec.flow_samples,
                               seed + 500, name="flow")(
            keras.layers.Concatenate(name="flow_input")([context, visible]))
    elif spec.members == 1:
        outputs = member(x, names, spec, seed)
    else:
        outputs = keras.layers.Concatenate(name="members")(
            [member(x, names, spec, seed + MEMBER_SEED_STRIDE * i, f"member{i}_") for i in range(spec.members)])
    return keras.Model(inputs, outputs, name="mtt_regressor")


def network_loss(network: keras.Model, spec: ModelSpec) -> Any:
    """The loss `fit` minimises: the head's, or for the flow the negative log-density its layer computes."""
    return FlowNLL(network.get_layer("flow")) if spec.head == "flow" else spec.loss_function()


def inference_model(network: keras.Model, spec: ModelSpec, target: TargetTransform) -> keras.Model:
    """Raw features -> m_tt in GeV (the point value, the mixture mean, or every quantile; an ensemble's combined;
    the flow's median and its posterior draws)."""
    if spec.head == "flow":
        return keras.Model(network.input, network.get_layer("flow")(network.output, sample=True),
                           name="mtt_inference")
    gev = ToGeV(spec.head, target.kind, target.mean, target.std, spec.components, spec.members,
                name="to_gev")(network.output)
    return keras.Model(network.input, gev, name="mtt_inference")
