"""The model folder that `train` writes and `evaluate` (and later `predict`) reads.

`models/` holds the Keras inference model (raw features in, m_tt in GeV out), the scaler inside it as plain
numbers, and `model.json`: the feature list, target transform, params, headline figures and MLflow run id.
Loading checks that the three belong together and names the file when one is missing or broken.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtt.core.errors import ArtifactError
from mtt.core.io import atomic_dir
from mtt.core.preprocessing import Scaler, load_scaler, save_scaler

MODEL_FILE = "model.keras"
META_FILE = "model.json"
SCALER_FILE = "scaler.npz"


@dataclass
class ModelArtifact:
    """A loaded model folder."""

    folder: Path
    model: Any  # keras.Model: raw features -> m_tt in GeV
    meta: dict[str, Any]

    @property
    def features(self) -> list[str]:
        return list(self.meta["features"])

    @property
    def run_id(self) -> str | None:
        return self.meta.get("mlflow_run_id")


#: the train profile of the reference the model was trained against, copied into its folder: predict's drift
#: checks need it wherever the model goes (a run, the registry)
PROFILE_FILE = "profile.json"


def save_model_dir(folder: str | os.PathLike[str], model: Any, scaler: Scaler, meta: dict[str, Any],
                   profile: str | os.PathLike[str] | None = None) -> None:
    """Write the model folder as a whole (it replaces the old one only when complete)."""
    with atomic_dir(folder, "train") as tmp:
        write_model_files(tmp, model, scaler, meta, profile)


def write_model_files(folder: Path, model: Any, scaler: Scaler, meta: dict[str, Any],
                      profile: str | os.PathLike[str] | None = None) -> None:
    """The model folder's files, written into `folder`: train stages them in a temporary folder that it swaps
    in only once its run has logged everything."""
    model.save(folder / MODEL_FILE)
    save_scaler(scaler, folder / SCALER_FILE)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    if profile is not None and Path(profile).is_file():
        shutil.copyfile(profile, folder / PROFILE_FILE)


def read_meta(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """model.json, checked: valid JSON with a feature list."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise ArtifactError(f"{path}: missing; {folder} is not a trained model folder (run the train stage first)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("features"), list) or not meta["features"]:
        raise ArtifactError(f"{path}: expected a mapping with a non-empty 'features' list")
    return meta


def load_model_dir(folder: str | os.PathLike[str]) -> ModelArtifact:
    """The model, its meta and a check that the Keras model takes exactly the features model.json lists."""
    import keras

    import mtt.core.model  # noqa: F401  (registers the custom layers)

    folder = Path(folder)
    meta = read_meta(folder)
    path = folder / MODEL_FILE
    if not path.is_file():
        raise ArtifactError(f"{path}: missing; run the train stage first")
    try:
        model = keras.models.load_model(path)
    except Exception as exc:  # Keras raises many kinds for damaged zip files or configs
        raise ArtifactError(f"{path}: cannot be loaded as a Keras model ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    width = model.input_shape[-1]
    if width != len(meta["features"]):
        raise ArtifactError(f"{path} takes {width} features, but {folder / META_FILE} lists "
                            f"{len(meta['features'])}: the two files come from different runs; re-run train")
    return ModelArtifact(folder, model, meta)


def load_model_scaler(folder: str | os.PathLike[str]) -> Scaler:
    """The scaler the model was trained with."""
    return load_scaler(Path(folder) / SCALER_FILE)
