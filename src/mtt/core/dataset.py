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
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from mtt.core.errors import DataError

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

#: the `objects` set, for a network over objects: l+ and l- (their charge is the slot; flavour is `muon`),
#: the leading `max_jets` jets by pT, padded with zeros and a 0 mask, MET and the multiplicities
LEPTON_FIELDS = ("px", "py", "pz", "loge", "muon")
JET_FIELDS = ("px", "py", "pz", "loge", "btag", "mask")
LEPTON_SLOTS = ("lplus", "lminus")
OBJECT_GLOBALS = ["met_px", "met_py", "n_jets", "n_bjets"]
#: jets written by default (`prepare.max_jets`)
MAX_JETS = 10

#: the feature sets prepare can write (FEATURE_SETS below holds their columns; a test keeps the two equal)
FeatureSetName = Literal["seed", "lowlevel", "extended", "objects", "ellipse"]


def feature_set_names(feature_set: str) -> list[str]:
    """The sets of a train.feature_set: one name, or several joined by '+' (e.g. `objects+ellipse`); a
    ValueError (what a params check raises) for an unknown one."""
    names = [n.strip() for n in feature_set.split("+")]
    known = get_args(FeatureSetName)
    if not feature_set or any(n not in known for n in names):
        raise ValueError(f"unknown feature set {feature_set!r}; known: {', '.join(known)} (join sets with '+')")
    return names


def object_columns(max_jets: int = MAX_JETS) -> list[str]:
    """Columns of the `objects` set with `max_jets` jet slots."""
    leptons = [f"{slot}_{k}" for slot in LEPTON_SLOTS for k in LEPTON_FIELDS]
    jets = [f"jet{i}_{k}" for i in range(max_jets) for k in JET_FIELDS]
    return [*leptons, *jets, *OBJECT_GLOBALS]


#: the ellipse method's answers per b/lepton pairing (1: b1 with l+, 2: b2 with l+) as inputs (hybrid):
#: an exact solution exists (0/1), the smallest-m_tt solution (else the nearest approach's m_tt), the MET mismatch
ELLIPSE_FIELDS = ("exact", "mtt", "mismatch")
ELLIPSE_FEATURES = [f"ellipse{k}_{f}" for k in (1, 2) for f in ELLIPSE_FIELDS]

FEATURE_SETS: dict[str, list[str]] = {"seed": SEED, "lowlevel": LOWLEVEL, "extended": EXTENDED,
                                      "objects": object_columns(), "ellipse": ELLIPSE_FEATURES}
#: columns every scaler passes through unchanged: a set network reads the padding mask as 0/1
UNSCALED_SUFFIX = "_mask"
#: the columns the classical estimators need: the four objects' momenta and MET (the lowlevel set)
OBJECT_COLUMNS = LOWLEVEL

TARGET = "m_tt"
DIAGNOSTICS = ["top_pt", "top_y", "antitop_pt", "antitop_y"]
NEUTRINOS = [f"{nu}_{k}" for nu in ("nu", "antinu") for k in ("px", "py", "pz")]  # simulated only: the flow's target
#: an event's identity: unique within a dataset, and the key of its split
ID_COLUMNS = ["run", "luminosityBlock", "event"]
IDENTITY = [*ID_COLUMNS, "weight", "channel"]
CHANNELS = ("ee", "emu", "mumu")


def unit(column: str) -> str:
    """Unit of a column, for the metadata that travels with the data."""
    if column.endswith("_loge"):
        return "log(E/GeV)"
    if (column.startswith(("dr_", "n_")) or column.endswith(("_eta", "_y", "_muon", "_btag", "_mask", "_exact"))
            or column in IDENTITY):
        return ""
    if column.endswith("_phi") or column.startswith("dphi_"):
        return "rad"
    return "GeV"


# --- symmetries: how each feature changes when the event is turned about the beam or mirrored in z ---------

#: unchanged by both: masses, separations, magnitudes, tags, masks, counts, the ellipse method's answers
INVARIANT_PREFIXES = ("m_", "dr_", "dphi_", "ellipse", "n_")
INVARIANT_SUFFIXES = ("_pt", "_e", "_loge", "_btag", "_mask", "_muon", "_exact", "_mtt", "_mismatch")
INVARIANT_NAMES = ("ht", "met_pt", "m_vis")


