"""What a finished run leaves: the model folder (swapped in whole), the headline figures and the per-epoch
history (the DVC outputs), and the run ended FINISHED, with SIGTERM held back while they are written.

So `--model` holds the previous model (or nothing) or this one, whose run has ended FINISHED with its metrics
and history: never a model of a KILLED run.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtt.core import run_lifecycle
from mtt.core.artifact import PROFILE_FILE, write_model_files
from mtt.core.io import atomic_dir, atomic_file, write_json
from mtt.core.metrics import median_bias, resolution, rmse, width_ratio
from mtt.stages.train import run
from mtt.stages.train.checkpoint import discard
from mtt.stages.train.fit import Trainer
from mtt.stages.train.inputs import prepare_settings
from mtt.stages.train.paths import TrainPaths


def commit(trainer: Trainer, paths: TrainPaths, run_id: str, fit_seconds: float, wall_seconds: float,
           best_weights: Any) -> dict[str, Any]:
    """`finish` into a staged model folder; then, with SIGTERM held back, swap it in, write the DVC outputs
    and end the run FINISHED. A SIGTERM that came during the swap is delivered after it. The summary returned."""
    import mlflow

    with run_lifecycle.SigtermDeferral(armed=False) as deferral:
        with atomic_dir(paths.model, "train") as staged:
            summary = finish(trainer, paths, run_id, fit_seconds, wall_seconds, best_weights, staged)
            deferral.arm()
        write_dvc_outputs(paths, summary, trainer.history)
        mlflow.end_run()
    return summary


def finish(trainer: Trainer, paths: TrainPaths, run_id: str, fit_seconds: float, wall_seconds: float,
           best_weights: Any, staged: Path) -> dict[str, Any]:
    """Best weights back in, headline figures, artifacts and the model logged, the model folder written
    into `staged`; the summary returned."""
    import mlflow

    trainer.network.set_weights(best_weights)
    run.log_weights(trainer.network)
    frame = pd.DataFrame(trainer.history)
    summary = headline_figures(trainer, frame, fit_seconds, wall_seconds)
    run.log_summary(trainer, summary)
    model_info = run.log_artifacts(trainer, paths, frame, summary["best_epoch"])
    write_model_folder(trainer, paths, run_id, summary, staged)
    mlflow.log_artifacts(str(staged), artifact_path="models")  # `mtt predict --model runs:/<id>`
    if trainer.params.registered_model:  # last: a version's run has every artifact
        run.register(trainer.params, model_info.model_uri, run_id)
    return {**summary, "run_id": run_id}


def headline_figures(trainer: Trainer, frame: pd.DataFrame, fit_seconds: float, wall_seconds: float) -> dict[str, Any]:
    """Best val loss and its epoch (from the history `frame`), the val GeV metrics of the weights now in the
    network, and the speed."""
    val = trainer.val
    pred = np.asarray(trainer.predict(val.x)).reshape(len(val.x), -1)[:, 0]
    epochs_run = len(frame) - trainer.first_epoch
    return {"best_val_loss": float(frame.val_loss.min()),
            "best_epoch": int(frame.epoch[frame.val_loss.idxmin()]), "epochs": len(frame),
            "val_resolution": resolution(pred, val.m_tt), "val_bias": median_bias(pred, val.m_tt),
            "val_width_ratio": width_ratio(pred, val.m_tt), "val_rmse_gev": rmse(pred, val.m_tt),
            "wall_time_s": wall_seconds,
            "train_samples_per_s": trainer.data.n_rows * epochs_run / max(fit_seconds, 1e-9)}


def write_model_folder(trainer: Trainer, paths: TrainPaths, run_id: str, summary: dict[str, Any],
                       staged: Path) -> None:
    """The model folder: the network with its scaler, and the card predict and evaluate read (features,
    target transform, run, params, figures, lineage, how prepare made the data)."""
    lineage = trainer.inputs.lineage
    write_model_files(staged, trainer.predict, trainer.data.scaler,
                      {"features": trainer.features, "target_transform": asdict(trainer.data.target),
                       "mlflow_run_id": run_id, "params": trainer.params.model_dump(), "summary": summary,
                       "data": lineage.files, "reference_medians": lineage.medians,
                       "prepare": prepare_settings(trainer.inputs.train)},
                      profile=paths.reference / PROFILE_FILE)


def write_dvc_outputs(paths: TrainPaths, summary: dict[str, Any], history: list[dict[str, float]]) -> None:
    """The DVC outputs: headline figures and the per-epoch history; a finished run's resume state removed."""
    if paths.checkpoints is not None:
        discard(paths.checkpoints)
    if paths.metrics is not None:
        write_json(paths.metrics, summary)
    if paths.history is not None:
        with atomic_file(paths.history) as tmp:
            pd.DataFrame(history).to_csv(tmp, index=False)
