"""Feature scalers: fitted on train once (by `validate`), stored as plain numbers, read by `train`.

A `Scaler` is a fitted scikit-learn scaler (minmax, standard, robust or quantile), optionally after log1p
of the momentum-like features, reduced to its fitted numbers. It is saved as an `.npz` of arrays and a JSON
header and loaded with `allow_pickle=False`: a file pulled from a shared DVC remote cannot run code.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtt.core.dataset import UNSCALED_SUFFIX
from mtt.core.errors import ArtifactError
from mtt.core.io import atomic_file

SCALERS = ("minmax", "standard", "robust", "quantile")
#: the fitted attributes that identify a scaler's training data
FITTED_STATE = {
    "minmax": ("data_min_", "data_max_"),
    "standard": ("mean_", "scale_"),
    "robust": ("center_", "scale_"),
    "quantile": ("quantiles_",),
}
#: fitted attributes with one value per feature (`quantiles_`: one column per feature)
PER_COLUMN = {
    "minmax": ("min_", "scale_", "data_min_", "data_max_", "data_range_"),
    "standard": ("mean_", "var_", "scale_"),
    "robust": ("center_", "scale_"),
    "quantile": ("quantiles_",),
}
LOG_SUFFIX = "+log"
#: a jet slot's field (jet3_px -> px): the slots of one field share one fit
JET_SLOT_FIELD = re.compile(r"jet\d+_(\w+)")


def momentum_like(columns: list[str]) -> list[bool]:
    """Features that are positive and skewed (pT, E, masses, HT, MET): the ones `log_features` takes log1p of."""
    return [c.endswith(("_pt", "_e")) or c.startswith("m_") or c in ("ht", "met_pt") for c in columns]


def log_momenta(x: np.ndarray, log_mask: list[bool] | tuple[bool, ...] | None) -> np.ndarray:
    """float64 copy with log1p applied to the masked columns: what a scaler is fitted on."""
    out = np.asarray(x).astype(np.float64)
    if log_mask is not None and any(log_mask):
        mask = list(log_mask)
        out[:, mask] = np.log1p(np.maximum(out[:, mask], 0))
    return out


def shared_fits(columns: list[str] | tuple[str, ...]) -> list[list[int]]:
    """Indices of the columns fitted as one, a jet field over its slots (jet0_px, jet1_px, ...): a set network
    reads a jet the same way whatever slot it sits in, so swapping two jet slots only permutes its tokens."""
    groups: dict[str, list[int]] = {}
    for i, column in enumerate(columns):
        match = JET_SLOT_FIELD.fullmatch(column)
        if match and not column.endswith(UNSCALED_SUFFIX):
            groups.setdefault(match.group(1), []).append(i)
    return [group for group in groups.values() if len(group) > 1]


def fitted_state(fitted: Any) -> dict[str, np.ndarray]:
    """The fitted attributes of a scikit-learn scaler as arrays."""
    return {k: np.asarray(v) for k, v in vars(fitted).items()
            if k.endswith("_") and not k.startswith("_") and isinstance(v, (np.ndarray, int, float, np.number))}


def scaler_name(kind: str, log_features: bool) -> str:
    """The key of a scaler in the reference: 'standard', 'minmax+log', ..."""
    return kind + (LOG_SUFFIX if log_features else "")


def make_sklearn(kind: str, n_rows: int) -> Any:
    """An unfitted scikit-learn scaler of the given kind."""
    from sklearn.preprocessing import MinMaxScaler, QuantileTransformer, RobustScaler, StandardScaler

    if kind == "minmax":
        return MinMaxScaler()
    if kind == "standard":
        return StandardScaler()
    if kind == "robust":
        return RobustScaler()
    if kind == "quantile":
        return QuantileTransformer(n_quantiles=min(1000, max(n_rows, 10)), subsample=10**9, random_state=0)
    raise ValueError(f"unknown scaler {kind!r}; allowed: {', '.join(SCALERS)}")


@dataclass(frozen=True, eq=False)
class Scaler:
    """A fitted scaler as plain numbers: kind, the columns in order, which are logged, the fitted arrays."""

    kind: str
    columns: tuple[str, ...]
    log_mask: tuple[bool, ...]
    state: dict[str, np.ndarray] = field(repr=False)

    @property
    def name(self) -> str:
        return scaler_name(self.kind, any(self.log_mask))

    @classmethod
    def fit(cls, kind: str, x: np.ndarray, columns: list[str], log_features: bool = False) -> Scaler:
        """Fit a scaler of `kind` on (train) features `x` with these column names; the slots of a jet field are
        fitted as one column (`shared_fits`)."""
        mask = tuple(momentum_like(columns)) if log_features else (False,) * len(columns)
        logged = log_momenta(x, mask)
        state = fitted_state(make_sklearn(kind, len(x)).fit(logged))
        for group in shared_fits(columns):
            pooled = fitted_state(make_sklearn(kind, len(x)).fit(logged[:, group].reshape(-1, 1)))
            for key in PER_COLUMN[kind]:
                state[key][..., group] = pooled[key]  # quantiles_: (n_quantiles, 1) into each column
        return cls(kind, tuple(columns), mask, state)

    def sklearn(self) -> Any:
        """The equivalent fitted scikit-learn object (for transform)."""
        scaler = make_sklearn(self.kind, int(self.state.get("n_quantiles_", 1000)))
        for key, value in self.state.items():
            setattr(scaler, key, value.item() if value.ndim == 0 else value)
        return scaler

    @property
    def unscaled(self) -> tuple[bool, ...]:
        """Columns passed through as they are (padding masks): a set network must read them as 0/1."""
        return tuple(c.endswith(UNSCALED_SUFFIX) for c in self.columns)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scaled features (float64), after log1p of the masked columns; `unscaled` columns unchanged."""
        scaled = self.sklearn().transform(log_momenta(x, self.log_mask))
        keep = list(self.unscaled)
        if any(keep):
            scaled[:, keep] = np.asarray(x, dtype=np.float64)[:, keep]
        return scaled

    def subset(self, columns: list[str]) -> Scaler:
        """The same fit restricted to `columns` (each column is scaled on its own)."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise ArtifactError(f"scaler {self.name}: no fit for columns {missing}; re-run the validate stage")
        index = [self.columns.index(c) for c in columns]
        state = dict(self.state)
        for key in PER_COLUMN[self.kind]:
            state[key] = state[key][:, index] if key == "quantiles_" else state[key][index]
        state["n_features_in_"] = np.asarray(len(columns))
        return Scaler(self.kind, tuple(columns), tuple(self.log_mask[i] for i in index), state)

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(offset, scale) with scaled = (x - offset) / scale, for minmax, standard and robust (0 and 1 for the
        `unscaled` columns, so that the model layer passes them through bit for bit)."""
        keys = {"minmax": ("data_min_", "data_range_"), "standard": ("mean_", "scale_"),
                "robust": ("center_", "scale_")}
        if self.kind not in keys:
            raise ValueError(f"scaler {self.kind!r} is not affine")
        keep = np.asarray(self.unscaled, dtype=bool)
        offset, scale = (np.asarray(self.state[key], dtype=np.float64) for key in keys[self.kind])
        return np.where(keep, 0.0, offset), np.where(keep, 1.0, scale)

    def fitted_on(self, x: np.ndarray) -> tuple[bool, float]:
        """Whether this scaler was fitted on exactly these features: refit and compare the fitted state."""
        reference = Scaler.fit(self.kind, x, list(self.columns), any(self.log_mask))
        worst = 0.0
        for attribute in FITTED_STATE[self.kind]:
            ours, theirs = reference.state[attribute], self.state[attribute]
            if ours.shape != theirs.shape:
                return False, float("inf")
            worst = max(worst, float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(ours), 1e-12))))
        return worst < 1e-6, worst

    def header(self) -> dict[str, Any]:
        return {"kind": self.kind, "columns": list(self.columns), "log_mask": list(self.log_mask)}