@dataclass(frozen=True)
class SymmetryRoles:
    """Column indices of `features` by how they transform: azimuths (turned), (px, py) pairs (rotated), z-odd
    columns (eta, pz: change sign under the mirror); every other feature is invariant."""

    phi: list[int]
    px: list[int]
    py: list[int]
    z_odd: list[int]


def symmetry_roles(features: list[str]) -> SymmetryRoles:
    """The roles of `features` under the rotation about the beam and the mirror in z; a ValueError names a
    column whose behaviour is not known (an augmentation must not guess) or a px without its py."""
    index = {name: i for i, name in enumerate(features)}
    phi = [i for i, c in enumerate(features) if c.endswith("_phi") and not c.startswith("dphi_")]
    px = [i for i, c in enumerate(features) if c.endswith("_px")]
    unpaired = [features[i] for i in px if features[i].removesuffix("_px") + "_py" not in index]
    py = [index[features[i].removesuffix("_px") + "_py"] for i in px if features[i] not in unpaired]
    z_odd = [i for i, c in enumerate(features) if c.endswith(("_eta", "_pz"))]
    moved = set(phi) | set(px) | set(py) | set(z_odd)
    unknown = [c for i, c in enumerate(features) if i not in moved and not (
        c in INVARIANT_NAMES or c.startswith(INVARIANT_PREFIXES) or c.endswith(INVARIANT_SUFFIXES))]
    stray_py = [c for i, c in enumerate(features) if c.endswith("_py") and i not in py]
    problems = ([f"columns {unpaired + stray_py} lack their px/py partner"] if unpaired or stray_py else []) + (
        [f"it is not known how columns {unknown} change when the event is turned or mirrored"] if unknown else [])
    if problems:
        raise ValueError(f"augmentation: {'; '.join(problems)}")
    return SymmetryRoles(phi, px, py, z_odd)


def set_names(feature_set: str) -> list[str]:
    """The sets of a feature-set name: one set, or several joined by '+' (e.g. `objects+ellipse`)."""
    try:
        return feature_set_names(feature_set)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def set_columns(name: str, max_jets: int = MAX_JETS) -> list[str]:
    """Columns of one named set (`objects` with `max_jets` jet slots)."""
    return object_columns(max_jets) if name == "objects" else FEATURE_SETS[name]


def feature_columns(sets: list[str], max_jets: int = MAX_JETS) -> list[str]:
    """Union of the named sets (each may join several with '+'), in a stable order (first appearance)."""
    return list(dict.fromkeys(c for name in sets for part in set_names(name) for c in set_columns(part, max_jets)))


def written_jets(columns: list[str]) -> int:
    """How many jet slots an `objects` set holds."""
    return sum(c.startswith("jet") and c.endswith("_mask") for c in columns)


def truth_columns(columns: list[str]) -> list[str]:
    """Target, diagnostics and truth neutrinos among `columns`, in contract order."""
    return [c for c in (TARGET, *DIAGNOSTICS, *NEUTRINOS) if c in columns]


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


