"""The train stage: a real 2-epoch run logged into a temporary SQLite MLflow store, and every bad input."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from mtt.core import cpu
from mtt.core.dataset import FEATURE_SETS
from mtt.core.errors import DataError, TrainError
from mtt.core.params import parse_overrides
from mtt.stages.train.checkpoint import discard
from mtt.stages.train.data import flat_weights, train_subset
from mtt.stages.train.params import TrainParams
from mtt.stages.train.stage import TrainPaths, run_name, run_train
from mtt.tools.params import load_params

TINY = TrainParams(epochs=2, batch_size=64, width=32, depth=2)


def train(params, prepared, model, metrics=None, history=None, overrides=None, checkpoint_dir=None,
          callbacks=None, reference=None):
    """run_train with the stage's paths: the reference next to the prepared folder unless given."""
    paths = TrainPaths(prepared=prepared, reference=reference or prepared.parent / "reference", model=model,
                       metrics=metrics, history=history, checkpoints=checkpoint_dir)
    return run_train(params, paths, run_name(params, parse_overrides(overrides, "train")), callbacks)


@pytest.fixture(scope="module")
def prepared(small_prepared):
    return small_prepared


def _only_run(client):
    (run,) = client.search_runs(experiment_ids=[client.get_experiment_by_name("mtt").experiment_id])
    return run


