"""What a trained head says about events, in GeV: the one reading of a saved model that evaluate and predict share.

A point head gives one value per event; an MDN gives a mixture (read from the layer before `to_gev`, whose
config holds the target transform; an ensemble's members become one mixture); a quantile head gives sorted
quantiles at the levels model.json lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtt.core.distributions import Mixture
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


def head_output(model: Any, x: np.ndarray, meta: dict[str, Any]) -> HeadOutput:
    """Run the saved inference model (and, for an MDN, its layer before `to_gev`) on x."""
    import keras

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
