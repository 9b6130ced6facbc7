"""What a trained head says about events, in GeV: the one reading of a saved model that evaluate and predict share.

A point head gives one value per event; an MDN gives a mixture (read from the layer before `to_gev`, whose
config holds the target transform; an ensemble's members become one mixture); a quantile head gives sorted
quantiles at the levels model.json lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtt.core.distributions import Draws, Mixture
from mtt.core.errors import ArtifactError
from mtt.core.layers import combine_members


@dataclass
class HeadOutput:
    """The trained head's predictions for a set of events, in GeV."""

    head: str
    point: np.ndarray  # the MSE value, the mixture median, or the median quantile
    mixture: Mixture | None = None
    quantiles: np.ndarray | None = None  # (n, q)
    levels: list[float] = field(default_factory=list)
    draws: Draws | None = None  # the flow's posterior m_tt draws
    neutrinos: np.ndarray | None = None  # the flow's (n, k, 6) neutrino draws, GeV
    visible: np.ndarray | None = None  # (n, 16) px, py, pz, E of l+, l-, b1, b2 the draws were added to


#: events per batch of flow draws (events x draws rows go through the flow at once)
FLOW_CHUNK = 2048


def flow_output(model: Any, x: np.ndarray, samples: int, seed: int) -> HeadOutput:
    """`samples` posterior draws per event from a flow head, seeded per batch of events: the neutrinos, the m_tt
    they give with the visible objects, and their median as the point estimate."""
    import keras

    flow = model.get_layer("flow")
    joined = np.asarray(keras.Model(model.input, model.get_layer("flow_input").output).predict(
        x, batch_size=FLOW_CHUNK, verbose=0), dtype=np.float32)
    neutrinos, m_tt = [], []
    for i, start in enumerate(range(0, len(x), FLOW_CHUNK)):
        part = joined[start:start + FLOW_CHUNK]
        nu = flow.draw(part, samples, seed=seed + i)
        neutrinos.append(np.asarray(keras.ops.convert_to_numpy(nu), dtype=np.float32)[..., :6])
        m_tt.append(np.asarray(keras.ops.convert_to_numpy(flow.m_tt(part, nu)), dtype=np.float64))
    draws = Draws.of(np.concatenate(m_tt) if m_tt else np.zeros((0, samples)))
    return HeadOutput("flow", draws.median(), draws=draws,
                      neutrinos=np.concatenate(neutrinos) if neutrinos else np.zeros((0, samples, 6), np.float32),
                      visible=joined[:, flow.context_dim:].astype(np.float64))


def is_flow(model: Any) -> bool:
    """Whether the saved model's head is the neutrino flow (its last layer draws from the posterior)."""
    return any(layer.name == "flow" for layer in model.layers)


def head_output(model: Any, x: np.ndarray, meta: dict[str, Any], samples: int = 0, seed: int = 0) -> HeadOutput:
    """Run the saved inference model (and, for an MDN, its layer before `to_gev`) on x; a flow's point estimate
    from its own draws, or with `samples`, that many seeded draws per event (`flow_output`)."""
    import keras

    if is_flow(model):
        if samples:
            return flow_output(model, x, samples, seed)
        return HeadOutput("flow", np.asarray(model.predict(x, batch_size=FLOW_CHUNK, verbose=0),
                                             dtype=np.float64)[:, 0])
    layer = model.get_layer("to_gev")
    config = layer.get_config()
    head = config["head"]
    if head == "mdn":
        members = config.get("members", 1)  # models saved before ensembles have none
        raw = keras.Model(model.input, layer.input)(x)
        raw = np.asarray(keras.ops.convert_to_numpy(combine_members(raw, head, config["components"], members)))
        mixture = Mixture.from_head(raw, config["components"] * members, config["kind"], config["mean"],
                                    config["std"])
        return HeadOutput(head, mixture.median(), mixture=mixture)
    out = np.asarray(model(x), dtype=np.float64).reshape(len(x), -1)
    if head == "quantile":
        levels = [float(q) for q in meta.get("params", {}).get("quantiles", [])]
        if len(levels) != out.shape[1]:
            raise ArtifactError(f"model.json lists quantiles {levels}, the model predicts {out.shape[1]} values")
        median = out[:, int(np.argmin(np.abs(np.asarray(levels) - 0.5)))]
        return HeadOutput(head, median, quantiles=np.sort(out, axis=1), levels=levels)
    return HeadOutput(head, out[:, 0])
