"""The train reference: the profile drift is measured against, and every scaler `train` can use, fitted on train.

Written by the validate stage as a tracked output (`data/reference/`): `profile.json` and `scalers.npz`
(plain numbers, no pickle). Training loads its scaler from here, so the scaler the checks examined is the
scaler the model sees.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtt.core.checks import REFERENCE_PROFILE
from mtt.core.errors import ValidationFailed
from mtt.core.io import atomic_dir
from mtt.core.preprocessing import REFERENCE_SCALERS, SCALERS, Scaler, load_scalers, save_scalers, scaler_name
from mtt.stages.validate.params import ScalingParams, ValidateParams
from mtt.stages.validate.profile import build_profile, load_profile, save_profile
from mtt.stages.validate.report import Check
from mtt.stages.validate.scaling import out_of_range_fractions

PROFILE = REFERENCE_PROFILE
SCALERS_FILE = REFERENCE_SCALERS
#: per scaler and feature, the fraction of train values outside the scaler's range (long tails under z scaling)
OUTSIDE = "train_outside.json"


def fit_scalers(train: pd.DataFrame, features: list[str]) -> dict[str, Scaler]:
    """Every scaler kind, with and without log1p of the momentum-like features, fitted on the train split."""
    x = train[features].to_numpy(np.float64)
    return {scaler_name(kind, log): Scaler.fit(kind, x, features, log) for kind in SCALERS for log in (False, True)}


def train_outside(train: pd.DataFrame, scalers: dict[str, Scaler], params: ScalingParams) -> dict[str, Any]:
    """Per scaler and feature, the fraction of the train split that its scaler maps outside the checked range."""
    out = {}
    for name, scaler in scalers.items():
        scaled = scaler.transform(train[list(scaler.columns)].to_numpy(np.float64))
        fractions = out_of_range_fractions(scaled, scaler.kind, params)
        out[name] = {c: float(f) for c, f in zip(scaler.columns, fractions, strict=True)}
    return out


def write_reference(train: pd.DataFrame, features: list[str], params: ValidateParams, folder: Path) -> None:
    """Write the train profile and the scalers into an (empty, temporary) folder."""
    scalers = fit_scalers(train, features)
    save_profile(build_profile(train, features, params.drift.quantiles, params.drift.bins), folder / PROFILE)
    save_scalers(scalers, folder / SCALERS_FILE)
    (folder / OUTSIDE).write_text(json.dumps(train_outside(train, scalers, params.scaling), indent=1) + "\n")


def build_reference(train: pd.DataFrame, features: list[str], params: ValidateParams,
                    reference_dir: str | os.PathLike[str]) -> None:
    """Write the train profile and the scalers into `reference_dir`, replacing it as a whole."""
    with atomic_dir(reference_dir, "validate") as tmp:
        write_reference(train, features, params, tmp)


def load_reference(reference_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """{"profile": ..., "scalers": {name: Scaler}} as written by `build_reference`."""
    reference_dir = Path(reference_dir)
    for name in (PROFILE, SCALERS_FILE):
        if not (reference_dir / name).is_file():
            raise ValidationFailed(f"{reference_dir / name}: reference missing; run the validate stage on the "
                                   "prepared data first (dvc repro validate)")
    outside = json.loads((reference_dir / OUTSIDE).read_text()) if (reference_dir / OUTSIDE).is_file() else {}
    return {"profile": load_profile(reference_dir / PROFILE), "scalers": load_scalers(reference_dir / SCALERS_FILE),
            "train_outside": outside}


def scaler_check(train: pd.DataFrame, scaler: Scaler) -> Check:
    """The reference scaler must be fitted on exactly this train split (not val, test, or a subset)."""
    ok, worst = scaler.fitted_on(train[list(scaler.columns)].to_numpy(np.float64))
    return Check(split="train", category="scaling", expectation="scaler_fitted_on_train", column="(all)",
                 success=ok, critical=True, observed=f"max relative difference {worst:.3g} from a refit on train",
                 why=f"the saved {scaler.name} scaler must be fitted on the train split only")
