"""`train` stage: Keras regression of m_tt, every run fully logged to MLflow.

Reads the prepared splits, fits the preprocessing on train only (it becomes part of the model, so the saved
model takes raw features and returns GeV), trains, and logs params, lineage tags, per-epoch metrics (with
step = epoch), run-level headline figures, the loss curve, history, best weights, preprocessing, the data
checks of the validate stage, and the model with its signature. A run ends FAILED on an exception and
KILLED on Ctrl-C; with a checkpoint folder, every epoch saves the state `train.resume` continues from, into
the same MLflow run. `train.input` streams large splits through tf.data (`mtt.train.data`), and
`train.strategy` trains under a tf.distribute strategy with the same code.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtt.config import TrainParams
from mtt.io import atomic_dir, atomic_file
from mtt.metrics import median_bias, resolution, width_ratio
from mtt.train.checkpoint import TrainState, data_fingerprint, discard, save_state, state_to_resume
from mtt.train.data import (
    TrainError,
    TrainingData,
    expected_features,
    flat_weights,
    load_split,
    load_training_data,
    momentum_like,
    train_subset,
)

MODEL_FILE = "model.keras"

__all__ = ["TrainError", "flat_weights", "run_train", "train_subset", "main"]


# --- model and optimisation --------------------------------------------------------------------------


def model_spec(params: TrainParams) -> Any:
    from mtt.model import ModelSpec

    return ModelSpec(depth=params.depth, width=params.width, activation=params.activation,
                     batch_norm=params.batch_norm, dropout=params.dropout, residual=params.residual,
                     head=params.head, loss=params.loss, components=params.mdn_components,
                     quantiles=tuple(params.quantiles))


def make_optimizer(params: TrainParams, steps_per_epoch: int) -> Any:
    """Optimizer with the learning-rate schedule and gradient clipping from params."""
    import keras

    rate: Any = params.learning_rate
    total = params.epochs * steps_per_epoch
    if params.schedule == "cosine":
        warmup = params.warmup_epochs * steps_per_epoch
        rate = keras.optimizers.schedules.CosineDecay(
            params.learning_rate / 10 if warmup else params.learning_rate, decay_steps=max(total - warmup, 1),
            warmup_target=params.learning_rate if warmup else None, warmup_steps=warmup)
    elif params.schedule == "exponential":
        rate = keras.optimizers.schedules.ExponentialDecay(params.learning_rate, steps_per_epoch, decay_rate=0.9)
    clip = {"clipnorm": params.clipnorm} if params.clipnorm > 0 else {}
    if params.optimizer == "adam":
        return keras.optimizers.Adam(rate, **clip)
    if params.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, **clip)
    return keras.optimizers.SGD(rate, momentum=0.9, **clip)


def current_learning_rate(optimizer: Any) -> float:
    """The learning rate in effect now (schedules evaluated at the current step)."""
    rate = optimizer.learning_rate
    return float(np.asarray(rate))


# --- MLflow ------------------------------------------------------------------------------------------


def run_name(params: TrainParams, overrides: list[str] | None) -> str:
    """What differs: the preset and the overridden params, e.g. 'seed_baseline lr=0.01' (or 'default')."""
    parts = [] if params.preset == "none" else [params.preset]
    for item in overrides or []:
        key, _, value = item.partition("=")
        key = key.removeprefix("train.")
        if value and key != "preset":
            parts.append(f"{key}={value}")
    return " ".join(parts) or "default"


def dvc_lineage(root: Path) -> dict[str, str]:
    """DVC hashes of the pipeline outputs training depends on (from dvc.lock), as tags."""
    lock = root / "dvc.lock"
    if not lock.is_file():
        return {}
    import yaml

    stages = yaml.safe_load(lock.read_text()).get("stages", {})
    tags = {}
    for stage in ("prepare", "validate"):
        for out in stages.get(stage, {}).get("outs", []):
            tags[f"dvc.{out['path']}"] = str(out.get("md5", ""))
    return tags


def epoch_logger(x_val: np.ndarray, y_val: np.ndarray, predict: Any, sample: tuple[np.ndarray, np.ndarray],
                 network: Any, loss_fn: Any, history: list[dict[str, float]], log: bool = True,
                 resumed: TrainState | None = None) -> Any:
    """A Keras callback: per epoch, one forward pass over val gives val_loss and the GeV metrics.

    `sample` is (val features, val target in the transformed space).

    It puts val_loss into the epoch logs (early stopping and LR plateau read it there), keeps the best
    weights in memory, logs to MLflow with step = epoch (unless `log` is false: a non-chief worker), and
    stops the run on a NaN loss. A resumed run starts from the saved best loss and weights.
    """
    import keras
    import mlflow
    import tensorflow as tf

    loss_object = keras.losses.get(loss_fn) if isinstance(loss_fn, str) else loss_fn
    to_gev = predict.layers[-1]
    forward = tf.function(lambda x: network(x, training=False))

    @tf.function
    def gradient_norm(x: Any, y: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = loss_object(y, network(x, training=False))
        return tf.linalg.global_norm([g for g in tape.gradient(loss, network.trainable_weights) if g is not None])

    class EpochLogger(keras.callbacks.Callback):
        best_loss = np.inf if resumed is None else resumed.best_loss
        best_weights: list[np.ndarray] | None = None if resumed is None else resumed.best_weights

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs if logs is not None else {}
            if not np.isfinite(logs.get("loss", np.nan)):
                self.model.stop_training = True
                raise TrainError(f"the loss became {logs.get('loss')} at epoch {epoch}: diverged "
                                 "(lower train.learning_rate, set train.clipnorm, or standardise the target)")
            output = forward(x_val)
            logs["val_loss"] = val_loss = float(np.mean(np.asarray(loss_object(sample[1], output))))
            if val_loss < self.best_loss:
                self.best_loss, self.best_weights = val_loss, network.get_weights()
            pred = np.asarray(to_gev(output)).reshape(len(x_val), -1)[:, 0]
            row = {"loss": float(logs["loss"]), "val_loss": val_loss,
                   "learning_rate": current_learning_rate(self.model.optimizer),
                   "grad_norm": float(gradient_norm(sample[0][:1024], sample[1][:1024])),
                   "val_resolution": resolution(pred, y_val), "val_bias": median_bias(pred, y_val),
                   "val_width_ratio": width_ratio(pred, y_val)}
            history.append({"epoch": epoch, **row})
            if log:
                mlflow.log_metrics(row, step=epoch)

    return EpochLogger()


def checkpointer(folder: str | os.PathLike[str], logger: Any, history: list[dict[str, float]],
                 identity: dict[str, Any]) -> Any:
    """A Keras callback, last in the list: after each epoch, save the state a resumed run continues from."""
    import keras

    class Checkpointer(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            optimizer = [keras.ops.convert_to_numpy(v) for v in self.model.optimizer.variables]
            save_state(folder, TrainState(epoch=epoch, history=history, best_loss=logger.best_loss,
                                          weights=self.model.get_weights(), optimizer=optimizer,
                                          best_weights=logger.best_weights, **identity))

    return Checkpointer()


def restore(network: Any, state: TrainState) -> None:
    """Put the saved weights and optimizer state (step, learning rate, moments) back into a compiled network."""
    network.set_weights(state.weights)
    network.optimizer.build(network.trainable_variables)
    for variable, value in zip(network.optimizer.variables, state.optimizer, strict=True):
        variable.assign(value)


def distribution_strategy(name: str) -> Any:
    """The tf.distribute strategy of train.strategy: one device, all local GPUs, or a TF_CONFIG cluster."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise TrainError("train.strategy=multi_worker needs the cluster in the TF_CONFIG environment variable "
                             "(see tf.distribute.MultiWorkerMirroredStrategy); use `default` or `mirrored` on one "
                             "machine")
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as exc:  # "Collective ops must be configured at program startup"
            raise TrainError(f"train.strategy=multi_worker must set up the cluster before any other TensorFlow "
                             f"work in the process ({exc}): run `mtt train` in a fresh process") from None
    return tf.distribute.get_strategy()


