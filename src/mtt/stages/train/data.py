"""Training input from the prepared Parquet splits: checks, subsets, weights, and a streaming tf.data pipeline.

Two ways in: `memory` reads a split into numpy arrays (fastest, for data that fits), `stream` reads it a few
row groups at a time into a tf.data pipeline, so the train split never has to fit in memory. One column
that is always read whole: the true m_tt (8 bytes per event), which the target transform and the flat
weights are fitted on. Both read the train split through the `PreparedSplit` the stage opened once
(`inputs.open_inputs`): its metadata, footer and Parquet file are never opened again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtt.core.dataset import (
    ID_COLUMNS,
    NEUTRINOS,
    TARGET,
    PreparedSplit,
    check_finite,
    nested_subset,
    present_splits,
    require_disjoint,
)
from mtt.core.errors import DataError, TrainError
from mtt.core.model import NeutrinoScale, TargetTransform, flow_target
from mtt.core.preprocessing import Scaler
from mtt.stages.train.params import TrainParams

#: rows per block the stream reads and shuffles at once, and how many blocks it mixes (the shuffle window)
BLOCK_ROWS = 65536
MIX_BLOCKS = 4
#: `auto` streams when the split's uncompressed columns need more than this fraction of the available memory
STREAM_ABOVE = 0.25


def stream_or_memory(mode: str, split: PreparedSplit, features: list[str]) -> str:
    """`memory` or `stream`: `auto` streams when the split would take over a quarter of the available memory."""
    if mode != "auto":
        return mode
    import psutil

    meta = split.parquet.metadata
    wanted = set(features) | {TARGET}
    size = sum(meta.row_group(g).column(c).total_uncompressed_size for g in range(meta.num_row_groups)
               for c in range(meta.num_columns) if meta.row_group(g).column(c).path_in_schema in wanted)
    return "stream" if size > STREAM_ABOVE * psutil.virtual_memory().available else "memory"


def check_n_train(n_train: int, n_rows: int, path: Path) -> None:
    """More events than the split holds would train on all of them under a name (and params) that claim n_train."""
    if n_train > n_rows:
        raise TrainError(f"train.n_train={n_train} but the train split ({path}) holds {n_rows} events; give at most "
                         f"{n_rows} or 0 for all")


def train_subset(table: pd.DataFrame, n_train: int) -> np.ndarray:
    """Row indices of the deterministic, nested n_train subset (all rows for 0)."""
    return nested_subset(table, n_train)


@dataclass(frozen=True)
class FlatWeights:
    """Weights inverse to the true m_tt density (equal-population bins), mean 1 on train, clipped."""

    edges: np.ndarray
    values: np.ndarray

    @classmethod
    def fit(cls, m_tt: np.ndarray, clip: float, bins: int = 40) -> FlatWeights:
        """Bin edges and per-bin weights from the train m_tt; clip at `clip` x the median weight."""
        edges = np.unique(np.quantile(m_tt, np.linspace(0, 1, bins + 1)))
        index = cls._bin(edges, m_tt)
        density = np.bincount(index, minlength=edges.size - 1) / np.diff(edges)
        per_event = np.minimum(1.0 / density[index], clip * np.median(1.0 / density[index]))
        values = np.minimum(1.0 / density, clip * np.median(1.0 / density[index])) / per_event.mean()
        return cls(edges, values)

    @staticmethod
    def _bin(edges: np.ndarray, m_tt: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(edges, m_tt, side="right") - 1, 0, edges.size - 2)

    def __call__(self, m_tt: np.ndarray) -> np.ndarray:
        return self.values[self._bin(self.edges, m_tt)]


def flat_weights(m_tt: np.ndarray, clip: float, bins: int = 40) -> np.ndarray:
    """Per-event flat weights of the events they were fitted on (mean 1)."""
    return FlatWeights.fit(m_tt, clip, bins)(m_tt)


# --- streaming --------------------------------------------------------------------------------------


@dataclass
class ParquetStream:
    """A train split read a few row groups at a time: shuffled per epoch, checked, weighted, as tf.data."""

    split: PreparedSplit  # opened once by the stage; its Parquet file serves every epoch
    features: list[str]
    keep: np.ndarray  # bool per row of the file: the (n_train) subset
    target: Callable[[np.ndarray], np.ndarray]  # true m_tt -> regression target
    weights: Callable[[np.ndarray], np.ndarray] | None
    seed: int
    block_rows: int = BLOCK_ROWS

    @classmethod
    def open(cls, split: PreparedSplit, features: list[str], n_train: int, target: Any, weights: Any,
             seed: int) -> ParquetStream:
        """Choose the subset of the opened split from the identity columns only."""
        ids = split.read(ID_COLUMNS)
        keep = np.zeros(len(ids), bool)
        keep[train_subset(ids, n_train)] = True
        return cls(split, features, keep, target, weights, seed)

    @property
    def path(self) -> Path:
        """The split's file, for the messages that name it."""
        return self.split.path

    @property
    def n_rows(self) -> int:
        return int(self.keep.sum())

    def true_mtt(self) -> np.ndarray:
        """The true m_tt of the kept rows (the one column read whole)."""
        return self.split.parquet.read(columns=[TARGET])[TARGET].to_numpy().astype(np.float64)[self.keep]

    def blocks(self, order: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(first file row, features float32, true m_tt) of the kept rows, block by block, NaN-checked."""
        parquet = self.split.parquet
        starts = np.cumsum([0] + [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)])
        groups = np.arange(parquet.num_row_groups) if order is None else order
        for group in groups:
            first = int(starts[group])
            for batch in parquet.iter_batches(batch_size=self.block_rows, row_groups=[int(group)],
                                              columns=[*self.features, TARGET]):
                keep = self.keep[first:first + batch.num_rows]
                columns = [batch.column(c).to_numpy(zero_copy_only=False) for c in self.features]  # null -> NaN
                x = np.column_stack(columns).astype(np.float32)[keep]
                y = batch.column(TARGET).to_numpy(zero_copy_only=False).astype(np.float64)[keep]
                check_finite(x, y, self.features, f"{self.path} (streaming)", first)
                yield first, x, y
                first += batch.num_rows

    def epoch(self, epoch: int) -> Iterator[tuple[np.ndarray, ...]]:
        """One epoch: row groups in a seeded random order, mixed MIX_BLOCKS blocks at a time and shuffled."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.split.parquet.num_row_groups)
        window: list[tuple[np.ndarray, np.ndarray]] = []
        for _, x, y in self.blocks(order):
            window.append((x, y))
            if len(window) == MIX_BLOCKS:
                yield self._shuffled(window, rng)
                window = []
        if window:
            yield self._shuffled(window, rng)

    def _shuffled(self, window: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator) -> tuple:
        x = np.concatenate([w[0] for w in window])
        y = np.concatenate([w[1] for w in window])
        perm = rng.permutation(len(x))
        x, y = x[perm], y[perm]
        out = (x, self.target(y).astype(np.float32))
        return out if self.weights is None else (*out, self.weights(y).astype(np.float32))

    def dataset(self, batch_size: int, first_epoch: int = 0) -> Any:
        """A tf.data.Dataset of (x, y[, w]) batches; each pass over it is the next epoch."""
        import tensorflow as tf

        counter = iter(range(first_epoch, 2**31))
        n = len(self.features)
        signature = (tf.TensorSpec((None, n), tf.float32), tf.TensorSpec((None,), tf.float32))
        if self.weights is not None:
            signature = (*signature, tf.TensorSpec((None,), tf.float32))
        data = tf.data.Dataset.from_generator(lambda: self.epoch(next(counter)), output_signature=signature)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        batches = -(-self.n_rows // batch_size)  # rebatch fills every batch but the last across blocks
        data = data.rebatch(batch_size).apply(tf.data.experimental.assert_cardinality(batches))
        return data.prefetch(tf.data.AUTOTUNE).with_options(options)


# --- what the fit loop consumes ---------------------------------------------------------------------


@dataclass(frozen=True)
class ValSet:
    """The val split as the per-epoch metrics use it: features, true m_tt (GeV), the transformed target."""

    x: np.ndarray
    m_tt: np.ndarray
    y: np.ndarray


# --- ---------------------------------------------------------------------


@dataclass
class TrainingData:
    """The train split ready for `fit`: in memory (numpy) or streamed (tf.data), with its fitted preprocessing."""

    mode: str
    m_tt: np.ndarray  # true m_tt of the train rows used
    scaler: Scaler  # from the validate stage's reference, restricted to the features
    target: Any  # mtt.core.model.TargetTransform
    weights: FlatWeights | None
    x: np.ndarray | None = None
    stream: ParquetStream | None = None
    neutrinos: np.ndarray | None = None  # the flow head's target (`flow_target`): (n, 6 or 7)
    neutrino_scale: NeutrinoScale | None = None

    @property
    def n_rows(self) -> int:
        return len(self.m_tt)

    def fit_arguments(self, batch_size: int, first_epoch: int) -> dict[str, Any]:
        """Keyword arguments of `model.fit` for this data (numpy arrays, or a dataset starting at first_epoch)."""
        if self.stream is not None:
            return {"x": self.stream.dataset(batch_size, first_epoch), "shuffle": False}  # shuffled by the stream
        y = self.target.forward(self.m_tt) if self.neutrino_scale is None else \
            self.neutrino_scale.forward(self.neutrinos)
        y = y.astype(np.float32)
        weights = None if self.weights is None else self.weights(self.m_tt).astype(np.float32)
        return {"x": self.x, "y": y, "sample_weight": weights, "batch_size": batch_size, "shuffle": True}


def read_neutrinos(split: PreparedSplit, rows: np.ndarray | None = None) -> np.ndarray:
    """(n, 6) truth neutrino and antineutrino px, py, pz in GeV (what the flow head learns), NaN-checked."""
    missing = [c for c in NEUTRINOS if c not in split.columns]
    if missing:
        raise DataError(f"{split.path}: no truth-neutrino columns {missing}: the flow head learns the neutrinos of "
                        "simulated events; prepare the ROOT files `mtt simulate` writes (GenNu_*, GenAntinu_*)")
    values = split.read(NEUTRINOS).to_numpy(np.float64)
    values = values if rows is None else values[rows]
    check_finite(values, None, NEUTRINOS, str(split.path))
    return values


def load_training_data(params: TrainParams, split: PreparedSplit, scaler: Scaler) -> TrainingData:
    """Read (or stream) the opened train split, take the n_train subset, fit target and weights."""
    check_n_train(params.n_train, split.n_rows, split.path)
    require_disjoint(present_splits(split.path.parent))  # val or test events in train: every val/test figure is wrong
    features = list(scaler.columns)
    mode = stream_or_memory(params.input, split, features)
    if mode == "stream" and params.head == "flow":
        raise TrainError(f"{split.path}: train.input chose to stream the train split, but the flow head reads it in "
                         "memory (with the truth neutrinos): set train.input: memory, or train.n_train smaller")
    if mode == "stream":
        stream = ParquetStream.open(split, features, params.n_train, None, None, params.seed)
        m_tt, x = stream.true_mtt(), None
    else:
        rows = train_subset(split.read(ID_COLUMNS), params.n_train)
        (x, m_tt), stream = split.arrays(features, rows), None
    if len(m_tt) == 0:
        raise TrainError(f"{split.path}: empty train split")
    target = TargetTransform.fit(params.target_transform, m_tt)
    weights = FlatWeights.fit(m_tt, params.flat_clip) if params.sample_weights == "flat" else None
    if stream is not None:
        stream.target, stream.weights = target.forward, weights
        return TrainingData(mode, m_tt, scaler, target, weights, x, stream)
    neutrinos = None
    if params.head == "flow":
        neutrinos = flow_target(read_neutrinos(split, rows), x, features, m_tt, params.flow_mtt_correction)
    scale = NeutrinoScale.fit(neutrinos) if neutrinos is not None else None
    return TrainingData(mode, m_tt, scaler, target, weights, x, stream, neutrinos, scale)
