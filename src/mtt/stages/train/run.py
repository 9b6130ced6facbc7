"""The MLflow side of a training run: the run opened (new, resumed, or the one `mlflow run` started) with its
params, lineage and tags, and at the end the headline figures, description, artifacts, the self-contained
model and its registry version.

`tracked_run` ends the run FAILED on an exception and KILLED on Ctrl-C or SIGTERM; `outputs.commit` ends it
FINISHED once the model folder is in place.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from mtt.core import cpu, lineage, plots, registry, run_lifecycle, tracking
from mtt.core.preprocessing import save_scaler
from mtt.stages.train.fit import Trainer
from mtt.stages.train.params import TrainParams
from mtt.stages.train.paths import TrainPaths

#: the tag naming the configuration of the study a run trained (params.yaml's study.configs)
CONFIG_TAG = "mtt.config"


def objective(params: TrainParams) -> str:
    """The loss the optimiser really minimises (an MDN or quantile head ignores train.loss)."""
    if params.head == "mdn":
        return f"mixture_nll ({params.mdn_components} Gaussians)"
    if params.head == "quantile":
        return f"pinball ({len(params.quantiles)} quantiles)"
    return params.loss


@contextmanager
def tracked_run(trainer: Trainer, name: str, config: str | None = None) -> Iterator[Any]:
    """The MLflow run (new, resumed, or the one `mlflow run` started), tagged with this process when made,
    with params and lineage; ends it FAILED on an exception and KILLED on Ctrl-C or SIGTERM (`outputs.commit`
    ends it FINISHED)."""
    import mlflow

    tracking.configure()
    experiment = tracking.ensure_experiment(trainer.params.experiment)
    run_lifecycle.mark_dead_runs(experiment)
    outer = os.environ.get("MLFLOW_RUN_ID")
    start = ({"run_id": trainer.state.run_id} if trainer.state is not None else {"run_id": outer} if outer
             else {"experiment_id": experiment, "run_name": name})
    deferral = run_lifecycle.SigtermDeferral()  # a SIGTERM while the run is made waits for the handling below
    with deferral, mlflow.start_run(**start, tags=run_lifecycle.process_tags(),
                                    log_system_metrics=tracking.system_metrics_enabled()) as run, \
            run_lifecycle.active_run_ends_on_failure():
        deferral.release()
        log_start(trainer, name, outer is not None)
        if config:  # the study's compare stage finds a configuration's run by it
            mlflow.set_tag(CONFIG_TAG, config)
        yield run


def log_start(trainer: Trainer, name: str, under_mlflow_run: bool) -> None:
    """Params, git state, lineage and set-up tags, and the splits as datasets (a resumed run: where it resumed)."""
    import mlflow

    params, data, inputs = trainer.params, trainer.data, trainer.inputs.lineage
    if trainer.state is not None:
        mlflow.set_tags({"resumed_at_epoch": trainer.first_epoch, "resumed_epochs": params.epochs})
        return
    if under_mlflow_run:
        mlflow.set_tag("mlflow.runName", name)
    mlflow.log_params({**{f"train.{k}": (json.dumps(v) if isinstance(v, list) else v)
                          for k, v in params.model_dump().items()
                          if k != "loss" or params.head == "point"},  # other heads ignore train.loss
                       "train.objective": objective(params),
                       "train.n_features": len(trainer.features), "train.features": ",".join(trainer.features)})
    if os.environ.get("DVC_EXP_NAME"):
        mlflow.set_tag("dvc.exp_name", os.environ["DVC_EXP_NAME"])
    mlflow.set_tags({**lineage.git_state(tracking.repo_root()), cpu.TAG: cpu.arithmetic(), **inputs.tags(),
                     "preset": params.preset,
                     "n_train": data.n_rows, "n_val": len(trainer.val.x), "feature_set": params.feature_set,
                     "architecture": params.architecture, "input": data.mode, "strategy": params.strategy,
                     "scaler": data.scaler.name})
    lineage.log_split_inputs(inputs.splits())  # the runs table's Dataset column


def log_weights(network: Any) -> None:
    """The best epoch's weights as an artifact (`weights/best.weights.h5`)."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        network.save_weights(Path(tmp) / "best.weights.h5")
        mlflow.log_artifact(str(Path(tmp) / "best.weights.h5"), artifact_path="weights")


