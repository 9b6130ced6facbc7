"""The train stage: one Keras run on the prepared splits, fully logged to MLflow, resumable.

`run_train` reads the inputs once and builds the network (`fit.Trainer.build`: the splits opened and checked,
the scaler from the validate reference, the data, the network), opens (or resumes) the MLflow run with its
params and lineage (`run.tracked_run`), trains with the per-epoch logger and checkpoints (`Trainer.fit`),
and commits (`outputs.commit`): the headline figures, artifacts and model logged, the model folder staged
and swapped in, the DVC outputs written and the run ended FINISHED, SIGTERM held back meanwhile. A run ends
FAILED on an exception and KILLED on Ctrl-C or SIGTERM; `--model` then keeps the previous model.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from mtt.core import lineage
from mtt.core.errors import MttError
from mtt.core.params import apply_preset, load_yaml, validate_model
from mtt.stages.train.callbacks import checkpointer
from mtt.stages.train.fit import Trainer
from mtt.stages.train.outputs import commit
from mtt.stages.train.params import TrainParams
from mtt.stages.train.paths import TrainPaths
from mtt.stages.train.run import tracked_run
from mtt.stages.train.setup import is_chief

__all__ = ["TrainPaths", "committed_baseline", "main", "run_name", "run_train"]


def run_name(params: TrainParams, changes: dict[str, Any] | None, baseline: TrainParams | None = None,
             experiment: str | None = None, config: str | None = None) -> str:
    """What differs, e.g. 'seed_baseline learning_rate=0.01' (or 'default'): from `baseline` (the committed
    params.yaml's train section, so an edit or `dvc exp run -S` names itself) when given, else the command
    line's overrides; a DVC experiment's name in front ('clear-mica: learning_rate=0.01'); a configuration of
    the study is named by itself ('hybrid_mdn', 'default learning_rate=0.01')."""
    parts = [config] if config else []
    if params.preset not in ("none", config):
        parts.append(params.preset)
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

    text = lineage.committed_text(params_path)
    if text is None:
        return None
    try:
        raw = load_yaml(text)
        train = apply_preset(raw, {"preset": preset}).get("train") or {}
        return validate_model(TrainParams, train, "params.yaml at HEAD (train)")
    except (MttError, ValueError, TypeError, AttributeError):
        return None


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested overrides as dotted keys ('a.b'), so a run name shows each override on its own."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def run_train(params: TrainParams, paths: TrainPaths, name: str = "default",
              callbacks: list[Any] | None = None, config: str | None = None) -> dict[str, Any]:
    """Train and log one run (or continue an interrupted one); return its headline figures."""
    started = time.perf_counter()
    paths.check()
    trainer = Trainer.build(params, paths)
    if not is_chief(params.strategy):
        trainer.fit_silently()
        return {}
    with tracked_run(trainer, name, config) as run:
        logger = trainer.logger()
        extra = list(callbacks or [])
        if paths.checkpoints is not None:
            identity = {"run_id": run.info.run_id, "params": params.model_dump(), "data": trainer.fingerprint}
            extra.insert(0, checkpointer(paths.checkpoints, logger, trainer.history, identity))
        try:
            fit_seconds = trainer.fit(logger, extra)
        finally:  # an interrupted or failed run keeps the metrics of the epochs it finished
            logger.flush()
        return commit(trainer, paths, run.info.run_id, fit_seconds, time.perf_counter() - started,
                      logger.best_weights)


def main(params: TrainParams, paths: TrainPaths, changes: dict[str, Any] | None = None,
         params_path: Path | None = None, config: str | None = None) -> dict[str, Any]:
    """Stage entry: train (the run named after its configuration and what differs from the committed params),
    print the figures."""
    baseline = committed_baseline(params_path, params.preset) if params_path is not None else None
    name = run_name(params, changes, baseline, None if config else os.environ.get("DVC_EXP_NAME"), config)
    summary = run_train(params, paths, name, config=config)
    if not summary:
        return summary
    print(f"train: run {summary['run_id']}: best val_loss {summary['best_val_loss']:.4g} at epoch "
          f"{summary['best_epoch']} (val RMSE {summary['val_rmse_gev']:.1f} GeV), val resolution "
          f"{summary['val_resolution']:.3f}, width ratio {summary['val_width_ratio']:.3f}, "
          f"{summary['train_samples_per_s']:.0f} samples/s")
    return summary