def test_two_epoch_run_logs_everything(prepared, store, tmp_path):
    summary = train(TINY, prepared, tmp_path / "models", tmp_path / "metrics.json", tmp_path / "history.csv",
                        overrides=["epochs=2", "width=32"])
    run = _only_run(store)
    assert run.info.status == "FINISHED" and run.info.run_name == "epochs=2 width=32"
    params = run.data.params
    assert params["train.feature_set"] == "extended" and params["train.learning_rate"] == "0.001"
    assert params["train.epochs"] == "2"
    assert params["train.n_features"] == "41" and params["train.preset"] == "none"
    assert run.data.tags["feature_set"] == "extended" and int(run.data.tags["n_train"]) > 100
    assert run.data.tags["mtt.cpu_arithmetic"] == cpu.arithmetic()  # which instruction set made the bits
    # per-epoch physics under epoch/ (the UI's first section), the val RMSE in GeV among them; the diagnostics
    # under watch/ (a section after the evaluation's)
    per_epoch = {"epoch": ("loss", "val_loss", "val_rmse_gev", "val_resolution", "val_bias", "val_width_ratio"),
                 "watch": ("learning_rate", "grad_norm", "dead_relu_fraction", "output_bias")}
    for prefix, names in per_epoch.items():
        for name in names:
            history = [m for m in store.get_metric_history(run.info.run_id, f"{prefix}/{name}") if m.model_id is None]
            assert [m.step for m in history] == [0, 1], name
    assert {k.split("/")[0] for k in run.data.metrics if "/" in k} - {"system"} == {"epoch", "final", "watch"}
    assert list(pd.read_csv(tmp_path / "history.csv").columns) == [  # bare names: the compare stage reads them
        "epoch", "loss", "val_loss", "val_rmse_gev", "learning_rate", "grad_norm", "val_resolution", "val_bias",
        "val_width_ratio", "dead_relu_fraction", "output_bias"]
    assert run.data.metrics["best_val_loss"] == pytest.approx(summary["best_val_loss"])
    assert {"epochs", "final/val_resolution", "final/val_width_ratio", "final/val_rmse_gev",
            "wall_time_s"} <= set(run.data.metrics)
    assert 20 < run.data.metrics["final/val_rmse_gev"] < 2000  # GeV, whatever the target transform
    assert params["train.objective"] == "mse" and "val RMSE" in run.data.tags["mlflow.note.content"]
    # the logged model carries the figures of the epoch whose weights it holds
    best = summary["best_epoch"]
    model_metrics = mlflow.get_logged_model(mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model").model_id
                                            ).metrics
    assert {m.step for m in model_metrics} == {best} and any(m.key == "epoch/val_resolution" for m in model_metrics)
    experiment = store.get_experiment_by_name("mtt")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on the runs
    artifacts = {a.path for a in store.list_artifacts(run.info.run_id)}
    assert {"loss_curve.png", "history.csv", "weights", "preprocessing"} <= artifacts
    assert {a.path for a in store.list_artifacts(run.info.run_id, "preprocessing")} == {
        "preprocessing/scaler.npz", "preprocessing/target_transform.json"}
    assert run.data.tags["scaler"] == "standard"
    # the logged model: a signature, raw features in, GeV out, the same numbers as the saved model
    model_info = mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model")
    spec = model_info.signature.inputs.to_dict()[0]["tensor-spec"]
    assert spec["dtype"] == "float32" and list(spec["shape"]) == [-1, 41]
    val = pd.read_parquet(prepared / "val.parquet")
    x = val[FEATURE_SETS["extended"]].to_numpy(np.float32)
    logged = np.asarray(mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(x)).ravel()
    import keras

    saved = np.asarray(keras.models.load_model(tmp_path / "models" / "model.keras")(x)).ravel()
    np.testing.assert_allclose(logged, saved, rtol=1e-5)
    assert 200 < np.median(saved) < 1000  # GeV
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 2
    assert list(pd.read_csv(tmp_path / "history.csv").epoch) == [0, 1]
    assert json.loads((tmp_path / "models" / "model.json").read_text())["mlflow_run_id"] == run.info.run_id
    # registered as version 1 of train.registered_model, alias candidate, with the promotion metric recorded
    version = store.get_model_version_by_alias(TINY.registered_model, "candidate")
    assert str(version.version) == "1" and version.run_id == run.info.run_id
    assert version.tags["promote.metric"] == TINY.promote_metric == "final/val_resolution"
    assert float(version.tags["promote.value"]) == run.data.metrics["final/val_resolution"]
    # the splits it read as MLflow datasets: source the path, digest the content hash, schema from the footer
    from mtt.core.io import file_sha256

    inputs = {tag.value: entry.dataset for entry in store.get_run(run.info.run_id).inputs.dataset_inputs
              for tag in entry.tags if tag.key == "mlflow.data.context"}
    assert set(inputs) == {"training", "validation", "testing"}
    for context, split in (("training", "train"), ("validation", "val"), ("testing", "test")):
        dataset, path = inputs[context], (prepared / f"{split}.parquet").resolve()
        assert dataset.name == f"prepared/{split}" and dataset.source_type == "local"
        assert json.loads(dataset.source) == {"uri": str(path)}
        assert dataset.digest == file_sha256(path)[:16]
        assert split == "test" or run.data.tags[f"data.{split}_sha256"].startswith(dataset.digest)  # lineage's hash
        assert json.loads(dataset.profile) == {"num_rows": len(pd.read_parquet(path, columns=["m_tt"]))}
        columns = {c["name"]: c["type"] for c in json.loads(dataset.schema)["mlflow_colspec"]}
        assert (columns["m_tt"], columns["run"], columns["event"], columns["channel"]) == (
            "float", "long", "long", "string")  # the footer's types: float32, uint32, uint64, string


def _fitted(params, prepared, tmp_path):
    """(per-epoch history, final weights) of a fit without MLflow (the stage's set-up and callbacks)."""
    from mtt.core.model import network_loss
    from mtt.stages.train.callbacks import epoch_logger
    from mtt.stages.train.fit import Trainer

    paths = TrainPaths(prepared=prepared, reference=prepared.parent / "reference", model=tmp_path / "unused")
    trainer = Trainer.build(params, paths)
    history: list[dict[str, float]] = []
    trainer.fit(epoch_logger(trainer.val, trainer.predict, trainer.network, network_loss(trainer.network, trainer.spec),
                             history, log=False), [])
    return history, trainer.network.get_weights()


