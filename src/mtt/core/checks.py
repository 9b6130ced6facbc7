"""The fast critical checks every stage runs on the data it is about to use (seconds, no great-expectations).

`validate` runs the full suites on the pipeline's splits; `train` and `evaluate` may be pointed at any folder,
so before they start they check the data they actually read against the reference the model is trained
with: NaN, float32 features, each event once, and the units (a momentum median a factor 1000 away from
the train median is MeV read as GeV). Each problem is named with the file and column.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtt.core.dataset import ID_COLUMNS, MASS_NAMES, OBJECT_COLUMNS, OBJECTS, PAIRS, written_jets
from mtt.core.errors import DataError
from mtt.core.preprocessing import momentum_like

#: a feature's median may differ from its train median by at most this factor before it counts as a unit error
UNIT_FACTOR = 3.0
#: spread of log(momentum) in a selected sample: the median of n events scatters by ~1.25 * 0.8 / sqrt(n) in log
LOG_MOMENTUM_SPREAD = 0.8


def unit_factor(n_events: int) -> float:
    """UNIT_FACTOR widened by 5 standard errors of a median of n events: 3.1 at 24k events, 3.5 at 1k, 36 at 4.
    A factor 1000 (MeV read as GeV) is caught from 2 events on; a loose selection's 4 events are not refused."""
    return float(UNIT_FACTOR * np.exp(5 * 1.25 * LOG_MOMENTUM_SPREAD / np.sqrt(max(n_events, 1))))


