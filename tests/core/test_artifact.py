"""The model folder: written as a whole, read back with checks that name the broken file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mtt.core.artifact import META_FILE, MODEL_FILE, load_model_dir, load_model_scaler, save_model_dir
from mtt.core.errors import ArtifactError
from mtt.core.model import ModelSpec, TargetTransform, build_network, inference_model, preprocessing_layer
from mtt.core.preprocessing import Scaler

X = np.random.default_rng(2).normal(100, 20, (200, 3)).astype(np.float32)


def tiny_model(columns):
    scaler = Scaler.fit("standard", X[:, : len(columns)], columns)
    spec = ModelSpec(depth=1, width=4)
    network = build_network(len(columns), spec, preprocessing_layer(scaler))
    return inference_model(network, spec, TargetTransform()), scaler


@pytest.fixture
def folder(tmp_path):
    model, scaler = tiny_model(["a", "b", "c"])
    save_model_dir(tmp_path / "models", model, scaler, {"features": ["a", "b", "c"], "mlflow_run_id": "r1"})
    return tmp_path / "models"


def test_round_trip(folder):
    artifact = load_model_dir(folder)
    assert artifact.features == ["a", "b", "c"] and artifact.run_id == "r1"
    assert np.asarray(artifact.model(X[:4])).shape == (4, 1)
    assert load_model_scaler(folder).columns == ("a", "b", "c")


def test_missing_folder_and_files(tmp_path, folder):
    with pytest.raises(ArtifactError, match="model.json: missing; .* not a trained model folder"):
        load_model_dir(tmp_path / "nothing")
    (folder / MODEL_FILE).unlink()
    with pytest.raises(ArtifactError, match="model.keras: missing; run the train stage first"):
        load_model_dir(folder)


def test_corrupt_model_file_is_named(folder):
    (folder / MODEL_FILE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ArtifactError, match=r"model.keras: cannot be loaded as a Keras model"):
        load_model_dir(folder)


def test_invalid_meta_is_named(folder):
    (folder / META_FILE).write_text('{"features": ["a", ')
    with pytest.raises(ArtifactError, match=r"model.json: not valid JSON \(Expecting value: line 1"):
        load_model_dir(folder)
    (folder / META_FILE).write_text(json.dumps({"mlflow_run_id": "r1"}))
    with pytest.raises(ArtifactError, match="model.json: expected a mapping with a non-empty 'features' list"):
        load_model_dir(folder)


def test_model_and_meta_from_different_runs(folder):
    (folder / META_FILE).write_text(json.dumps({"features": ["a", "b"]}))
    with pytest.raises(ArtifactError, match=r"model.keras takes 3 features, but .*model.json lists 2: the two files "
                                            "come from different runs"):
        load_model_dir(folder)