def test_two_fits_with_the_same_seed_are_bit_identical(prepared, tmp_path):
    params = TrainParams(epochs=2, batch_size=64, width=8, depth=1)
    (history_a, weights_a), (history_b, weights_b) = (_fitted(params, prepared, tmp_path) for _ in range(2))
    assert [h["val_loss"] for h in history_a] == [h["val_loss"] for h in history_b]
    assert history_a == history_b
    assert len(weights_a) == len(weights_b) and all(np.array_equal(a, b) for a, b in zip(weights_a, weights_b,
                                                                                          strict=True))


@pytest.mark.slow
def test_two_flow_fits_with_the_same_seed_are_bit_identical(prepared, tmp_path):
    """At the flow preset's size, Grappler's arithmetic rewrites made the flow's gradients change with thread timing:
    two fits differed after one epoch (make_deterministic now switches them off for this head)."""
    params = TrainParams(epochs=1, head="flow", feature_set="extended", width=128, optimizer="adamw")
    (history_a, weights_a), (history_b, weights_b) = (_fitted(params, prepared, tmp_path) for _ in range(2))
    assert history_a == history_b
    assert all(np.array_equal(a, b) for a, b in zip(weights_a, weights_b, strict=True))


@pytest.mark.slow
def test_same_params_and_seed_give_bit_identical_weights(prepared, store, tmp_path):
    import keras

    params = TrainParams(epochs=2, batch_size=64, width=8, depth=1, registered_model="")
    runs = [train(params, prepared, tmp_path / name, history=tmp_path / f"{name}.csv") for name in ("a", "b")]
    assert runs[1]["best_val_loss"] == runs[0]["best_val_loss"]
    assert runs[1]["val_resolution"] == runs[0]["val_resolution"]
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()  # every epoch's figures
    first, second = (keras.models.load_model(tmp_path / name / "model.keras").get_weights() for name in "ab")
    assert len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.slow
def test_seed_baseline_preset_and_mdn_head_train(prepared, store, tmp_path):
    baseline = load_params(_params_file(), "train",
                           ["preset=seed_baseline", "epochs=1"])
    assert baseline.feature_set == "seed" and baseline.scaler == "minmax" and baseline.target_transform == "none"
    train(baseline, prepared, tmp_path / "baseline", overrides=["preset=seed_baseline", "epochs=1"])
    mdn = TINY.model_copy(update={"head": "mdn", "mdn_components": 3, "schedule": "cosine", "warmup_epochs": 1,
                                  "sample_weights": "flat", "log_features": True, "optimizer": "adamw",
                                  "augment": ["phi_rotation", "z_reflection"], "ensemble": 2})
    train(mdn, prepared, tmp_path / "mdn")
    runs = {r.info.run_name: r for r in store.search_runs(
        experiment_ids=[store.get_experiment_by_name("mtt").experiment_id])}
    assert sorted(runs) == ["default", "seed_baseline epochs=1"]
    # the MDN run logs the loss it minimises, not the point head's unused train.loss
    assert runs["default"].data.params["train.objective"] == "mixture_nll (3 Gaussians)"
    assert "train.loss" not in runs["default"].data.params
    # the augmented two-member ensemble: logged, and saved as one mixture of 2 x 3 Gaussians
    assert runs["default"].data.params["train.ensemble"] == "2"
    assert json.loads(runs["default"].data.params["train.augment"]) == ["phi_rotation", "z_reflection"]
    import keras

    from mtt.core.inference import head_output

    model = keras.models.load_model(tmp_path / "mdn" / "model.keras")
    columns = FEATURE_SETS["extended"]
    val = pd.read_parquet(prepared / "val.parquet", columns=columns)
    output = head_output(model, val.to_numpy(np.float32), {})
    assert output.mixture.weights.shape == (len(val), 6) and np.isfinite(output.point).all()


