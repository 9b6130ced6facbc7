"""Train/val/test assignment from a hash of each event's identity (`mtt.core.dataset.unit_interval_hash`).

An event's split depends only on (run, luminosityBlock, event), never on which other events are in the
sample, so growing the sample never moves an existing event to another split.
"""

from __future__ import annotations

import numpy as np

from mtt.core.dataset import SPLITS, unit_interval_hash
from mtt.core.events.params import SplitParams


def assign(run: np.ndarray, lumi: np.ndarray, event: np.ndarray, fractions: SplitParams) -> np.ndarray:
    """Split name per event: train below the train fraction, then val, then test."""
    u = unit_interval_hash(run, lumi, event)
    edges = np.cumsum([fractions.train, fractions.val])
    return np.array(SPLITS)[np.searchsorted(edges, u, side="right")]