def is_chief(strategy: str) -> bool:
    """Whether this process logs and writes outputs: always, except for non-chief workers of a cluster."""
    if strategy != "multi_worker":
        return True
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {})
    if task.get("type") == "chief":
        return True
    return task.get("type", "worker") == "worker" and task.get("index", 0) == 0 and "chief" not in config.get(
        "cluster", {})


# --- the stage ---------------------------------------------------------------------------------------


def run_train(params: TrainParams, prepared_dir: str | os.PathLike[str], model_dir: str | os.PathLike[str],
              metrics_path: str | os.PathLike[str] | None = None, history_path: str | os.PathLike[str] | None = None,
              overrides: list[str] | None = None, reports_dir: str | os.PathLike[str] = "reports",
              checkpoint_dir: str | os.PathLike[str] | None = None, callbacks: list[Any] | None = None,
              ) -> dict[str, Any]:
    """Train and log one run (or continue an interrupted one); return its headline figures."""
    import keras

    from mtt.model import build_network, inference_model, preprocessing_layer

    prepared_dir = Path(prepared_dir)
    features = expected_features(params.feature_set)
    x_val, y_val, _ = load_split(prepared_dir / "val.parquet", features, params.feature_set)
    if len(x_val) == 0:
        raise TrainError(f"{prepared_dir / 'val.parquet'}: empty val split")
    strategy = distribution_strategy(params.strategy)
    log_mask = momentum_like(features) if params.log_features else None
    data = load_training_data(params, prepared_dir / "train.parquet", features, log_mask)
    fingerprint = data_fingerprint(data.m_tt, len(features))
    state = _state_to_resume(params, checkpoint_dir, fingerprint)

    keras.utils.set_random_seed(params.seed)
    spec = model_spec(params)
    with strategy.scope():
        network = build_network(len(features), spec, preprocessing_layer(data.scaler, params.scaler, log_mask),
                                params.seed)
        network.compile(make_optimizer(params, int(np.ceil(data.n_rows / params.batch_size))), spec.loss_function())
        if state is not None:
            restore(network, state)
    predict = inference_model(network, spec, data.target)
    val = (x_val, y_val, (x_val, data.target.forward(y_val).astype(np.float32)))
    if not is_chief(params.strategy):  # a cluster worker: train in step with the chief, log and write nothing
        _fit(network, data, params, epoch_logger(*val[:2], predict, val[2], network, spec.loss_function(), [],
                                                 log=False), [], 0)
        return {}
    return _tracked_run(params, network, predict, data, features, val, state, model_dir, metrics_path,
                        history_path, overrides, reports_dir, checkpoint_dir, fingerprint, callbacks or [])


