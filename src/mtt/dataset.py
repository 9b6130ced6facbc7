"""The prepared-data contract: what `prepare` writes and every later stage reads.

Column groups (features by set, target, diagnostics, identity), the three splits and the rule that assigns
events to them, the metadata stored in every Parquet file, and `open_split`: the one place that opens a
prepared split and checks it, with one error message per way it can be wrong.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtt.errors import DataError

# --- column groups -----------------------------------------------------------------------------------

#: the four reconstructed objects every feature is built from
OBJECTS = ("lplus", "lminus", "b1", "b2")
PAIRS = tuple(combinations(OBJECTS, 2))
PAIR_MASSES = tuple(f"m_{a}_{b}" for a, b in PAIRS)
#: the physicist's names for the pair masses (m_ll, m_bb); the four lepton-b masses keep their pair name
MASS_NAMES = {"m_lplus_lminus": "m_ll", "m_b1_b2": "m_bb"}

SEED = [MASS_NAMES.get(m, m) for m in PAIR_MASSES] + ["met_pt"]
LOWLEVEL = [f"{o}_{k}" for o in OBJECTS for k in ("pt", "eta", "phi", "e")] + ["met_px", "met_py"]
EXTENDED = (LOWLEVEL + [MASS_NAMES.get(m, m) for m in PAIR_MASSES] + ["met_pt"]
            + [f"{kind}_{a}_{b}" for a, b in PAIRS for kind in ("dr", "dphi")]
            + ["ht", "n_jets", "n_bjets", "m_vis"])
FEATURE_SETS: dict[str, list[str]] = {"seed": SEED, "lowlevel": LOWLEVEL, "extended": EXTENDED}
#: the columns the classical estimators need: the four objects' momenta and MET (the lowlevel set)
OBJECT_COLUMNS = LOWLEVEL

TARGET = "m_tt"
DIAGNOSTICS = ["top_pt", "top_y", "antitop_pt", "antitop_y"]
#: an event's identity: unique within a dataset, and the key of its split
ID_COLUMNS = ["run", "luminosityBlock", "event"]
IDENTITY = [*ID_COLUMNS, "weight", "channel"]
CHANNELS = ("ee", "emu", "mumu")


def unit(column: str) -> str:
    """Unit of a column, for the metadata that travels with the data."""
    if column.startswith(("dr_", "n_")) or column.endswith(("_eta", "_y")) or column in IDENTITY:
        return ""
    if column.endswith("_phi") or column.startswith("dphi_"):
        return "rad"
    return "GeV"


def feature_columns(sets: list[str]) -> list[str]:
    """Union of the named sets, in a stable order (first appearance)."""
    return list(dict.fromkeys(c for name in sets for c in FEATURE_SETS[name]))


def truth_columns(columns: list[str]) -> list[str]:
    """Target and diagnostics among `columns`, in contract order."""
    return [c for c in (TARGET, *DIAGNOSTICS) if c in columns]


# --- splits ------------------------------------------------------------------------------------------

SPLITS = ("train", "val", "test")


def unit_interval_hash(run: np.ndarray, lumi: np.ndarray, event: np.ndarray) -> np.ndarray:
    """A deterministic number in [0, 1) per event identity (pandas' stable 64-bit row hash)."""
    frame = pd.DataFrame({"run": np.asarray(run, dtype=np.uint64), "lumi": np.asarray(lumi, dtype=np.uint64),
                          "event": np.asarray(event, dtype=np.uint64)})
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return (hashed >> np.uint64(11)).astype(np.float64) / float(2**53)


def nested_subset(ids: pd.DataFrame, n: int) -> np.ndarray:
    """Row indices of the n events with the smallest identity hash: a subset of n is inside a subset of n + 1."""
    if n == 0 or n >= len(ids):
        return np.arange(len(ids))
    u = unit_interval_hash(ids["run"].to_numpy(), ids["luminosityBlock"].to_numpy(), ids["event"].to_numpy())
    return np.sort(np.argsort(u, kind="stable")[:n])


# --- metadata and opening a split --------------------------------------------------------------------

METADATA_KEY = b"mtt"


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata prepare stored with a Parquet split (features, units, sources, selection)."""
    import pyarrow.parquet as pq

    try:
        stored = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) for non-Parquet files
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    if stored is None:
        raise DataError(f"{path}: no mtt metadata: not written by `mtt prepare`")
    return json.loads(stored)


def split_path(folder: str | os.PathLike[str], split: str) -> Path:
    """Where a split lives in a prepared folder."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    return Path(folder) / f"{split}.parquet"


def check_finite(x: np.ndarray, y: np.ndarray | None, features: list[str], where: str, first_row: int = 0) -> None:
    """Stop on NaN or inf, naming the column and the first bad row."""
    bad = ~np.isfinite(x)
    bad_y = np.zeros(0, bool) if y is None else ~np.isfinite(y)
    if not bad.any() and not bad_y.any():
        return
    if bad.any():
        column, row = features[int(np.flatnonzero(bad.any(axis=0))[0])], int(np.flatnonzero(bad.any(axis=1))[0])
    else:
        column, row = TARGET, int(np.flatnonzero(bad_y)[0])
    raise DataError(f"{where}: NaN or inf in column {column!r} ({int(bad.sum() + bad_y.sum())} values, first at "
                    f"row {first_row + row}): run the validate stage")


@dataclass(frozen=True)
class PreparedSplit:
    """An opened prepared split: its path, metadata and Parquet file, already checked against the contract."""

    path: Path
    metadata: dict[str, Any]

    @cached_property
    def parquet(self) -> Any:
        """The `pyarrow.parquet.ParquetFile`."""
        import pyarrow.parquet as pq

        return pq.ParquetFile(self.path)

    @property
    def columns(self) -> list[str]:
        return list(self.parquet.schema_arrow.names)

    @property
    def n_rows(self) -> int:
        return int(self.parquet.metadata.num_rows)

    @property
    def has_truth(self) -> bool:
        return TARGET in self.columns

    def features(self, feature_set: str) -> list[str]:
        """The columns of `feature_set`, checked against what prepare stored and what this code expects."""
        if feature_set not in FEATURE_SETS:
            raise DataError(f"unknown feature set {feature_set!r}; known: {', '.join(FEATURE_SETS)}")
        expected = FEATURE_SETS[feature_set]
        stored = self.metadata.get("feature_sets", {}).get(feature_set)
        if stored is None:
            raise DataError(f"{self.path}: no feature set {feature_set!r} in the file; re-run prepare with it in "
                            "prepare.feature_sets")
        if stored != expected:
            raise DataError(f"{self.path}: feature set {feature_set!r} holds {stored}, but this code expects "
                            f"{expected} (columns missing or reordered): re-run prepare")
        self.require(expected)
        return list(expected)

    def require(self, columns: list[str], why: str = "") -> None:
        """Fail naming the columns of `columns` the file lacks (and why they are needed)."""
        missing = [c for c in columns if c not in set(self.columns)]
        if missing:
            reason = f" ({why})" if why else ""
            raise DataError(f"{self.path}: missing columns {missing}{reason}")

    def read(self, columns: list[str] | None = None, max_rows: int = 0) -> pd.DataFrame:
        """The named columns (default: all) as a DataFrame, the first `max_rows` rows if set."""
        if columns is not None:
            self.require(columns)
        table = pd.read_parquet(self.path, columns=columns)
        return table.iloc[:max_rows] if max_rows else table

    def arrays(self, features: list[str], rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(features float32, true m_tt float64) of the split (or of `rows`), NaN-checked."""
        if not self.has_truth:
            raise DataError(f"{self.path}: no target column {TARGET!r} (truth-less data)")
        table = self.read([*features, TARGET])
        x, y = table[features].to_numpy(np.float32), table[TARGET].to_numpy(np.float64)
        if rows is not None:
            x, y = x[rows], y[rows]
        check_finite(x, y, features, str(self.path))
        return x, y


def open_split(path: str | os.PathLike[str], feature_set: str | None = None, *,
               need_target: bool = True) -> PreparedSplit:
    """Open a prepared split and check it: the file, prepare's metadata, the feature set and the target."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prepared split missing; run the prepare stage first (dvc repro prepare)")
    split = PreparedSplit(path, read_metadata(path))
    if feature_set is not None:
        split.features(feature_set)
    if need_target and not split.has_truth:
        raise DataError(f"{path}: no target column {TARGET!r} (truth-less data, e.g. collision data): it cannot "
                        "be used here")
    return split