def _id_keys(ids: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per row of the three id columns (as unsigned integers, whatever their stored type)."""
    frame = pd.DataFrame({c: ids[c].to_numpy().astype(np.uint64) for c in ID_COLUMNS})
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def shared_events(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The distinct (run, luminosityBlock, event) of `a` that are also in `b`, in a's order.

    A hash join: row hashes of both tables matched with a hash table (a 1M-event split takes a fraction of a
    second), then an exact join of the few candidates, so a hash collision never counts as a shared event.
    """
    keys_a, keys_b = _id_keys(a), _id_keys(b)
    in_b = pd.Series(keys_a).isin(keys_b).to_numpy()
    if not in_b.any():
        return pd.DataFrame({c: np.zeros(0, np.uint64) for c in ID_COLUMNS})
    in_a = pd.Series(keys_b).isin(keys_a[in_b]).to_numpy()
    candidates = [t.loc[mask, ID_COLUMNS].astype(np.uint64).drop_duplicates() for t, mask in ((a, in_b), (b, in_a))]
    return candidates[0].merge(candidates[1], on=ID_COLUMNS, how="inner").reset_index(drop=True)


@dataclass(frozen=True)
class Overlap:
    """Events of one split file that are also in another: a model evaluated (or tuned) on events it was trained
    on reports figures that mean nothing."""

    path: Path
    other: Path
    n_events: int
    example: tuple[int, int, int]

    def message(self) -> str:
        run, lumi, event = self.example
        noun = "event" if self.n_events == 1 else "events"
        return (f"{self.path} and {self.other.name} share {self.n_events} {noun} (run {run}, luminosityBlock {lumi}, "
                f"event {event}, ...): a split must not contain events of another; re-run prepare")


def split_overlaps(ids: dict[Path, pd.DataFrame]) -> list[Overlap]:
    """Every pair of split files (given with their id columns, in split order) that shares events; the later
    file of a pair is named first."""
    items = list(ids.items())
    overlaps = []
    for i, (path, frame) in enumerate(items):
        for other, other_frame in items[:i]:
            shared = shared_events(frame, other_frame)
            if len(shared):
                run, lumi, event = (int(v) for v in shared.iloc[0])
                overlaps.append(Overlap(path, other, len(shared), (run, lumi, event)))
    return overlaps


def _split_ids(path: Path) -> pd.DataFrame | None:
    """The id columns of a split file (None when it is missing, unreadable or lacks them: its reader says so)."""
    import pyarrow.parquet as pq

    try:
        if not path.is_file() or not set(ID_COLUMNS) <= set(pq.read_schema(path).names):
            return None
        return pq.read_table(path, columns=ID_COLUMNS).to_pandas()
    except (OSError, ValueError):  # not Parquet: the stage's own reader names the file
        return None


def require_disjoint(paths: list[Path]) -> None:
    """Refuse split files that share an event (run, luminosityBlock, event), naming both files, the number of
    shared events and one of them; files that are missing or lack the id columns are left to their readers."""
    ids = {path: frame for path in dict.fromkeys(Path(p) for p in paths)
           if (frame := _split_ids(path)) is not None}
    overlaps = split_overlaps(ids)
    if overlaps:
        raise DataError("; ".join(o.message() for o in overlaps))


def present_splits(folder: str | os.PathLike[str]) -> list[Path]:
    """The split files of a prepared folder that exist, in split order."""
    return [p for p in (split_path(folder, s) for s in SPLITS) if p.is_file()]


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

    def features(self, feature_set: str, max_jets: int = 0) -> list[str]:
        """The columns of `feature_set` (sets joined by '+'; `objects` with `max_jets` jets, 0 = all written),
        checked against what prepare stored and what this code expects."""
        columns: list[str] = []
        for name in set_names(feature_set):
            columns += self._set_features(name, max_jets)
        columns = list(dict.fromkeys(columns))
        self.require(columns)
        return columns

    def _set_features(self, name: str, max_jets: int) -> list[str]:
        stored = self.metadata.get("feature_sets", {}).get(name)
        if stored is None:
            raise DataError(f"{self.path}: no feature set {name!r} in the file (it holds "
                            f"{', '.join(self.metadata.get('feature_sets', {})) or 'none'}); re-run prepare with it "
                            "in prepare.feature_sets")
        if name != "objects":
            if stored != FEATURE_SETS[name]:
                raise DataError(f"{self.path}: feature set {name!r} holds {stored}, but this code expects "
                                f"{FEATURE_SETS[name]} (columns missing or reordered): re-run prepare")
            return list(stored)
        written = written_jets(stored)
        if stored != object_columns(written):
            raise DataError(f"{self.path}: feature set 'objects' holds {stored}, but this code expects "
                            f"{object_columns(written)}: re-run prepare")
        if max_jets > written:
            raise DataError(f"{self.path}: {max_jets} jets requested (train.max_jets) but prepare wrote {written} "
                            "(prepare.max_jets): lower one or raise the other and re-run prepare")
        return object_columns(max_jets or written)

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
        raise DataError(f"{path}: no target column {TARGET!r} (truth-less data, e.g. collision data): not usable here")
    return split