def _state_to_resume(params: TrainParams, checkpoint_dir: str | os.PathLike[str] | None,
                     fingerprint: str) -> TrainState | None:
    """The interrupted run to continue (train.resume), or None; without resume an old state is discarded."""
    if checkpoint_dir is None:
        if params.resume:
            raise TrainError("train.resume needs a checkpoint folder (mtt train --checkpoints)")
        return None
    if not params.resume:
        discard(checkpoint_dir)
        return None
    state = state_to_resume(checkpoint_dir, params.model_dump(), fingerprint)
    if state is None:
        print(f"train: train.resume is set, but {checkpoint_dir} holds no interrupted run: starting a new run")
    else:
        print(f"train: resuming MLflow run {state.run_id} after epoch {state.epoch}")
    return state


def _fit(network: Any, data: TrainingData, params: TrainParams, logger: Any, extra: list[Any],
         first_epoch: int) -> float:
    """model.fit from first_epoch with the logger, early stopping and LR plateau; return its seconds."""
    import keras

    callbacks = [logger]
    if params.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(patience=params.early_stopping))
    if params.schedule == "reduce_on_plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=3))
    start = time.perf_counter()
    network.fit(**data.fit_arguments(params.batch_size, first_epoch), epochs=params.epochs,
                initial_epoch=first_epoch, callbacks=callbacks + extra, verbose=0)
    return time.perf_counter() - start


