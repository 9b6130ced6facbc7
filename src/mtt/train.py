"""`train` stage: Keras regression of m_tt, every run fully logged to MLflow.

Reads the prepared splits, fits the preprocessing on train only (it becomes part of the model, so the saved
model takes raw features and returns GeV), trains, and logs params, lineage tags, per-epoch metrics (with
step = epoch), run-level headline figures, the loss curve, history, best weights, preprocessing, the data
checks of the validate stage, and the model with its signature. A run ends FAILED on an exception and
KILLED on Ctrl-C.
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
from mtt.prepare.features import TARGET

MODEL_FILE = "model.keras"


class TrainError(ValueError):
    """Bad training input or a diverging run, with the file, column or epoch."""


# --- data --------------------------------------------------------------------------------------------


def expected_features(feature_set: str) -> list[str]:
    """The columns of a feature set, as `prepare` defines them."""
    from mtt.prepare.features import FEATURE_SETS

    return list(FEATURE_SETS[feature_set])


def load_split(path: Path, features: list[str], feature_set: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(features float32, true m_tt, the table) of one split, checking columns, order, target and NaNs."""
    from mtt.prepare import read_metadata

    if not path.is_file():
        raise TrainError(f"{path}: prepared split missing; run the prepare stage first")
    stored = read_metadata(path).get("feature_sets", {}).get(feature_set)
    if stored is None:
        raise TrainError(f"{path}: no feature set {feature_set!r} in the file (train.feature_set); "
                         "re-run prepare with it in prepare.feature_sets")
    if stored != features:
        raise TrainError(f"{path}: feature set {feature_set!r} holds {stored}, but this code expects {features} "
                         "(columns missing or reordered): re-run prepare")
    table = pd.read_parquet(path)
    missing = [c for c in features if c not in table.columns]
    if missing:
        raise TrainError(f"{path}: missing feature columns {missing}")
    if TARGET not in table.columns:
        raise TrainError(f"{path}: no target column {TARGET!r} (truth-less data): cannot train on it")
    x = table[features].to_numpy(np.float32)
    y = table[TARGET].to_numpy(np.float64)
    bad = ~np.isfinite(x)
    if bad.any() or not np.isfinite(y).all():
        column = features[int(np.flatnonzero(bad.any(axis=0))[0])] if bad.any() else TARGET
        raise TrainError(f"{path}: NaN or inf in column {column!r} ({int(bad.sum())} feature values): "
                         "run the validate stage")
    return x, y, table


def train_subset(table: pd.DataFrame, n_train: int) -> np.ndarray:
    """Row indices of a deterministic subset: the n events with the smallest identity hash (nested in n)."""
    if n_train == 0 or n_train >= len(table):
        return np.arange(len(table))
    from mtt.prepare.split import unit_interval_hash

    u = unit_interval_hash(table["run"].to_numpy(), table["luminosityBlock"].to_numpy(), table["event"].to_numpy())
    return np.sort(np.argsort(u, kind="stable")[:n_train])


def flat_weights(m_tt: np.ndarray, clip: float, bins: int = 40) -> np.ndarray:
    """Weights inverse to the true m_tt density (equal-population bins), mean 1, clipped at clip x median."""
    edges = np.unique(np.quantile(m_tt, np.linspace(0, 1, bins + 1)))
    index = np.clip(np.searchsorted(edges, m_tt, side="right") - 1, 0, edges.size - 2)
    density = np.bincount(index, minlength=edges.size - 1) / np.diff(edges)
    weights = 1.0 / density[index]
    weights = np.minimum(weights, clip * np.median(weights))
    return weights / weights.mean()


def momentum_like(features: list[str]) -> list[bool]:
    """Features that are positive and skewed (pT, E, masses, HT, MET): candidates for log1p."""
    return [c.endswith(("_pt", "_e")) or c.startswith("m_") or c in ("ht", "met_pt") for c in features]


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
                 network: Any, loss_fn: Any, history: list[dict[str, float]]) -> Any:
    """A Keras callback: per epoch, one forward pass over val gives val_loss and the GeV metrics.

    `sample` is (val features, val target in the transformed space).

    It puts val_loss into the epoch logs (early stopping and LR plateau read it there), keeps the best
    weights in memory, logs to MLflow with step = epoch, and stops the run on a NaN loss.
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
        best_loss = np.inf
        best_weights: list[np.ndarray] | None = None

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
            mlflow.log_metrics(row, step=epoch)

    return EpochLogger()


def loss_curve_png(history: pd.DataFrame, path: Path) -> None:
    """Loss and val_loss vs epoch, with the width ratio: the plot that shows plateaus and shrinkage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_width) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
    ax_loss.plot(history.epoch, history.loss, label="train")
    ax_loss.plot(history.epoch, history.val_loss, label="val")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_width.plot(history.epoch, history.val_width_ratio)
    ax_width.axhline(1.0, color="grey", lw=0.8)
    ax_width.set_ylabel("std(pred) / std(true)")
    ax_width.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- the stage ---------------------------------------------------------------------------------------


