"""The train section: feature sets by name (joined with '+'), the set architecture's params, and params.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mtt.core.model import ModelSpec
from mtt.core.params import ParamsError
from mtt.stages.train.params import TrainParams
from mtt.tools.params import load_params

REPO = Path(__file__).resolve().parents[3]


def _train(tmp_path: Path, text: str) -> TrainParams:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n" + text)
    return load_params(path, "train")


def test_params_yaml_spells_out_every_train_param_and_keeps_the_seed_baseline():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(raw["train"]) == set(TrainParams.model_fields)
    train = load_params(REPO / "params.yaml", "train")
    assert (train.feature_set, train.architecture, train.max_jets) == ("extended", "dense", 0)
    assert (train.set_dim, train.set_layers, train.set_heads) == (64, 2, 4)
    assert raw["train_presets"]["seed_baseline"] == {
        "feature_set": "seed", "scaler": "minmax", "log_features": False, "target_transform": "none", "depth": 4,
        "width": 100, "activation": "relu", "batch_norm": False, "dropout": 0.0, "residual": False, "head": "point",
        "loss": "mse", "optimizer": "adam", "learning_rate": 0.001, "schedule": "constant", "sample_weights": "none"}


def test_feature_sets_join_with_plus_and_an_unknown_one_names_the_known(tmp_path):
    assert _train(tmp_path, "  feature_set: objects+ellipse\n").feature_set == "objects+ellipse"
    with pytest.raises(ParamsError, match=r"train.feature_set: Value error, unknown feature set 'objects\+elipse'; "
                                          r"known: seed, lowlevel, extended, objects, ellipse"):
        _train(tmp_path, "  feature_set: objects+elipse\n")


def test_the_set_architecture_needs_the_objects_set(tmp_path):
    params = _train(tmp_path, "  feature_set: objects+ellipse\n  architecture: set\n  max_jets: 6\n")
    assert params.architecture == "set" and params.max_jets == 6
    with pytest.raises(ParamsError, match=r"train.architecture: .*feature_set 'extended' has no `objects` set"):
        _train(tmp_path, "  architecture: set\n")


def test_set_params_are_checked(tmp_path):
    with pytest.raises(ParamsError, match=r"train.set_heads: .*set_dim \(64\) must be a multiple of set_heads \(5\)"):
        _train(tmp_path, "  set_heads: 5\n")
    with pytest.raises(ParamsError) as info:
        _train(tmp_path, "  max_jets: -1\n  set_layers: 17\n  architecture: transformer\n")
    for problem in ("train.max_jets: Input should be greater than or equal to 0",
                    "train.set_layers: Input should be less than or equal to 16",
                    "train.architecture: Input should be 'dense' or 'set'"):
        assert problem in str(info.value)


def test_model_spec_takes_every_architecture_param_from_train():
    params = TrainParams(feature_set="objects", architecture="set", set_dim=32, set_layers=1, set_heads=8, depth=2,
                         mdn_components=3, quantiles=[0.1, 0.9])
    spec = ModelSpec.of(params)
    assert (spec.architecture, spec.set_dim, spec.set_layers, spec.set_heads) == ("set", 32, 1, 8)
    assert spec.depth == 2 and spec.components == 3 and spec.quantiles == (0.1, 0.9)


def test_an_unknown_augmentation_or_an_empty_ensemble_names_the_param(tmp_path):
    assert _train(tmp_path, "  augment: [phi_rotation]\n  ensemble: 3\n").augment == ["phi_rotation"]
    with pytest.raises(ParamsError,
                       match=r"train.augment\[0\]: Input should be 'phi_rotation' or 'z_reflection' \(got 'boost'\)"):
        _train(tmp_path, "  augment: [boost]\n")
    with pytest.raises(ParamsError, match=r"train.ensemble: Input should be greater than or equal to 1"):
        _train(tmp_path, "  ensemble: 0\n")