def test_run_names_say_what_differs_from_the_committed_params():
    committed = TrainParams(width=100, learning_rate=1e-3)
    assert run_name(TrainParams(width=100, learning_rate=1e-3), None, committed) == "default"
    edited = TrainParams(width=64, learning_rate=1e-2, quantiles=[0.1, 0.9])  # e.g. params.yaml edited by hand
    assert run_name(edited, None, committed) == "width=64 quantiles=0.1,0.9 learning_rate=0.01"
    named = run_name(edited, None, committed, "clear-mica")  # a DVC experiment
    assert named == "clear-mica: width=64 quantiles=0.1,0.9 learning_rate=0.01"
    preset = TrainParams(preset="seed_baseline", feature_set="seed", epochs=3)
    assert run_name(preset, None, TrainParams(preset="seed_baseline", feature_set="seed")) == "seed_baseline epochs=3"
    assert run_name(TrainParams(epochs=3), {"epochs": 3}) == "epochs=3"  # outside git: the overrides


def test_committed_baseline_applies_the_preset(tmp_path):
    import subprocess

    from mtt.stages.train.stage import committed_baseline

    text = _params_file().read_text()
    (tmp_path / "params.yaml").write_text(text)
    assert committed_baseline(tmp_path / "params.yaml", "none") is None  # not in git
    for args in (["init", "-q"], ["add", "params.yaml"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit",
                                                          "-qm", "p"]):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "params.yaml").write_text(text.replace("learning_rate: 0.001", "learning_rate: 0.01", 1))
    assert committed_baseline(tmp_path / "params.yaml", "none") == load_params(_params_file(), "train")
    seed = committed_baseline(tmp_path / "params.yaml", "seed_baseline")
    assert seed.preset == "seed_baseline" and seed.feature_set == "seed"


def _params_file():
    from pathlib import Path

    return Path(__file__).resolve().parents[3] / "params.yaml"


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
        train(params, prepared, tmp_path / "models")
    assert _only_run(store).info.status == "FAILED"
    assert not (tmp_path / "models").exists()


def interrupt_at(stop_epoch):
    """A callback that presses Ctrl-C at the end of an epoch."""
    import keras

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == stop_epoch:
                raise KeyboardInterrupt

    return Interrupt()


def test_ctrl_c_marks_the_run_killed(prepared, store, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(TINY, prepared, tmp_path / "models", callbacks=[interrupt_at(0)])
    assert _only_run(store).info.status == "KILLED"
    assert not (tmp_path / "models").exists()


def test_bad_inputs(prepared, tmp_path):
    val = pd.read_parquet(prepared / "val.parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mtt.core.dataset import METADATA_KEY

    def write(frame, name):
        folder = tmp_path / name
        folder.mkdir()
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = pq.read_schema(prepared / "val.parquet").metadata[METADATA_KEY]
        for split in ("train", "val"):
            pq.write_table(table.replace_schema_metadata({METADATA_KEY: meta}), folder / f"{split}.parquet")
        return folder

    reference = prepared.parent / "reference"
    with pytest.raises(DataError, match=r"no target column 'm_tt' \(truth-less data"):
        train(TINY, write(val.drop(columns=["m_tt"]), "no_target"), tmp_path / "m", reference=reference)
    with pytest.raises(DataError, match=r"missing columns \['m_bb'\]"):
        train(TINY, write(val.drop(columns=["m_bb"]), "missing"), tmp_path / "m", reference=reference)
    broken = val.copy()
    broken.loc[3, "b1_pt"] = np.nan
    with pytest.raises(DataError, match=r"NaN or inf in column 'b1_pt'"):
        train(TINY, write(broken, "nan"), tmp_path / "m", reference=reference)
    reordered = tmp_path / "reordered"
    reordered.mkdir()
    features = FEATURE_SETS["extended"]
    metadata = json.loads(pq.read_schema(prepared / "val.parquet").metadata[METADATA_KEY])
    metadata["feature_sets"]["extended"] = [features[1], features[0], *features[2:]]  # two columns swapped
    table = pa.Table.from_pandas(val, preserve_index=False)
    for split in ("train", "val"):
        pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()}),
                       reordered / f"{split}.parquet")
    with pytest.raises(DataError, match=r"feature set 'extended' holds .* \(columns missing or reordered\)"):
        train(TINY, reordered, tmp_path / "m", reference=reference)
    with pytest.raises(DataError, match="prepared split missing"):
        train(TINY, tmp_path / "nowhere", tmp_path / "m", reference=reference)