def log_summary(trainer: Trainer, summary: dict[str, Any]) -> None:
    """The headline figures (val ones under `final/`) and the run's description."""
    import mlflow

    mlflow.log_metrics({f"final/{k}" if k.startswith("val_") else k: v for k, v in summary.items()})
    mlflow.set_tag("mlflow.note.content", note(trainer, summary))


def note(trainer: Trainer, summary: dict[str, Any]) -> str:
    """The run's description (the UI's Description box): configuration, data version, headline figures."""
    p, files, data = trainer.params, trainer.inputs.lineage.files, trainer.data
    preset = f"Preset `{p.preset}`" if p.preset != "none" else "The committed configuration"
    setup = (f"{preset}: {p.architecture} network ({p.depth} x {p.width}), {p.head} head minimising "
             f"{objective(p)}, feature set `{p.feature_set}`, {data.scaler.name} scaler, target transform "
             f"{p.target_transform}, {p.optimizer} at learning rate {p.learning_rate:g}, batch {p.batch_size}.")
    sample = (f"Data: {files['prepared']} (train {files['train_sha256'][:12]}, {data.n_rows:,} train and "
              f"{len(trainer.val.x):,} val events).")
    figures = (f"Best epoch {summary['best_epoch']} of {summary['epochs']}: val RMSE "
               f"{summary['val_rmse_gev']:.1f} GeV, val resolution {summary['val_resolution']:.3f}, median bias "
               f"{summary['val_bias']:+.3f}, width ratio {summary['val_width_ratio']:.3f}; "
               f"{summary['wall_time_s']:.0f} s.")
    return f"{setup} {sample} {figures}"


def log_artifacts(trainer: Trainer, paths: TrainPaths, frame: pd.DataFrame, best_epoch: int) -> Any:
    """Loss curve, history, preprocessing, data checks, and the self-contained model (its ModelInfo) at the
    best epoch, whose weights it holds (the model page then shows that epoch's figures)."""

    log_curves(trainer, frame)
    log_data_checks(trainer, paths)
    params = trainer.params
    quantiles = [f"m_tt_q{q:g}" for q in params.quantiles]
    metadata = {"features": trainer.features, "outputs": quantiles if params.head == "quantile" else ["m_tt"],
                "units": "GeV", "feature_set": params.feature_set, "head": params.head,
                "train_params": params.model_dump()}
    return registry.log_model(trainer.predict, trainer.val.x[:5], metadata, step=best_epoch)


def log_curves(trainer: Trainer, frame: pd.DataFrame) -> None:
    """Loss curve and history, and the preprocessing (scaler, target transform) beside them."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plots.loss_curve(frame, folder / "loss_curve.png")
        frame.to_csv(folder / "history.csv", index=False)
        save_scaler(trainer.data.scaler, folder / "scaler.npz")
        (folder / "target_transform.json").write_text(json.dumps(asdict(trainer.data.target)))
        for name in ("loss_curve.png", "history.csv"):
            mlflow.log_artifact(str(folder / name))
        for name in ("scaler.npz", "target_transform.json"):
            mlflow.log_artifact(str(folder / name), artifact_path="preprocessing")


def log_data_checks(trainer: Trainer, paths: TrainPaths) -> None:
    """The validate summary and Data Docs when they describe these very files; else a tag saying why not."""
    import mlflow

    if trainer.inputs.lineage.checked_by(paths.validation):
        lineage.log_data_checks(paths.validation, paths.docs)
    elif paths.validation is None or not paths.validation.is_file():
        mlflow.set_tag("data_checks", "no validate summary: only the fast critical checks of train ran")
    else:
        mlflow.set_tag("data_checks", "the validate summary does not describe these files: only the fast "
                                      "critical checks of train ran on them")
        print(f"train: {paths.validation} was not run on {paths.prepared}: not attached to the run")


def register(params: TrainParams, model_uri: str, run_id: str) -> None:
    """A new version of train.registered_model, alias candidate (last: a version's run has every artifact)."""
    version = registry.register(model_uri, params.registered_model, run_id, params.promote_metric)
    print(f"train: registered as {params.registered_model} version {version.version}, alias "
          f"{registry.CANDIDATE} (`mtt promote` compares its {params.promote_metric})")
