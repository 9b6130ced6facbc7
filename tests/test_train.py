"""The train stage: a real 2-epoch run logged into a temporary SQLite MLflow store, and every bad input."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

import mtt.train as stage
from mtt.config import PrepareParams, SimulateParams, TrainParams
from mtt.prepare import run_prepare
from mtt.simulate import run_simulation
from mtt.train import TrainError, flat_weights, run_train, train_subset

TINY = TrainParams(epochs=2, batch_size=64, width=32, depth=2)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    run_simulation(SimulateParams(n_events=2000, workers=1, progress=False, seed=11), root / "raw")
    run_prepare(PrepareParams(workers=1), [root / "raw"], root / "prepared")
    return root / "prepared"


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite tracking store; the working directory is tmp_path, so artifacts land there."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    yield MlflowClient(tracking_uri=uri)
    mlflow.set_tracking_uri(None)


def _only_run(client):
    (run,) = client.search_runs(experiment_ids=[client.get_experiment_by_name("mtt").experiment_id])
    return run


def test_two_epoch_run_logs_everything(prepared, store, tmp_path):
    summary = run_train(TINY, prepared, tmp_path / "models", tmp_path / "metrics.json", tmp_path / "history.csv",
                        overrides=["epochs=2", "width=32"])
    run = _only_run(store)
    assert run.info.status == "FINISHED" and run.info.run_name == "epochs=2 width=32"
    params = run.data.params
    assert params["train.feature_set"] == "extended" and params["train.learning_rate"] == "0.001"
    assert params["train.epochs"] == "2"
    assert params["train.n_features"] == "41" and params["train.preset"] == "none"
    assert run.data.tags["feature_set"] == "extended" and int(run.data.tags["n_train"]) > 100
    for name in ("loss", "val_loss", "learning_rate", "grad_norm", "val_resolution", "val_bias", "val_width_ratio"):
        history = store.get_metric_history(run.info.run_id, name)
        assert [m.step for m in history] == [0, 1], name
    assert run.data.metrics["best_val_loss"] == pytest.approx(summary["best_val_loss"])
    assert {"epochs", "final/val_resolution", "final/val_width_ratio", "wall_time_s"} <= set(run.data.metrics)
    artifacts = {a.path for a in store.list_artifacts(run.info.run_id)}
    assert {"loss_curve.png", "history.csv", "weights", "preprocessing"} <= artifacts
    assert {a.path for a in store.list_artifacts(run.info.run_id, "preprocessing")} == {
        "preprocessing/scaler.joblib", "preprocessing/target_transform.json"}
    # the logged model: a signature, raw features in, GeV out, the same numbers as the saved model
    model_info = mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model")
    spec = model_info.signature.inputs.to_dict()[0]["tensor-spec"]
    assert spec["dtype"] == "float32" and list(spec["shape"]) == [-1, 41]
    val = pd.read_parquet(prepared / "val.parquet")
    x = val[stage.expected_features("extended")].to_numpy(np.float32)
    logged = np.asarray(mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(x)).ravel()
    import keras

    saved = np.asarray(keras.models.load_model(tmp_path / "models" / "model.keras")(x)).ravel()
    np.testing.assert_allclose(logged, saved, rtol=1e-5)
    assert 200 < np.median(saved) < 1000  # GeV
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 2
    assert list(pd.read_csv(tmp_path / "history.csv").epoch) == [0, 1]
    assert json.loads((tmp_path / "models" / "model.json").read_text())["mlflow_run_id"] == run.info.run_id


def test_same_params_and_seed_give_the_same_val_loss(prepared, store, tmp_path):
    first = run_train(TINY, prepared, tmp_path / "a")
    second = run_train(TINY, prepared, tmp_path / "b")
    assert second["best_val_loss"] == pytest.approx(first["best_val_loss"], rel=1e-6)


def test_seed_baseline_preset_and_mdn_head_train(prepared, store, tmp_path):
    from mtt.config import load_params

    baseline = load_params(_params_file(), "train",
                           ["preset=seed_baseline", "epochs=1"])
    assert baseline.feature_set == "seed" and baseline.scaler == "minmax" and baseline.target_transform == "none"
    run_train(baseline, prepared, tmp_path / "baseline", overrides=["preset=seed_baseline", "epochs=1"])
    mdn = TINY.model_copy(update={"head": "mdn", "mdn_components": 3, "schedule": "cosine", "warmup_epochs": 1,
                                  "sample_weights": "flat", "log_features": True, "optimizer": "adamw"})
    run_train(mdn, prepared, tmp_path / "mdn")
    names = sorted(r.info.run_name for r in store.search_runs(
        experiment_ids=[store.get_experiment_by_name("mtt").experiment_id]))
    assert names == ["default", "seed_baseline epochs=1"]


def _params_file():
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "params.yaml"


def test_flat_weights_flatten_the_true_spectrum():
    m_tt = 345 + np.random.default_rng(1).exponential(180, 200_000)
    weights = flat_weights(m_tt, clip=1e9)
    counts, _ = np.histogram(m_tt, bins=np.linspace(400, 800, 9), weights=weights)
    assert np.std(counts) / np.mean(counts) < 0.05
    assert weights.mean() == pytest.approx(1.0)
    clipped = flat_weights(m_tt, clip=10.0)
    assert clipped.max() / np.median(clipped) <= 10.0 + 1e-9


def test_train_subset_is_deterministic_and_nested():
    table = pd.DataFrame({"run": np.ones(1000, np.uint32), "luminosityBlock": np.zeros(1000, np.uint32),
                          "event": np.arange(1000, dtype=np.uint64)})
    small, large = train_subset(table, 100), train_subset(table, 300)
    assert len(small) == 100 and set(small) <= set(large)
    assert np.array_equal(small, train_subset(table, 100))


def test_a_diverging_run_stops_and_is_marked_failed(prepared, store, tmp_path):
    params = TINY.model_copy(update={"optimizer": "sgd", "learning_rate": 10.0, "target_transform": "none",
                                     "epochs": 5})
    with pytest.raises(TrainError, match=r"the loss became (nan|inf) at epoch \d"):
        run_train(params, prepared, tmp_path / "models")
    assert _only_run(store).info.status == "FAILED"
    assert not (tmp_path / "models").exists()


def test_ctrl_c_marks_the_run_killed(prepared, store, tmp_path, monkeypatch):
    import keras

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    monkeypatch.setattr(stage, "epoch_logger", lambda *args: Interrupt())
    with pytest.raises(KeyboardInterrupt):
        run_train(TINY, prepared, tmp_path / "models")
    assert _only_run(store).info.status == "KILLED"


def test_bad_inputs(prepared, tmp_path):
    val = pd.read_parquet(prepared / "val.parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mtt.prepare import METADATA_KEY

    def write(frame, name):
        folder = tmp_path / name
        folder.mkdir()
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = pq.read_schema(prepared / "val.parquet").metadata[METADATA_KEY]
        for split in ("train", "val"):
            pq.write_table(table.replace_schema_metadata({METADATA_KEY: meta}), folder / f"{split}.parquet")
        return folder

    with pytest.raises(TrainError, match=r"no target column 'm_tt' \(truth-less data\)"):
        run_train(TINY, write(val.drop(columns=["m_tt"]), "no_target"), tmp_path / "m")
    with pytest.raises(TrainError, match=r"missing feature columns \['m_bb'\]"):
        run_train(TINY, write(val.drop(columns=["m_bb"]), "missing"), tmp_path / "m")
    broken = val.copy()
    broken.loc[3, "b1_pt"] = np.nan
    with pytest.raises(TrainError, match=r"NaN or inf in column 'b1_pt'"):
        run_train(TINY, write(broken, "nan"), tmp_path / "m")
    reordered = tmp_path / "reordered"
    reordered.mkdir()
    features = stage.expected_features("extended")
    metadata = json.loads(pq.read_schema(prepared / "val.parquet").metadata[METADATA_KEY])
    metadata["feature_sets"]["extended"] = [features[1], features[0], *features[2:]]  # two columns swapped
    table = pa.Table.from_pandas(val, preserve_index=False)
    for split in ("train", "val"):
        pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()}),
                       reordered / f"{split}.parquet")
    with pytest.raises(TrainError, match=r"feature set 'extended' holds .* \(columns missing or reordered\)"):
        run_train(TINY, reordered, tmp_path / "m")
    with pytest.raises(TrainError, match="prepared split missing"):
        run_train(TINY, tmp_path / "nowhere", tmp_path / "m")


def test_early_stopping_reads_the_logged_val_loss(prepared, store, tmp_path):
    params = TINY.model_copy(update={"epochs": 30, "early_stopping": 1, "schedule": "reduce_on_plateau",
                                     "learning_rate": 0.05})
    summary = run_train(params, prepared, tmp_path / "models")
    assert summary["epochs"] < 30 and summary["best_epoch"] == summary["epochs"] - 2