@pytest.mark.slow
def test_early_stopping_reads_the_logged_val_loss(prepared, store, tmp_path):
    params = TINY.model_copy(update={"epochs": 30, "early_stopping": 1, "schedule": "reduce_on_plateau",
                                     "learning_rate": 0.05})
    summary = train(params, prepared, tmp_path / "models")
    assert summary["epochs"] < 30 and summary["best_epoch"] == summary["epochs"] - 2


# --- resume ------------------------------------------------------------------------------------------


def test_resume_after_an_interruption_continues_the_same_run(prepared, store, tmp_path):
    params = TINY.model_copy(update={"epochs": 4, "schedule": "exponential"})
    checkpoints = tmp_path / "checkpoints"
    with pytest.raises(KeyboardInterrupt):
        train(params, prepared, tmp_path / "models", checkpoint_dir=checkpoints, callbacks=[interrupt_at(1)])
    killed = _only_run(store)
    assert killed.info.status == "KILLED" and (checkpoints / "state.npz").is_file()

    summary = train(params.model_copy(update={"resume": True}), prepared, tmp_path / "models",
                        checkpoint_dir=checkpoints)
    run = _only_run(store)  # still one run: the interrupted one, continued
    assert run.info.run_id == killed.info.run_id == summary["run_id"]
    assert run.info.status == "FINISHED" and run.data.tags["resumed_at_epoch"] == "2"
    assert summary["epochs"] == 4
    steps = [m.step for m in store.get_metric_history(run.info.run_id, "epoch/val_loss") if m.model_id is None]
    assert sorted(steps) == [0, 1, 2, 3]
    # the optimizer state came back: the exponential schedule (x0.9 per epoch) kept counting its steps
    rates = {m.step: m.value for m in store.get_metric_history(run.info.run_id, "watch/learning_rate")}
    assert rates[2] == pytest.approx(TINY.learning_rate * 0.9**3, rel=1e-5)
    assert not (checkpoints / "state.npz").exists()  # a finished run leaves no state behind


@pytest.mark.slow  # two short trainings; resuming after an interruption is the fast case
def test_resume_refuses_changed_params_and_starts_afresh_without_state(prepared, store, tmp_path, capsys):
    checkpoints = tmp_path / "checkpoints"
    with pytest.raises(KeyboardInterrupt):
        train(TINY, prepared, tmp_path / "models", checkpoint_dir=checkpoints, callbacks=[interrupt_at(0)])
    changed = TINY.model_copy(update={"resume": True, "learning_rate": 0.01})
    with pytest.raises(TrainError, match=r"state.npz: the interrupted run .* different train params: learning_rate"):
        train(changed, prepared, tmp_path / "models", checkpoint_dir=checkpoints)
    with pytest.raises(TrainError, match="train.resume needs a checkpoint folder"):
        train(changed, prepared, tmp_path / "models")
    discard(checkpoints)
    train(TINY.model_copy(update={"resume": True, "epochs": 1}), prepared, tmp_path / "models",
              checkpoint_dir=checkpoints)
    assert "holds no interrupted run: starting a new run" in capsys.readouterr().out


def test_checkpoint_state_round_trip(tmp_path):
    from mtt.stages.train.checkpoint import TrainState, load_state, save_state

    state = TrainState(epoch=3, run_id="abc", params={"epochs": 5}, data="f00", history=[{"epoch": 0, "loss": 1.0}],
                       best_loss=0.5, weights=[np.ones((2, 3)), np.zeros(3)], optimizer=[np.array(7)],
                       best_weights=[np.full((2, 3), 2.0), np.ones(3)])
    save_state(tmp_path, state)
    loaded = load_state(tmp_path)
    assert (loaded.epoch, loaded.run_id, loaded.params, loaded.history, loaded.best_loss) == (
        3, "abc", {"epochs": 5}, [{"epoch": 0, "loss": 1.0}], 0.5)
    for group in ("weights", "optimizer", "best_weights"):
        assert all(np.array_equal(a, b) for a, b in zip(getattr(loaded, group), getattr(state, group), strict=True))
    assert load_state(tmp_path / "nothing") is None