def _tracked_run(params: TrainParams, network: Any, predict: Any, data: TrainingData, features: list[str],
                 val: tuple, state: TrainState | None, model_dir: str | os.PathLike[str],
                 metrics_path: str | os.PathLike[str] | None, history_path: str | os.PathLike[str] | None,
                 overrides: list[str] | None, reports_dir: str | os.PathLike[str],
                 checkpoint_dir: str | os.PathLike[str] | None, fingerprint: str, callbacks: list[Any],
                 ) -> dict[str, Any]:
    """The MLflow run around the fit: params, tags, per-epoch metrics, checkpoints, headline figures, outputs."""
    import mlflow

    from mtt import tracking

    x_val, y_val, sample = val
    tracking.configure()
    experiment = tracking.ensure_experiment(params.experiment)
    history: list[dict[str, float]] = [] if state is None else list(state.history)
    first_epoch = 0 if state is None else state.epoch + 1
    started = time.perf_counter()
    name = run_name(params, overrides)
    # resume into the interrupted run; under `mlflow run`, log into the run it started; otherwise start one
    outer = os.environ.get("MLFLOW_RUN_ID")
    start = ({"run_id": state.run_id} if state is not None else {"run_id": outer} if outer
             else {"experiment_id": experiment, "run_name": name})
    with mlflow.start_run(**start) as run:
        try:
            if state is None:
                if outer:
                    mlflow.set_tag("mlflow.runName", name)
                mlflow.log_params({**{f"train.{k}": (json.dumps(v) if isinstance(v, list) else v)
                                      for k, v in params.model_dump().items()},
                                   "train.n_features": len(features), "train.features": ",".join(features)})
                root = tracking.repo_root()
                mlflow.set_tags({**tracking.git_state(root), **dvc_lineage(root), "preset": params.preset,
                                 "n_train": data.n_rows, "n_val": len(x_val), "feature_set": params.feature_set,
                                 "input": data.mode, "strategy": params.strategy})
            else:
                mlflow.set_tags({"resumed_at_epoch": first_epoch, "resumed_epochs": params.epochs})
            spec = model_spec(params)
            logger = epoch_logger(x_val, y_val, predict, sample, network, spec.loss_function(), history,
                                  resumed=state)
            extra = list(callbacks)
            if checkpoint_dir is not None:
                identity = {"run_id": run.info.run_id, "params": params.model_dump(), "data": fingerprint}
                extra.insert(0, checkpointer(checkpoint_dir, logger, history, identity))
            fit_seconds = _fit(network, data, params, logger, extra, first_epoch)
            network.set_weights(logger.best_weights)
            with tempfile.TemporaryDirectory() as tmp:
                network.save_weights(Path(tmp) / "best.weights.h5")
                mlflow.log_artifact(str(Path(tmp) / "best.weights.h5"), artifact_path="weights")
            seconds = time.perf_counter() - started
            pred = np.asarray(predict(x_val)).reshape(len(x_val), -1)[:, 0]
            frame = pd.DataFrame(history)
            best_epoch = int(frame.epoch[frame.val_loss.idxmin()])
            summary = {"best_val_loss": float(frame.val_loss.min()), "best_epoch": best_epoch,
                       "epochs": len(frame), "val_resolution": resolution(pred, y_val),
                       "val_bias": median_bias(pred, y_val), "val_width_ratio": width_ratio(pred, y_val),
                       "wall_time_s": seconds,
                       "train_samples_per_s": data.n_rows * (len(frame) - first_epoch) / max(fit_seconds, 1e-9)}
            mlflow.log_metrics({f"final/{k}" if k in ("val_resolution", "val_bias", "val_width_ratio") else k: v
                                for k, v in summary.items()})
            _log_artifacts(frame, data.scaler, params, data.target, features, predict, x_val, reports_dir)
            _save_model(model_dir, predict, data.scaler, params, data.target, features, run.info.run_id, summary)
        except KeyboardInterrupt:
            mlflow.end_run(status="KILLED")
            raise
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
    if checkpoint_dir is not None:
        discard(checkpoint_dir)
    summary["run_id"] = run.info.run_id
    if metrics_path is not None:
        with atomic_file(metrics_path) as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
    if history_path is not None:
        with atomic_file(history_path) as tmp:
            frame.to_csv(tmp, index=False)
    return summary