def reference_medians(profile: dict[str, Any], columns: list[str]) -> dict[str, float]:
    """Train medians of the momentum-like columns, from the validate stage's profile (its quantile grid)."""
    out = {}
    for column, logged in zip(columns, momentum_like(columns), strict=True):
        feature = profile.get("features", {}).get(column)
        if logged and feature is not None:
            grid = feature["quantile_grid"]
            out[column] = float(grid[len(grid) // 2])
    return out


def unit_problems(frame: pd.DataFrame, medians: dict[str, float]) -> list[str]:
    """Momentum-like columns whose median is off the train median by more than `unit_factor` of the sample."""
    problems = []
    factor = unit_factor(len(frame))
    for column, reference in medians.items():
        if column not in frame.columns or reference <= 0:
            continue
        median = float(np.median(frame[column].to_numpy(np.float64)))
        ratio = median / reference
        if not 1 / factor <= ratio <= factor:
            hint = " (the input is in MeV?)" if 300 < ratio < 3000 else " (GeV read as MeV?)" if ratio < 0.003 else ""
            problems.append(f"units: {column}: median {median:.4g} against {reference:.4g} on train, x{ratio:.3g}"
                            f"{hint}")
    return problems


def critical_problems(frame: pd.DataFrame, features: list[str], medians: dict[str, float]) -> list[str]:
    """Schema (float32 features), NaN, repeated event ids and units of one table; empty if it passes."""
    problems = [f"schema: {c}: dtype {frame[c].dtype}, expected float32" for c in features
                if frame[c].dtype != np.float32]
    bad = [c for c in features if not np.isfinite(frame[c].to_numpy(np.float64)).all()]
    problems += [f"NaN or inf: {c}: {int((~np.isfinite(frame[c].to_numpy(np.float64))).sum())} rows" for c in bad]
    return problems + repeated_ids(frame) + unit_problems(frame, medians) + consistency_problems(frame)


def repeated_ids(frame: pd.DataFrame) -> list[str]:
    """The problem of events that share (run, luminosityBlock, event), if any (and if the columns are there)."""
    if not set(ID_COLUMNS) <= set(frame.columns):
        return []
    repeated = frame.duplicated(ID_COLUMNS, keep=False)
    if not repeated.any():
        return []
    example = tuple(int(v) for v in frame.loc[repeated, ID_COLUMNS].iloc[0])
    return [f"event ids: {int(repeated.sum())} rows share (run, luminosityBlock, event) with another, "
            f"e.g. {example}"]


def require_clean(frame: pd.DataFrame, features: list[str], medians: dict[str, float], where: str,
                  stage: str) -> None:
    """Stop with every problem of `critical_problems`, naming the file."""
    _refuse(critical_problems(frame, features, medians), where, stage)


def _refuse(problems: list[str], where: str, stage: str) -> None:
    """Raise with the problems (the first eight, and how many more)."""
    if problems:
        shown = problems[:8] + ([f"... and {len(problems) - 8} more"] if len(problems) > 8 else [])
        lines = "\n  ".join(shown)
        raise DataError(f"{where}: {stage} refuses this data, it fails the critical checks against the training "
                        f"reference:\n  {lines}")


#: the validate stage's train profile, in its reference folder
REFERENCE_PROFILE = "profile.json"
#: rows read for the units check of a large split
UNITS_SAMPLE = 200_000


def load_reference_medians(reference_dir: str | os.PathLike[str], columns: list[str]) -> dict[str, float]:
    """Train medians of the momentum-like `columns` from the reference folder's profile."""
    import json

    path = Path(reference_dir) / REFERENCE_PROFILE
    if not path.is_file():
        raise DataError(f"{path}: the train profile is missing; run the validate stage first (dvc repro validate)")
    return reference_medians(json.loads(path.read_text()), columns)


def check_split_file(split: Any, features: list[str], medians: dict[str, float], stage: str) -> None:
    """The critical checks on an opened prepared split (`mtt.core.dataset.PreparedSplit`) without reading it whole:
    feature dtypes from the schema, every event id, and the units on the first UNITS_SAMPLE rows (NaN is
    checked by whatever reads the features)."""
    import pyarrow as pa

    schema = split.parquet.schema_arrow
    problems = [f"schema: {c}: {schema.field(c).type}, expected float" for c in features
                if schema.field(c).type != pa.float32()]
    derived = [c for c in features if c in OBJECT_COLUMNS or c.startswith(("m_", "met_")) or c == "ht"]
    columns = list(dict.fromkeys([*(c for c in medians if c in features), *derived]))
    rows = []
    for batch in split.parquet.iter_batches(batch_size=65536, columns=columns or [features[0]]):
        rows.append(batch.to_pandas())
        if sum(len(r) for r in rows) >= UNITS_SAMPLE:
            break
    sample = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
    problems += repeated_ids(split.read(ID_COLUMNS)) + unit_problems(sample, medians) + consistency_problems(sample)
    _refuse(problems, str(split.path), stage)


# --- physics consistency -------------------------------------------------------------------------------

#: relative disagreement allowed between a stored feature and its value recomputed from the objects
#: (float32 storage gives ~1e-5; a feature scaled by 5% gives 5e-2)
CONSISTENCY_TOLERANCE = 1e-3


def consistency_residuals(frame: pd.DataFrame) -> pd.DataFrame:
    """Per event, how far each derived feature sits from its value recomputed from the object columns.

    A feature rescaled on its own (a unit or calibration slip in one column) breaks these relations for every
    event, whatever the sample size, where drift checks need thousands of events to see a 5% shift:
    pair masses and m_vis against the four-vectors, met_pt against (met_px, met_py), E = |p| for the
    leptons, E >= |p| for the b jets, ht >= pT(b1) + pT(b2). Columns are relative differences (0 when
    consistent); only relations whose columns are all present are computed.
    """
    import vector

    out: dict[str, np.ndarray] = {}
    have = set(frame.columns)
    parts = ("pt", "eta", "phi", "e")
    p4 = {o: vector.array({"pt": frame[f"{o}_pt"].to_numpy(np.float64), "eta": frame[f"{o}_eta"].to_numpy(np.float64),
                           "phi": frame[f"{o}_phi"].to_numpy(np.float64), "E": frame[f"{o}_e"].to_numpy(np.float64)})
          for o in OBJECTS if all(f"{o}_{k}" in have for k in parts)}
    for a, b in PAIRS:
        name = MASS_NAMES.get(f"m_{a}_{b}", f"m_{a}_{b}")
        if name in have and a in p4 and b in p4:
            out[f"{name}_vs_objects"] = _relative(frame[name], (p4[a] + p4[b]).mass)
    if "m_vis" in have and len(p4) == len(OBJECTS):
        out["m_vis_vs_objects"] = _relative(frame["m_vis"], (p4["lplus"] + p4["lminus"] + p4["b1"] + p4["b2"]).mass)
    if {"met_pt", "met_px", "met_py"} <= have:
        out["met_pt_vs_components"] = _relative(frame["met_pt"], np.hypot(frame["met_px"].to_numpy(np.float64),
                                                                          frame["met_py"].to_numpy(np.float64)))
    for lepton in ("lplus", "lminus"):
        if lepton in p4:
            out[f"{lepton}_e_vs_momentum"] = _relative(frame[f"{lepton}_e"], p4[lepton].mag)
    for jet in ("b1", "b2"):
        if jet in p4:  # E >= |p|: only a deficit counts
            out[f"{jet}_e_below_momentum"] = np.minimum(_relative(frame[f"{jet}_e"], p4[jet].mag), 0.0)
    if {"ht", "b1_pt", "b2_pt"} <= have:
        out["ht_below_b_jets"] = np.minimum(_relative(frame["ht"], frame["b1_pt"].to_numpy(np.float64)
                                                      + frame["b2_pt"].to_numpy(np.float64)), 0.0)
    out.update(_object_set_residuals(frame, have))
    return pd.DataFrame(out, index=frame.index)


def _object_set_residuals(frame: pd.DataFrame, have: set[str]) -> dict[str, np.ndarray]:
    """The objects set against itself and the others: lepton E = |p| (exp(log E) from px, py, pz), the same
    lepton energy as the lowlevel set, and as many filled jet slots as n_jets allows."""
    out: dict[str, np.ndarray] = {}
    for lepton in ("lplus", "lminus"):
        if {f"{lepton}_{k}" for k in ("px", "py", "pz", "loge")} <= have:
            energy = np.exp(frame[f"{lepton}_loge"].to_numpy(np.float64))
            momentum = np.sqrt(sum(frame[f"{lepton}_{k}"].to_numpy(np.float64) ** 2 for k in ("px", "py", "pz")))
            out[f"{lepton}_objects_e_vs_momentum"] = _relative(energy, momentum)
            if f"{lepton}_e" in have:
                out[f"{lepton}_objects_vs_lowlevel"] = _relative(energy, frame[f"{lepton}_e"].to_numpy(np.float64))
    slots = written_jets(list(have))
    if slots and "n_jets" in have:
        filled = sum(frame[f"jet{i}_mask"].to_numpy(np.float64) for i in range(slots))
        out["jet_slots_vs_n_jets"] = _relative(filled, np.minimum(frame["n_jets"].to_numpy(np.float64), slots))
    return out


def _relative(stored: Any, recomputed: Any) -> np.ndarray:
    """stored / recomputed - 1; infinite where the objects give no valid value (E < |p|): inconsistent too."""
    recomputed = np.asarray(recomputed, dtype=np.float64)
    valid = np.isfinite(recomputed) & (recomputed > 0)
    return np.where(valid, np.asarray(stored, dtype=np.float64) / np.where(valid, recomputed, 1.0) - 1.0, np.inf)


def consistency_problems(frame: pd.DataFrame, allowed_fraction: float = 1e-3) -> list[str]:
    """Relations broken in more than `allowed_fraction` of the events, with the median disagreement."""
    problems = []
    for column, residual in consistency_residuals(frame).items():
        bad = ~(np.abs(residual.to_numpy()) <= CONSISTENCY_TOLERANCE)
        if len(bad) and bad.mean() > allowed_fraction:
            problems.append(f"consistency: {column}: {bad.mean():.1%} of events off by more than "
                            f"{CONSISTENCY_TOLERANCE:g} (median {np.nanmedian(residual.to_numpy()):+.3g}): a column "
                            "was rescaled on its own")
    return problems


# --- drift of new data against the train profile (what predict prints before it predicts) -------------------


def drift_rows(frame: pd.DataFrame, profile: dict[str, Any], features: list[str], mean_shift_max: float,
               quantile_shift_max: float) -> list[dict[str, Any]]:
    """Per feature, the mean shift (train sds) and the median's place in the train distribution, each against
    its bound: the tolerance plus 5 standard errors of the comparison (validate's drift rule, its two sharpest
    statistics, computed here without great-expectations)."""
    n_train = int(profile.get("n_rows", 0)) or 1
    rows = []
    for column in features:
        reference = profile.get("features", {}).get(column)
        values = frame[column].to_numpy(np.float64)
        values = values[np.isfinite(values)]
        if reference is None or values.size == 0 or not reference.get("std"):
            continue
        noise = 5 * np.sqrt(1 / values.size + 1 / n_train)
        shift = (values.mean() - reference["mean"]) / reference["std"]
        grid = np.asarray(reference.get("quantile_grid", []), dtype=np.float64)
        place = grid_place(grid, float(np.median(values)))
        expected = grid_place(grid, float(reference["quantiles"].get("0.5", np.nan)))  # 0.5 unless discrete
        rows.append({"feature": column, "mean_shift": float(shift), "mean_bound": mean_shift_max + noise,
                     "median_quantile": place, "train_median_quantile": expected,
                     "quantile_bound": quantile_shift_max + 0.5 * noise})
        rows[-1]["drifted"] = bool(abs(shift) > rows[-1]["mean_bound"] or
                                   abs(place - expected) > rows[-1]["quantile_bound"])
    return rows


def grid_place(grid: np.ndarray, value: float) -> float:
    """Where `value` sits in the train distribution (its quantile grid): the middle of the grid points equal to
    it, so a discrete feature's median has the same place in the train and in unshifted new data."""
    if grid.size < 2 or not np.isfinite(value):
        return 0.5
    middle = (np.searchsorted(grid, value, "left") + np.searchsorted(grid, value, "right") - 1) / 2
    return float(np.clip(middle / (grid.size - 1), 0.0, 1.0))