# --- input pipeline and strategies -------------------------------------------------------------------


@pytest.mark.slow
def test_streamed_input_trains_and_logs_its_mode(prepared, store, tmp_path):
    summary = train(TINY.model_copy(update={"input": "stream", "sample_weights": "flat"}), prepared,
                        tmp_path / "models")
    run = _only_run(store)
    assert run.data.tags["input"] == "stream" and summary["epochs"] == 2
    assert np.isfinite(summary["best_val_loss"])


@pytest.mark.slow
def test_mirrored_strategy_trains_with_the_same_code(prepared, store, tmp_path):
    summary = train(TINY.model_copy(update={"strategy": "mirrored", "epochs": 1}), prepared, tmp_path / "models")
    assert _only_run(store).data.tags["strategy"] == "mirrored" and summary["epochs"] == 1


def test_multi_worker_needs_tf_config(prepared, tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(TrainError, match="multi_worker needs the cluster in the TF_CONFIG"):
        train(TINY.model_copy(update={"strategy": "multi_worker"}), prepared, tmp_path / "models")


@pytest.mark.slow
def test_multi_worker_on_a_one_worker_cluster(prepared, tmp_path):
    """`mtt train` in a fresh process (the cluster must be set up before TensorFlow runs anything)."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    cluster = {"cluster": {"worker": [f"localhost:{port}"]}, "task": {"type": "worker", "index": 0}}
    env = {**os.environ, "TF_CONFIG": json.dumps(cluster), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    result = subprocess.run(
        [sys.executable, "-m", "mtt", "train", "--params", str(_params_file()), "--prepared", str(prepared),
         "--reference", str(prepared.parent / "reference"), "--model", str(tmp_path / "models"),
         "--metrics", str(tmp_path / "metrics.json"),
         "--history", str(tmp_path / "history.csv"), "--checkpoints", str(tmp_path / "checkpoints"),
         "-S", "strategy=multi_worker", "-S", "epochs=1", "-S", "width=16", "-S", "depth=1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 1


# --- the set architecture -----------------------------------------------------------------------------


@pytest.mark.slow  # ~10 s; the fast tier has tests/train/test_set_network.py
def test_the_set_architecture_trains_on_the_prepared_objects(prepared, store, tmp_path):
    from mtt.core.dataset import ELLIPSE_FEATURES, object_columns, open_split, written_jets

    params = TINY.model_copy(update={"feature_set": "objects+ellipse", "architecture": "set", "max_jets": 4,
                                     "set_dim": 16, "set_layers": 1, "set_heads": 2, "epochs": 1})
    summary = train(params, prepared, tmp_path / "models", overrides=["architecture=set", "max_jets=4"])
    run = _only_run(store)
    assert run.info.status == "FINISHED" and run.info.run_name == "architecture=set max_jets=4"
    features = object_columns(4) + ELLIPSE_FEATURES
    assert run.data.params["train.architecture"] == "set" and run.data.params["train.max_jets"] == "4"
    assert (run.data.params["train.set_dim"], run.data.params["train.set_heads"]) == ("16", "2")
    assert run.data.params["train.features"] == ",".join(features) and run.data.tags["architecture"] == "set"
    assert np.isfinite(summary["best_val_loss"])
    import keras

    val = pd.read_parquet(prepared / "val.parquet")
    saved = np.asarray(keras.models.load_model(tmp_path / "models" / "model.keras")(
        val[features].to_numpy(np.float32))).ravel()
    assert np.isfinite(saved).all()
    written = written_jets(open_split(prepared / "val.parquet").metadata["feature_sets"]["objects"])
    with pytest.raises(DataError, match=rf"{written + 1} jets requested \(train.max_jets\) but prepare wrote "):
        train(params.model_copy(update={"max_jets": written + 1}), prepared, tmp_path / "other")
