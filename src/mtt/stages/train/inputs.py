"""What a training run reads, opened and checked once: the val arrays, the train split, the reference scaler
and medians, and the lineage (content hashes) the run is tagged with.

The train split is opened here and only here: the data pipeline (`data.load_training_data`) and the model's
prepare settings (`prepare_settings`) take the opened `PreparedSplit` along instead of opening it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtt.core.checks import check_split_file, load_reference_medians
from mtt.core.dataset import PreparedSplit, open_split, split_path
from mtt.core.errors import TrainError
from mtt.core.io import file_sha256
from mtt.core.model import flow_target
from mtt.core.preprocessing import REFERENCE_SCALERS, Scaler, load_reference_scaler
from mtt.stages.train.data import read_neutrinos
from mtt.stages.train.params import TrainParams
from mtt.stages.train.paths import TrainPaths

#: what `prepare` stored about how it made the data, carried with the model so predict makes new data alike
PREPARE_SETTINGS = ("schema", "units_in", "selection", "nanoaod", "max_jets")


@dataclass(frozen=True)
class Lineage:
    """What a run read: content hashes of the splits and the reference (the test split's too, so that
    evaluate can tell the model's own test split from other data), and the train medians it checks against."""

    files: dict[str, str]
    medians: dict[str, float]

    @classmethod
    def of(cls, paths: TrainPaths, medians: dict[str, float]) -> Lineage:
        """Hash each split present and the reference scalers once, for the tags, datasets and model card."""
        files = {f"{split}_sha256": file_sha256(split_path(paths.prepared, split))
                 for split in ("train", "val", "test") if split_path(paths.prepared, split).is_file()}
        files["reference_sha256"] = file_sha256(Path(paths.reference) / REFERENCE_SCALERS)
        files["prepared"] = str(Path(paths.prepared).resolve())
        return cls(files, medians)

    def tags(self) -> dict[str, str]:
        """Run tags: `data.train_sha256`, `data.val_sha256`, `data.reference_sha256`, `data.prepared`."""
        return {f"data.{k}": v for k, v in self.files.items() if k != "test_sha256"}

    def splits(self) -> dict[str, tuple[Path, str]]:
        """The prepared splits read, with the content hashes computed once in `of`: split -> (path, SHA-256)."""
        return {split: (split_path(Path(self.files["prepared"]), split), self.files[f"{split}_sha256"])
                for split in ("train", "val", "test") if f"{split}_sha256" in self.files}

    def checked_by(self, summary: Path | None) -> bool:
        """Whether the validate summary at `summary` checked exactly the train and val files this run read."""
        if summary is None or not summary.is_file():
            return False
        stored = json.loads(summary.read_text())
        inputs = stored.get("inputs", {})
        same_reference = stored.get("reference_sha256") == self.files["reference_sha256"]  # not a half-swapped run
        return same_reference and all(inputs.get(split, {}).get("sha256") == self.files.get(f"{split}_sha256")
                                      for split in ("train", "val"))


@dataclass(frozen=True)
class Inputs:
    """The run's inputs after the critical checks: the opened train split (read later, never reopened), the
    val features and true m_tt, the feature columns, the reference scaler, and the lineage."""

    train: PreparedSplit
    features: list[str]
    x_val: np.ndarray
    m_val: np.ndarray
    scaler: Scaler
    lineage: Lineage
    nu_val: np.ndarray | None = None  # the flow head's val target (`flow_target`)


def open_inputs(params: TrainParams, paths: TrainPaths) -> Inputs:
    """Read val and the reference, open train, check both splits against the reference, hash what was read."""
    val_split = open_split(split_path(paths.prepared, "val"), params.feature_set)
    features = val_split.features(params.feature_set, params.max_jets)
    x_val, m_val = val_split.arrays(features)
    if len(x_val) == 0:
        raise TrainError(f"{val_split.path}: empty val split")
    scaler = load_reference_scaler(paths.reference, params.scaler, params.log_features, features)
    medians = load_reference_medians(paths.reference, features)
    train_split = open_split(split_path(paths.prepared, "train"), params.feature_set)
    for split in (train_split, val_split):  # the data actually read, against the reference
        check_split_file(split, features, medians, "train")
    nu_val = None
    if params.head == "flow":
        nu_val = flow_target(read_neutrinos(val_split), x_val, features, m_val, params.flow_mtt_correction)
    return Inputs(train_split, features, x_val, m_val, scaler, Lineage.of(paths, medians), nu_val)


def prepare_settings(train: PreparedSplit) -> dict[str, Any]:
    """How the training data was made (schema, units, object quality, selection, jet slots): carried with the
    model so predict builds new data the same way."""
    return {key: train.metadata[key] for key in PREPARE_SETTINGS if key in train.metadata}
