"""Train/val/test assignment from a hash of each event's identity.

An event's split depends only on (run, luminosityBlock, event), never on which other events are in the
sample, so growing the sample never moves an existing event to another split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtt.config import SplitParams

SPLITS = ("train", "val", "test")


def unit_interval_hash(run: np.ndarray, lumi: np.ndarray, event: np.ndarray) -> np.ndarray:
    """A deterministic number in [0, 1) per event identity (pandas' stable 64-bit row hash)."""
    frame = pd.DataFrame({"run": np.asarray(run, dtype=np.uint64), "lumi": np.asarray(lumi, dtype=np.uint64),
                          "event": np.asarray(event, dtype=np.uint64)})
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return (hashed >> np.uint64(11)).astype(np.float64) / float(2**53)


def assign(run: np.ndarray, lumi: np.ndarray, event: np.ndarray, fractions: SplitParams) -> np.ndarray:
    """Split name per event: train below the train fraction, then val, then test."""
    u = unit_interval_hash(run, lumi, event)
    edges = np.cumsum([fractions.train, fractions.val])
    return np.array(SPLITS)[np.searchsorted(edges, u, side="right")]