def run_train(params: TrainParams, prepared_dir: str | os.PathLike[str], model_dir: str | os.PathLike[str],
              metrics_path: str | os.PathLike[str] | None = None, history_path: str | os.PathLike[str] | None = None,
              overrides: list[str] | None = None, reports_dir: str | os.PathLike[str] = "reports") -> dict[str, Any]:
    """Train and log one run; return its headline figures (also written to `metrics_path`)."""
    import keras
    import mlflow

    from mtt import tracking
    from mtt.model import TargetTransform, build_network, inference_model, preprocessing_layer
    from mtt.validate.scaling import fit_scaler

    prepared_dir = Path(prepared_dir)
    features = expected_features(params.feature_set)
    x_train, y_train, train_table = load_split(prepared_dir / "train.parquet", features, params.feature_set)
    x_val, y_val, _ = load_split(prepared_dir / "val.parquet", features, params.feature_set)
    rows = train_subset(train_table, params.n_train)
    x_train, y_train = x_train[rows], y_train[rows]
    if len(x_train) == 0 or len(x_val) == 0:
        raise TrainError(f"{prepared_dir}: empty train or val split")

    keras.utils.set_random_seed(params.seed)
    log_mask = momentum_like(features) if params.log_features else None
    scaled_input = x_train.astype(np.float64)
    if log_mask:
        scaled_input[:, log_mask] = np.log1p(np.maximum(scaled_input[:, log_mask], 0))
    scaler = fit_scaler(params.scaler, scaled_input)
    target = TargetTransform.fit(params.target_transform, y_train)
    spec = model_spec(params)
    network = build_network(len(features), spec, preprocessing_layer(scaler, params.scaler, log_mask), params.seed)
    steps = int(np.ceil(len(x_train) / params.batch_size))
    network.compile(make_optimizer(params, steps), spec.loss_function())
    weights = flat_weights(y_train, params.flat_clip) if params.sample_weights == "flat" else None
    predict = inference_model(network, spec, target)

    tracking.configure()
    experiment = tracking.ensure_experiment(params.experiment)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    name = run_name(params, overrides)
    # under `mlflow run`, log into the run it started (MLFLOW_RUN_ID); otherwise start one
    outer = os.environ.get("MLFLOW_RUN_ID")
    start = {"run_id": outer} if outer else {"experiment_id": experiment, "run_name": name}
    with mlflow.start_run(**start) as run:
        try:
            if outer:
                mlflow.set_tag("mlflow.runName", name)
            mlflow.log_params({**{f"train.{k}": (json.dumps(v) if isinstance(v, list) else v)
                                  for k, v in params.model_dump().items()},
                               "train.n_features": len(features), "train.features": ",".join(features)})
            root = tracking.repo_root()
            mlflow.set_tags({**tracking.git_state(root), **dvc_lineage(root), "preset": params.preset,
                             "n_train": len(x_train), "n_val": len(x_val), "feature_set": params.feature_set})
            sample = (x_val, target.forward(y_val).astype(np.float32))
            with tempfile.TemporaryDirectory() as ckpt:
                best = Path(ckpt) / "best.weights.h5"
                logger = epoch_logger(x_val, y_val, predict, sample, network, spec.loss_function(), history)
                callbacks = [logger]
                if params.early_stopping:
                    callbacks.append(keras.callbacks.EarlyStopping(patience=params.early_stopping))
                if params.schedule == "reduce_on_plateau":
                    callbacks.append(keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=3))
                fit_start = time.perf_counter()
                network.fit(x_train, target.forward(y_train).astype(np.float32), sample_weight=weights,
                            batch_size=params.batch_size, epochs=params.epochs, callbacks=callbacks, verbose=0,
                            shuffle=True)
                fit_seconds = time.perf_counter() - fit_start
                network.set_weights(logger.best_weights)
                network.save_weights(best)
                mlflow.log_artifact(str(best), artifact_path="weights")
            seconds = time.perf_counter() - started
            pred = np.asarray(predict(x_val)).reshape(len(x_val), -1)[:, 0]
            frame = pd.DataFrame(history)
            best_epoch = int(frame.val_loss.idxmin())
            summary = {"best_val_loss": float(frame.val_loss.min()), "best_epoch": best_epoch,
                       "epochs": len(frame), "val_resolution": resolution(pred, y_val),
                       "val_bias": median_bias(pred, y_val), "val_width_ratio": width_ratio(pred, y_val),
                       "wall_time_s": seconds, "train_samples_per_s": len(x_train) * len(frame) / fit_seconds}
            mlflow.log_metrics({f"final/{k}" if k in ("val_resolution", "val_bias", "val_width_ratio") else k: v
                                for k, v in summary.items()})
            _log_artifacts(frame, scaler, params, target, features, predict, x_val, reports_dir)
            _save_model(model_dir, predict, scaler, params, target, features, run.info.run_id, summary)
        except KeyboardInterrupt:
            mlflow.end_run(status="KILLED")
            raise
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
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

    from mtt import tracking
    from mtt.validate.scaling import save_scaler

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        loss_curve_png(frame, tmp / "loss_curve.png")
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
         overrides: list[str] | None = None) -> dict[str, Any]:
    """Stage entry: train, print the headline figures."""
    summary = run_train(params, prepared_dir, model_dir, metrics_path, history_path, overrides)
    print(f"train: run {summary['run_id']}: best val_loss {summary['best_val_loss']:.4g} at epoch "
          f"{summary['best_epoch']}, val resolution {summary['val_resolution']:.3f}, width ratio "
          f"{summary['val_width_ratio']:.3f}, {summary['train_samples_per_s']:.0f} samples/s")
    return summary
