"""The train stage: one Keras run on the prepared splits, fully logged to MLflow, resumable.

`run_train` sets the run up (`Trainer.build`: data, scaler from the validate reference, network), then
`Trainer.start` opens (or resumes) the MLflow run and logs params and lineage, `Trainer.fit` trains with the
per-epoch logger and checkpoints, `Trainer.finish` logs the headline figures, artifacts and model (the model
folder staged), and `Trainer.commit` swaps the model folder in, writes the DVC outputs (`Trainer.write`) and
ends the run FINISHED, SIGTERM held back meanwhile. A run ends FAILED on an exception and KILLED on Ctrl-C or
SIGTERM; `--model` then keeps the previous model.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtt.core.artifact import PROFILE_FILE, write_model_files
from mtt.core.checks import check_split_file, load_reference_medians
from mtt.core.dataset import open_split, split_path
from mtt.core.errors import TrainError
from mtt.core.io import (
    atomic_dir,
    atomic_file,
    check_apart,
    check_not_protected,
    check_output_dir,
    check_output_file,
    file_sha256,
    write_json,
)
from mtt.core.metrics import median_bias, resolution, rmse, width_ratio
from mtt.core.preprocessing import REFERENCE_SCALERS, load_reference_scaler, save_scaler
from mtt.stages.train.callbacks import checkpointer, epoch_logger, restore
from mtt.stages.train.checkpoint import TrainState, data_fingerprint, discard, state_to_resume
from mtt.stages.train.data import TrainingData, ValSet, load_training_data
from mtt.stages.train.params import TrainParams
from mtt.stages.train.setup import compiled_network, distribution_strategy, is_chief, make_deterministic


@dataclass(frozen=True)
class TrainPaths:
    """Where the stage reads and writes (all from dvc.yaml's command line)."""

    prepared: Path
    reference: Path
    model: Path
    metrics: Path | None = None
    history: Path | None = None
    checkpoints: Path | None = None
    #: the validate stage's summary and Data Docs, attached to the run as its data checks
    validation: Path | None = None
    docs: Path | None = None
    #: replace a model folder that holds files train did not write
    overwrite: bool = False

    def check(self) -> None:
        """Before any work: no output may replace an input or the user's files, and each must be writable."""
        inputs = [p for p in (self.prepared, self.reference, self.validation, self.docs) if p is not None]
        check_output_dir(self.model, "train", inputs, self.overwrite)
        for path in (self.metrics, self.history):
            if path is not None:
                check_output_file(path, [*inputs, self.model])
        if self.checkpoints is not None:
            check_not_protected(self.checkpoints)
            check_apart(self.checkpoints, [*inputs, self.model])


def run_name(params: TrainParams, changes: dict[str, Any] | None, baseline: TrainParams | None = None,
             experiment: str | None = None) -> str:
    """What differs, e.g. 'seed_baseline learning_rate=0.01' (or 'default'): from `baseline` (the committed
    params.yaml's train section, so an edit or `dvc exp run -S` names itself) when given, else the command
    line's overrides; a DVC experiment's name in front ('clear-mica: learning_rate=0.01')."""
    parts = [] if params.preset == "none" else [params.preset]
    committed = None if baseline is None else baseline.model_dump()
    differing = _flatten(changes or {}) if committed is None else {
        key: value for key, value in params.model_dump().items() if committed.get(key) != value}
    parts += [f"{key}={_short(value)}" for key, value in differing.items() if key != "preset"]
    name = " ".join(parts) or "default"
    return f"{experiment}: {name}" if experiment else name


def _short(value: Any) -> str:
    """A param value as a run name shows it: lists without spaces, floats without trailing digits."""
    if isinstance(value, list):
        return ",".join(_short(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def committed_baseline(params_path: Path, preset: str) -> TrainParams | None:
    """The train section of params.yaml as committed at git HEAD, with `preset` applied (a run with another
    preset is named by the preset and what differs from it); None outside git or if it does not load."""
    from mtt.core.errors import MttError
    from mtt.core.lineage import committed_text
    from mtt.core.params import apply_preset, load_yaml, validate_model

    text = committed_text(params_path)
    if text is None:
        return None
    try:
        raw = load_yaml(text)
        train = apply_preset(raw, {"preset": preset}).get("train") or {}
        return validate_model(TrainParams, train, "params.yaml at HEAD (train)")
    except (MttError, ValueError, TypeError, AttributeError):
        return None


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def prepare_settings(prepared: Path) -> dict[str, Any]:
    """How the training data was made (schema, units, object quality, selection, jet slots): carried with the
    model so predict builds new data the same way."""
    metadata = open_split(split_path(prepared, "train")).metadata
    return {key: metadata[key] for key in ("schema", "units_in", "selection", "nanoaod", "max_jets")
            if key in metadata}


def objective(params: TrainParams) -> str:
    """The loss the optimiser really minimises (an MDN or quantile head ignores train.loss)."""
    if params.head == "mdn":
        return f"mixture_nll ({params.mdn_components} Gaussians)"
    if params.head == "quantile":
        return f"pinball ({len(params.quantiles)} quantiles)"
    return params.loss


@dataclass(frozen=True)
class Lineage:
    """What a run read: content hashes of the splits and the reference (the test split's too, so that
    evaluate can tell the model's own test split from other data), and the train medians it checks against."""

    files: dict[str, str]
    medians: dict[str, float]

    @classmethod
    def of(cls, paths: TrainPaths, medians: dict[str, float]) -> Lineage:
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


def _state_to_resume(params: TrainParams, checkpoint_dir: Path | None, fingerprint: str) -> TrainState | None:
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


@dataclass
class Trainer:
    """One training run: its inputs, the compiled network, and what it has recorded so far."""

    params: TrainParams
    paths: TrainPaths
    spec: Any  # mtt.core.model.ModelSpec
    data: TrainingData
    val: ValSet
    network: Any
    predict: Any  # raw features -> GeV
    state: TrainState | None
    fingerprint: str
    lineage: Lineage
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return list(self.data.scaler.columns)

    @property
    def first_epoch(self) -> int:
        return 0 if self.state is None else self.state.epoch + 1

    @classmethod
    def build(cls, params: TrainParams, paths: TrainPaths) -> Trainer:
        """Read the data, take the scaler validate fitted, resume state if asked, build and compile the network."""
        from mtt.core.model import inference_model

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
        lineage = Lineage.of(paths, medians)
        strategy = distribution_strategy(params.strategy)
        data = load_training_data(params, split_path(paths.prepared, "train"), scaler)
        fingerprint = data_fingerprint(data.m_tt, len(features))
        state = _state_to_resume(params, paths.checkpoints, fingerprint)
        make_deterministic(params.seed)
        with strategy.scope():
            network, spec = compiled_network(params, features, scaler, int(np.ceil(data.n_rows / params.batch_size)))
            if state is not None:
                restore(network, state)
        val = ValSet(x_val, m_val, data.target.forward(m_val).astype(np.float32))
        history = [] if state is None else list(state.history)
        return cls(params, paths, spec, data, val, network, inference_model(network, spec, data.target), state,
                   fingerprint, lineage, history)

    # --- the steps --------------------------------------------------------------------------------

    def fit(self, logger: Any, extra: list[Any]) -> float:
        """model.fit from the first epoch with the logger, early stopping and LR plateau; return its seconds."""
        import keras

        callbacks = [logger]
        if self.params.early_stopping:
            callbacks.append(keras.callbacks.EarlyStopping(patience=self.params.early_stopping))
        if self.params.schedule == "reduce_on_plateau":
            callbacks.append(keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=3))
        start = time.perf_counter()
        self.network.fit(**self.data.fit_arguments(self.params.batch_size, self.first_epoch),
                         epochs=self.params.epochs, initial_epoch=self.first_epoch, callbacks=callbacks + extra,
                         verbose=0)
        return time.perf_counter() - start

    def fit_silently(self) -> None:
        """A non-chief cluster worker: train in step with the chief, log and write nothing."""
        self.fit(epoch_logger(self.val, self.predict, self.network, self.spec.loss_function(), [], log=False), [])

    @contextmanager
    def start(self, name: str) -> Any:
        """The MLflow run (new, resumed, or the one `mlflow run` started), tagged with this process when made,
        with params and lineage; ends it FAILED on an exception and KILLED on Ctrl-C or SIGTERM (`commit` ends
        it FINISHED)."""
        import mlflow

        from mtt.core import run_lifecycle, tracking

        tracking.configure()
        experiment = tracking.ensure_experiment(self.params.experiment)
        run_lifecycle.mark_dead_runs(experiment)
        outer = os.environ.get("MLFLOW_RUN_ID")
        start = ({"run_id": self.state.run_id} if self.state is not None else {"run_id": outer} if outer
                 else {"experiment_id": experiment, "run_name": name})
        deferral = run_lifecycle.SigtermDeferral()  # a SIGTERM while the run is made waits for the handling below
        with deferral, mlflow.start_run(**start, tags=run_lifecycle.process_tags(),
                                        log_system_metrics=tracking.system_metrics_enabled()) as run:
            try:
                deferral.release()
                self._log_start(name, outer is not None)
                yield run
            except KeyboardInterrupt:
                mlflow.end_run(status="KILLED")
                raise
            except BaseException:
                mlflow.end_run(status="FAILED")
                raise

    def _log_start(self, name: str, under_mlflow_run: bool) -> None:
        import mlflow

        from mtt.core import tracking
        from mtt.core.lineage import git_state, log_split_inputs

        if self.state is not None:
            mlflow.set_tags({"resumed_at_epoch": self.first_epoch, "resumed_epochs": self.params.epochs})
            return
        if under_mlflow_run:
            mlflow.set_tag("mlflow.runName", name)
        mlflow.log_params({**{f"train.{k}": (json.dumps(v) if isinstance(v, list) else v)
                              for k, v in self.params.model_dump().items()
                              if k != "loss" or self.params.head == "point"},  # other heads ignore train.loss
                           "train.objective": objective(self.params),
                           "train.n_features": len(self.features), "train.features": ",".join(self.features)})
        if os.environ.get("DVC_EXP_NAME"):
            mlflow.set_tag("dvc.exp_name", os.environ["DVC_EXP_NAME"])
        mlflow.set_tags({**git_state(tracking.repo_root()), **self.lineage.tags(),
                         "preset": self.params.preset,
                         "n_train": self.data.n_rows, "n_val": len(self.val.x), "feature_set": self.params.feature_set,
                         "architecture": self.params.architecture,
                         "input": self.data.mode, "strategy": self.params.strategy,
                         "scaler": self.data.scaler.name})
        log_split_inputs(self.lineage.splits())  # the runs table's Dataset column

    def commit(self, run_id: str, fit_seconds: float, wall_seconds: float, best_weights: Any) -> dict[str, Any]:
        """`finish` into a staged model folder; then, with SIGTERM held back, swap it in, write the DVC outputs
        and end the run FINISHED. So `--model` holds the previous model (or nothing) or this one, whose run has
        ended FINISHED with its metrics and history: never a model of a KILLED run. A SIGTERM that came during
        the swap is delivered after it. The summary returned."""
        import mlflow

        from mtt.core import run_lifecycle

        with run_lifecycle.SigtermDeferral(armed=False) as deferral:
            with atomic_dir(self.paths.model, "train") as staged:
                summary = self.finish(run_id, fit_seconds, wall_seconds, best_weights, staged)
                deferral.arm()
            self.write(summary)
            mlflow.end_run()
        return summary

    def finish(self, run_id: str, fit_seconds: float, wall_seconds: float, best_weights: Any,
               staged: Path) -> dict[str, Any]:
        """Best weights back in, headline figures, artifacts and the model logged, the model folder written
        into `staged`; the summary returned."""
        import mlflow

        self.network.set_weights(best_weights)
        with tempfile.TemporaryDirectory() as tmp:
            self.network.save_weights(Path(tmp) / "best.weights.h5")
            mlflow.log_artifact(str(Path(tmp) / "best.weights.h5"), artifact_path="weights")
        pred = np.asarray(self.predict(self.val.x)).reshape(len(self.val.x), -1)[:, 0]
        frame = pd.DataFrame(self.history)
        true = self.val.m_tt
        summary = {"best_val_loss": float(frame.val_loss.min()),
                   "best_epoch": int(frame.epoch[frame.val_loss.idxmin()]), "epochs": len(frame),
                   "val_resolution": resolution(pred, true), "val_bias": median_bias(pred, true),
                   "val_width_ratio": width_ratio(pred, true), "val_rmse_gev": rmse(pred, true),
                   "wall_time_s": wall_seconds,
                   "train_samples_per_s": self.data.n_rows * (len(frame) - self.first_epoch) / max(fit_seconds, 1e-9)}
        mlflow.log_metrics({f"final/{k}" if k.startswith("val_") else k: v for k, v in summary.items()})
        mlflow.set_tag("mlflow.note.content", self.note(summary))
        model_info = self._log_artifacts(frame, summary["best_epoch"])
        write_model_files(staged, self.predict, self.data.scaler,
                          {"features": self.features, "target_transform": asdict(self.data.target),
                           "mlflow_run_id": run_id, "params": self.params.model_dump(), "summary": summary,
                           "data": self.lineage.files, "reference_medians": self.lineage.medians,
                           "prepare": prepare_settings(self.paths.prepared)},
                          profile=self.paths.reference / PROFILE_FILE)
        mlflow.log_artifacts(str(staged), artifact_path="models")  # `mtt predict --model runs:/<id>`
        if self.params.registered_model:  # last: a version's run has every artifact
            from mtt.core import registry

            version = registry.register(model_info.model_uri, self.params.registered_model, run_id,
                                        self.params.promote_metric)
            print(f"train: registered as {self.params.registered_model} version {version.version}, alias "
                  f"{registry.CANDIDATE} (`mtt promote` compares its {self.params.promote_metric})")
        return {**summary, "run_id": run_id}

    def note(self, summary: dict[str, Any]) -> str:
        """The run's description (the UI's Description box): configuration, data version, headline figures."""
        p, files = self.params, self.lineage.files
        preset = f"Preset `{p.preset}`" if p.preset != "none" else "The committed configuration"
        setup = (f"{preset}: {p.architecture} network ({p.depth} x {p.width}), {p.head} head minimising "
                 f"{objective(p)}, feature set `{p.feature_set}`, {self.data.scaler.name} scaler, target transform "
                 f"{p.target_transform}, {p.optimizer} at learning rate {p.learning_rate:g}, batch {p.batch_size}.")
        data = (f"Data: {files['prepared']} (train {files['train_sha256'][:12]}, {self.data.n_rows:,} train and "
                f"{len(self.val.x):,} val events).")
        figures = (f"Best epoch {summary['best_epoch']} of {summary['epochs']}: val RMSE "
                   f"{summary['val_rmse_gev']:.1f} GeV, val resolution {summary['val_resolution']:.3f}, median bias "
                   f"{summary['val_bias']:+.3f}, width ratio {summary['val_width_ratio']:.3f}; "
                   f"{summary['wall_time_s']:.0f} s.")
        return f"{setup} {data} {figures}"

    def _log_artifacts(self, frame: pd.DataFrame, best_epoch: int) -> Any:
        """Loss curve, history, preprocessing, data checks, and the self-contained model (its ModelInfo) at the
        best epoch, whose weights it holds (the model page then shows that epoch's figures)."""
        import mlflow

        from mtt.core import plots, registry
        from mtt.core.lineage import log_data_checks

        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            plots.loss_curve(frame, tmp / "loss_curve.png")
            frame.to_csv(tmp / "history.csv", index=False)
            save_scaler(self.data.scaler, tmp / "scaler.npz")
            (tmp / "target_transform.json").write_text(json.dumps(asdict(self.data.target)))
            for name in ("loss_curve.png", "history.csv"):
                mlflow.log_artifact(str(tmp / name))
            for name in ("scaler.npz", "target_transform.json"):
                mlflow.log_artifact(str(tmp / name), artifact_path="preprocessing")
        if self.lineage.checked_by(self.paths.validation):
            log_data_checks(self.paths.validation, self.paths.docs)
        elif self.paths.validation is None or not self.paths.validation.is_file():
            mlflow.set_tag("data_checks", "no validate summary: only the fast critical checks of train ran")
        else:
            mlflow.set_tag("data_checks", "the validate summary does not describe these files: only the fast "
                                          "critical checks of train ran on them")
            print(f"train: {self.paths.validation} was not run on {self.paths.prepared}: not attached to the run")
        quantiles = [f"m_tt_q{q:g}" for q in self.params.quantiles]
        metadata = {"features": self.features, "outputs": quantiles if self.params.head == "quantile" else ["m_tt"],
                    "units": "GeV", "feature_set": self.params.feature_set, "head": self.params.head,
                    "train_params": self.params.model_dump()}
        return registry.log_model(self.predict, self.val.x[:5], metadata, step=best_epoch)

    def write(self, summary: dict[str, Any]) -> None:
        """The DVC outputs: headline figures and the per-epoch history."""
        if self.paths.checkpoints is not None:
            discard(self.paths.checkpoints)
        if self.paths.metrics is not None:
            write_json(self.paths.metrics, summary)
        if self.paths.history is not None:
            with atomic_file(self.paths.history) as tmp:
                pd.DataFrame(self.history).to_csv(tmp, index=False)


def run_train(params: TrainParams, paths: TrainPaths, name: str = "default",
              callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Train and log one run (or continue an interrupted one); return its headline figures."""
    started = time.perf_counter()
    paths.check()
    trainer = Trainer.build(params, paths)
    if not is_chief(params.strategy):
        trainer.fit_silently()
        return {}
    with trainer.start(name) as run:
        logger = epoch_logger(trainer.val, trainer.predict, trainer.network, trainer.spec.loss_function(),
                              trainer.history, resumed=trainer.state)
        extra = list(callbacks or [])
        if paths.checkpoints is not None:
            identity = {"run_id": run.info.run_id, "params": params.model_dump(), "data": trainer.fingerprint}
            extra.insert(0, checkpointer(paths.checkpoints, logger, trainer.history, identity))
        try:
            fit_seconds = trainer.fit(logger, extra)
        finally:  # an interrupted or failed run keeps the metrics of the epochs it finished
            logger.flush()
        return trainer.commit(run.info.run_id, fit_seconds, time.perf_counter() - started, logger.best_weights)


def main(params: TrainParams, paths: TrainPaths, changes: dict[str, Any] | None = None,
         params_path: Path | None = None) -> dict[str, Any]:
    """Stage entry: train (the run named after what differs from the committed params), print the figures."""
    baseline = committed_baseline(params_path, params.preset) if params_path is not None else None
    summary = run_train(params, paths, run_name(params, changes, baseline, os.environ.get("DVC_EXP_NAME")))
    if not summary:
        return summary
    print(f"train: run {summary['run_id']}: best val_loss {summary['best_val_loss']:.4g} at epoch "
          f"{summary['best_epoch']} (val RMSE {summary['val_rmse_gev']:.1f} GeV), val resolution "
          f"{summary['val_resolution']:.3f}, width ratio {summary['val_width_ratio']:.3f}, "
          f"{summary['train_samples_per_s']:.0f} samples/s")
    return summary