def save_scalers(scalers: dict[str, Scaler], path: str | os.PathLike[str]) -> None:
    """Write named scalers into one .npz (a JSON header plus the fitted arrays), atomically."""
    arrays: dict[str, np.ndarray] = {"header": np.array(json.dumps({k: s.header() for k, s in scalers.items()}))}
    for name, scaler in scalers.items():
        arrays.update({f"{name}/{key}": value for key, value in scaler.state.items()})
    with atomic_file(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def load_scalers(path: str | os.PathLike[str]) -> dict[str, Scaler]:
    """The scalers of `save_scalers`, read without unpickling; a clear error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: scaler file missing; run the validate stage first (dvc repro validate)")
    try:
        with np.load(path, allow_pickle=False) as stored:
            header = json.loads(str(stored["header"]))
            return {name: Scaler(h["kind"], tuple(h["columns"]), tuple(h["log_mask"]),
                                 {k.split("/", 1)[1]: stored[k] for k in stored.files if k.startswith(f"{name}/")})
                    for name, h in header.items()}
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise ArtifactError(f"{path}: not a readable scaler file ({type(exc).__name__}: {exc})") from None


def save_scaler(scaler: Scaler, path: str | os.PathLike[str]) -> None:
    """Write one scaler (the model folder's)."""
    save_scalers({scaler.name: scaler}, path)


def load_scaler(path: str | os.PathLike[str]) -> Scaler:
    """Read the one scaler of a file written by `save_scaler`."""
    scalers = load_scalers(path)
    if len(scalers) != 1:
        raise ArtifactError(f"{path}: expected one scaler, found {', '.join(scalers) or 'none'}")
    return next(iter(scalers.values()))


#: the file of the validate stage's reference that holds every scaler kind, fitted on train
REFERENCE_SCALERS = "scalers.npz"


def load_reference_scaler(reference_dir: str | os.PathLike[str], kind: str, log_features: bool,
                          columns: list[str]) -> Scaler:
    """The scaler `validate` fitted on train for this kind, restricted to `columns` (a feature set)."""
    path = Path(reference_dir) / REFERENCE_SCALERS
    scalers = load_scalers(path)
    name = scaler_name(kind, log_features)
    if name not in scalers:
        raise ArtifactError(f"{path}: no {name!r} scaler (it holds {', '.join(scalers) or 'none'}); re-run the "
                            "validate stage")
    return scalers[name].subset(columns)
