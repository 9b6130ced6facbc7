"""Training input: the streamed Parquet pipeline sees every row once per epoch, in a seeded order, checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtt.core.dataset import FEATURE_SETS, METADATA_KEY, open_split
from mtt.core.errors import DataError
from mtt.stages.train.data import FlatWeights, ParquetStream, flat_weights, stream_or_memory

FEATURES = FEATURE_SETS["seed"]


def write_split(path, n=1000, row_group=128, seed=0, nan_at=None):
    """A prepared-like split with the seed features, in small row groups."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.gamma(4.0, 50.0, n).astype(np.float32) for c in FEATURES})
    frame["m_tt"] = np.linspace(350.0, 1350.0, n).astype(np.float32)
    frame["run"] = np.ones(n, np.uint32)
    frame["luminosityBlock"] = np.ones(n, np.uint32)
    frame["event"] = np.arange(n, dtype=np.uint64)
    if nan_at is not None:
        frame.loc[nan_at, "m_bb"] = np.nan
    meta = b'{"feature_sets": {"seed": %s}}' % str(FEATURES).replace("'", '"').encode()
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata({METADATA_KEY: meta})
    pq.write_table(table, path, row_group_size=row_group)
    return frame


def open_stream(path, n_train=0, seed=1):
    stream = ParquetStream.open(open_split(path, "seed"), FEATURES, n_train, None, None, seed)
    stream.target, stream.block_rows = (lambda m: m / 100.0), 64
    return stream


def test_an_epoch_holds_every_row_once_in_a_seeded_order(tmp_path):
    frame = write_split(tmp_path / "train.parquet")
    stream = open_stream(tmp_path / "train.parquet")
    epoch0 = [block for block in stream.epoch(0)]
    y0 = np.concatenate([b[1] for b in epoch0])
    assert np.array_equal(np.sort(y0), np.sort(frame.m_tt.to_numpy() / 100.0))
    assert not np.array_equal(y0, frame.m_tt.to_numpy() / 100.0)  # shuffled
    assert np.array_equal(y0, np.concatenate([b[1] for b in stream.epoch(0)]))  # reproducible
    assert not np.array_equal(y0, np.concatenate([b[1] for b in stream.epoch(1)]))  # a new order per epoch
    # the features travel with their target
    x0 = np.concatenate([b[0] for b in epoch0])
    rows = np.rint((y0 * 100.0 - 350.0) / (1000.0 / 999)).astype(int)
    assert np.array_equal(x0, frame[FEATURES].to_numpy(np.float32)[rows])


def test_the_dataset_batches_and_subsets(tmp_path):
    write_split(tmp_path / "train.parquet")
    stream = open_stream(tmp_path / "train.parquet", n_train=300)
    assert stream.n_rows == 300 and len(stream.true_mtt()) == 300
    dataset = stream.dataset(batch_size=70)
    assert [len(b[0]) for b in dataset.as_numpy_iterator()] == [70, 70, 70, 70, 20]  # full batches across blocks
    assert int(dataset.cardinality()) == 5


def test_nan_in_a_streamed_block_names_column_and_row(tmp_path):
    write_split(tmp_path / "train.parquet", nan_at=517)
    with pytest.raises(DataError, match=r"\(streaming\): NaN or inf in column 'm_bb' .* first at row 517"):
        list(open_stream(tmp_path / "train.parquet").blocks())


def test_auto_streams_only_large_splits(tmp_path):
    write_split(tmp_path / "train.parquet")
    split = open_split(tmp_path / "train.parquet", "seed")
    assert stream_or_memory("auto", split, FEATURES) == "memory"
    assert stream_or_memory("stream", split, FEATURES) == "stream"


def test_flat_weights_apply_to_new_events_as_to_the_fitted_ones():
    m_tt = np.random.default_rng(3).gamma(9.0, 60.0, 20000) + 300
    weights = FlatWeights.fit(m_tt, clip=10.0)
    assert np.array_equal(weights(m_tt), flat_weights(m_tt, 10.0))
    assert weights(m_tt).mean() == pytest.approx(1.0)