def _log_artifacts(frame: pd.DataFrame, scaler: Any, params: TrainParams, target: Any, features: list[str],
                   predict: Any, x_val: np.ndarray, reports_dir: str | os.PathLike[str]) -> None:
    """Loss curve, history, preprocessing, data checks, and the model with its signature."""
    import mlflow
    from mlflow.models import infer_signature

    from mtt import plots, tracking
    from mtt.validate.scaling import save_scaler

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plots.loss_curve(frame, tmp / "loss_curve.png")
        frame.to_csv(tmp / "history.csv", index=False)
        save_scaler(scaler, params.scaler, features, tmp / "scaler.joblib")
        (tmp / "target_transform.json").write_text(json.dumps(asdict(target)))
        for name in ("loss_curve.png", "history.csv"):
            mlflow.log_artifact(str(tmp / name))
        for name in ("scaler.joblib", "target_transform.json"):
            mlflow.log_artifact(str(tmp / name), artifact_path="preprocessing")
    summary = Path(reports_dir) / "validation.json"
    if summary.is_file():
        tracking.log_data_checks(summary, Path(reports_dir) / "data_docs")
    example = x_val[:5]
    signature = infer_signature(example, np.asarray(predict(example)))
    mlflow.keras.log_model(predict, name="model", signature=signature)


def _save_model(model_dir: str | os.PathLike[str], predict: Any, scaler: Any, params: TrainParams, target: Any,
                features: list[str], run_id: str, summary: dict[str, Any]) -> None:
    """The DVC output: the inference model (raw features -> GeV), its preprocessing and its run id."""
    from mtt.validate.scaling import save_scaler

    with atomic_dir(model_dir) as tmp:
        predict.save(tmp / MODEL_FILE)
        save_scaler(scaler, params.scaler, features, tmp / "scaler.joblib")
        (tmp / "model.json").write_text(json.dumps({"features": features, "target_transform": asdict(target),
                                                    "mlflow_run_id": run_id, "params": params.model_dump(),
                                                    "summary": summary}, indent=2) + "\n")


def main(params: TrainParams, prepared_dir: str, model_dir: str, metrics_path: str | None, history_path: str | None,
         overrides: list[str] | None = None, checkpoint_dir: str | None = None) -> dict[str, Any]:
    """Stage entry: train, print the headline figures."""
    summary = run_train(params, prepared_dir, model_dir, metrics_path, history_path, overrides,
                        checkpoint_dir=checkpoint_dir)
    if not summary:
        return summary
    print(f"train: run {summary['run_id']}: best val_loss {summary['best_val_loss']:.4g} at epoch "
          f"{summary['best_epoch']}, val resolution {summary['val_resolution']:.3f}, width ratio "
          f"{summary['val_width_ratio']:.3f}, {summary['train_samples_per_s']:.0f} samples/s")
    return summary
