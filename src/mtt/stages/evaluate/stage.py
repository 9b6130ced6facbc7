"""The evaluate stage: resolution, bias and spectrum agreement of the model, next to the classical baselines.

On the test split (the same events for every estimator): the trained model, the visible mass m(l+ l- b b)
scaled by its mean ratio to the truth on train, and the ellipse method (analytic neutrino solutions,
`mtt.core.reco.ellipse`). Writes `eval/metrics.json` (a DVC metric), `eval/per_bin.csv` and `eval/spectrum.csv`
(DVC plots), PNG plots in `eval/plots/`, and logs to the training run in MLflow what depends on its model: the
figures of the baselines and the truth, the same for every configuration, are in the files only (the compare
stage logs them once, to the study's parent run); the run gets the model's ratios to the ellipse method instead.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtt.core import plots, run_lifecycle, tracking
from mtt.core.artifact import load_model_dir
from mtt.core.checks import require_clean
from mtt.core.dataset import (
    DIAGNOSTICS,
    ID_COLUMNS,
    NEUTRINOS,
    OBJECT_COLUMNS,
    SPLITS,
    TARGET,
    open_split,
    read_metadata,
    require_disjoint,
    split_path,
)
from mtt.core.errors import EvaluateError
from mtt.core.io import atomic_dir, check_output_dir, file_sha256
from mtt.core.metric_names import flat_metrics, is_model_independent_plot
from mtt.core.reco.ellipse import SOLUTION_RULE
from mtt.stages.evaluate.estimators import ELLIPSE, MODEL, Evaluation, evaluate
from mtt.stages.evaluate.injection import plot_panels, study, zprime_mass
from mtt.stages.evaluate.params import EvaluateParams
from mtt.stages.evaluate.tables import (
    per_bin_table,
    run_figures,
    spectrum_table,
    summary_table,
    unfolded_table,
    zprime_table,
)


def read_split(prepared_dir: Path, split: str, columns: list[str], max_events: int = 0) -> pd.DataFrame:
    """The named columns of a prepared split (the first max_events rows if set), checked."""
    opened = open_split(split_path(prepared_dir, split))
    opened.require([c for c in columns if c in OBJECT_COLUMNS], why="the baselines need the lowlevel feature "
                   "set: add it to prepare.feature_sets")
    table = opened.read(columns, max_events)
    if len(table) == 0:
        raise EvaluateError(f"{opened.path}: no events to evaluate")
    return table


#: significant digits of every float evaluate writes (CSV tables, metrics.json): far below any figure's uncertainty,
#: above the last-bit differences of sums that a CPU with other vector units adds in another order, so figures
#: derived from the data alone (truth, the ellipse method) keep their bytes on another machine
DIGITS = 10


def rounded_floats(value: Any) -> Any:
    """`value` with every finite float rounded to DIGITS significant digits (in dicts and lists too)."""
    if isinstance(value, float):
        return float(f"{value:.{DIGITS}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: rounded_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded_floats(v) for v in value]
    return value


def _float_text(value: float) -> str:
    """A CSV cell: DIGITS significant digits, written as Python writes the float (325.0, 0.2149100151)."""
    return repr(rounded_floats(float(value)))


def write_table(table: pd.DataFrame, path: Path) -> None:
    """A CSV output: no index, floats to DIGITS significant digits (the same bytes for the same figures)."""
    table.to_csv(path, index=False, float_format=_float_text)


def write_metrics(figures: dict[str, Any], path: Path) -> None:
    """metrics.json: the figures in the order evaluate made them, floats to DIGITS significant digits."""
    path.write_text(json.dumps(rounded_floats(figures), indent=2) + "\n")


#: the estimators the spectrum figure shows: the point model, the ellipse method, the recommended per-event MDN
#: reading and the spectrum-faithful expected spectrum (the others go to spectrum_others.png)
MAIN_ESTIMATORS = ("model", "baseline_ellipse", "mdn_window", "mdn_expected")


def write_outputs(folder: Path, result: Evaluation, true: np.ndarray, params: EvaluateParams,
                  history: pd.DataFrame | None) -> None:
    """metrics.json, per_bin.csv, spectrum.csv and the plots, into `folder`."""
    edges = params.edges()
    plot = folder / "plots"
    write_metrics(result.figures, folder / "metrics.json")
    coverages = {k: v for k, v in result.arrays.items() if k.endswith("_per_bin")}
    write_table(per_bin_table(result.tables, coverages), folder / "per_bin.csv")
    write_table(spectrum_table(true, result.estimates, edges, result.histograms), folder / "spectrum.csv")
    plot.mkdir()
    for suffix, keep in (("", True), ("_others", False)):  # the main estimators, then the rest in their own figure
        estimates = {k: v for k, v in result.estimates.items() if (k in MAIN_ESTIMATORS) == keep}
        histograms = {k: v for k, v in result.histograms.items() if (k in MAIN_ESTIMATORS) == keep}
        if estimates or histograms:
            plots.spectrum(true, estimates, edges, plot / f"spectrum{suffix}.png", histograms)
    for name, pred in result.estimates.items():
        plots.response_matrix(pred, true, edges, plot / f"response_{name}.png", name)
    plots.bias_resolution(result.tables, plot / "bias_resolution.png")
    plots.residuals(true, result.estimates, plot / "residuals.png")
    for name, pit in ((k.removesuffix("_pit"), v) for k, v in result.arrays.items() if k.endswith("_pit")):
        plots.pit_histogram(pit, plot / f"pit_{name}.png", name)
    if coverages:
        plots.coverage_vs_mtt(edges, {k.removesuffix("_per_bin"): v for k, v in coverages.items()
                                      if "coverage_68" in k}, plot / "coverage.png")
    unfolding_edges = result.arrays.get("unfolding_edges", edges)  # a DVC output: written even when skipped
    truth = np.histogram(true, unfolding_edges)[0]
    write_table(unfolded_table(unfolding_edges, truth, result.unfolded), folder / "unfolded.csv")
    if result.unfolded:
        plots.unfolded(truth, result.unfolded, unfolding_edges, plot / "unfolded.png")
    if history is not None:
        plots.loss_curve(history, plot / "loss_curve.png")


def write_injection(folder: Path, injection: Any) -> None:
    """zprime.csv (the fit per estimator) and the injected spectra's plot."""
    table = pd.DataFrame([{"estimator": name, **{k: v for k, v in row.items()}}
                          for name, row in injection.figures.items() if isinstance(row, dict) and name != "skipped"])
    write_table(table, folder / "zprime.csv")
    plots.injected_spectra(plot_panels(injection), injection.edges, injection.figures["mass"],
                           folder / "plots" / "zprime_injected.png")


def target_runs(client: Any, model_run_id: str | None, own_data: bool, data: dict[str, str],
                own_runs: ExitStack) -> list[str]:
    """Where the figures go: the training run when this is the model's own split (and the run that
    `mlflow run -e evaluate` started); for other data a new run of the same experiment, tagged with the
    model's run, the data's hash and this process, so a finished training run never gets figures of data it
    was not evaluated on. `own_runs` ends the new run: FINISHED, or KILLED/FAILED if logging is stopped."""
    from mlflow.exceptions import MlflowException

    targets = []
    if model_run_id:
        try:
            training = client.get_run(model_run_id)
        except MlflowException:
            print(f"evaluate: MLflow run {model_run_id} is not in {tracking.tracking_uri()}: figures written to "
                  "files only")
            training = None
        if training is not None and own_data:
            targets.append(model_run_id)
        elif training is not None:
            with run_lifecycle.SigtermDeferral():  # the run is made and its ending set up together
                run = client.create_run(training.info.experiment_id, run_name=f"evaluate {Path(data['path']).name} "
                                        f"with {training.info.run_name}", tags={
                                            "eval.data_sha256": data["sha256"], "eval.data_path": data["path"],
                                            **run_lifecycle.process_tags()})
                own_runs.enter_context(run_lifecycle.ended(client, run.info.run_id))
            targets.append(run.info.run_id)
            print(f"evaluate: {data['path']} is not the split the model was trained next to: figures logged to a "
                  f"new run {run.info.run_id}, not to the training run {model_run_id}")
    outer = os.environ.get("MLFLOW_RUN_ID")
    return list(dict.fromkeys([*targets, *([outer] if outer else [])]))


def check_training_run(run_id: str | None) -> None:
    """Before any work: a training run deleted in MLflow cannot take the figures (MLflow would refuse them
    only after the whole evaluation)."""
    if not run_id:
        return
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    tracking.configure()
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException:
        return  # not in this store: target_runs says so and the figures go to files only
    if run.info.lifecycle_stage == "deleted":
        raise EvaluateError(f"the model's MLflow run {run_id} was deleted in {tracking.tracking_uri()}: restore it "
                            f"(`mlflow runs restore --run-id {run_id}`) or train the model again")


def log_to_run(run_id: str | None, figures: dict[str, Any], folder: Path, params: EvaluateParams,
               own_data: bool = True, data: dict[str, str] | None = None) -> bool:
    """Log the model's figures and its ratios to the ellipse method (`run_figures`, under `<split>/`), settings
    (tags `evaluate.*`: a rerun with other settings replaces them with its figures) and the output folder but the
    baselines' response plots, without reopening any run; False if there is no run to log into. The ellipse
    method's solution rule is the artifact `evaluate/ellipse_rule.txt` (the ratios' denominator)."""
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    tracking.configure()
    client = MlflowClient()
    now = int(time.time() * 1000)
    flat = flat_metrics(run_figures(figures), params.split)
    metrics = [Metric(k, v, now, 0) for k, v in flat.items() if np.isfinite(v)]
    tags = [RunTag(f"evaluate.{k}", json.dumps(v) if isinstance(v, (list, dict)) else str(v))
            for k, v in params.model_dump().items()] + [RunTag("eval.model_run_id", run_id or "")]
    # a run made here ends FINISHED, or KILLED/FAILED, never stays RUNNING
    with ExitStack() as own_runs, tempfile.TemporaryDirectory() as tmp:
        targets = target_runs(client, run_id, own_data, data or {"path": "", "sha256": ""}, own_runs)
        shown = run_artifacts(folder, Path(tmp) / "evaluate")
        for target in targets:
            client.log_batch(target, metrics=metrics, tags=tags)  # one write for the figures and the settings
            note = client.get_run(target).data.tags.get("mlflow.note.content", "")
            client.set_tag(target, "mlflow.note.content", with_evaluation(note, figures, params.split))
            client.log_artifacts(target, str(shown), artifact_path="evaluate")
    return bool(targets)


def run_artifacts(folder: Path, copy: Path) -> Path:
    """A copy of the output folder without the plots that are the same in every configuration (the baselines'
    response matrices: the study's parent run has them): what a configuration's run shows as `evaluate/`."""
    def ignored(_: str, names: list[str]) -> list[str]:
        return [name for name in names if is_model_independent_plot(name)]

    return Path(shutil.copytree(folder, copy, ignore=ignored))


#: where the evaluation's sentence starts in a run's description (a rerun replaces it)
NOTE_MARK = "\n\nEvaluated on "


def with_evaluation(note: str, figures: dict[str, Any], split: str) -> str:
    """The run's description with one sentence of this evaluation's headline figures (replacing an older one)."""
    model, nan = figures.get(MODEL, {}), float("nan")
    sentence = (f"the {split} split ({figures.get('n_events', 0):,} events): resolution "
                f"{model.get('resolution', nan):.3f}, median bias {model.get('bias', nan):+.3f}, width ratio "
                f"{model.get('width_ratio', nan):.3f}")
    if ELLIPSE in figures:
        sentence += f"; the ellipse method's resolution {figures[ELLIPSE].get('resolution', nan):.3f}"
    return f"{note.split(NOTE_MARK)[0]}{NOTE_MARK}{sentence}."


def zprime_study(zprime_dir: Path, test: pd.DataFrame, train: pd.DataFrame, val: pd.DataFrame | None,
                 prepared_dir: Path, artifact: Any, params: EvaluateParams, result: Evaluation) -> Any:
    """The Z' sample (every split: the model saw none of it), checked like the test split, injected and fitted
    over the SM shapes of val (the val split the unfolding read, or read here when unfolding is off)."""

    features = artifact.features
    columns = list(dict.fromkeys([*features, *OBJECT_COLUMNS, TARGET, *ID_COLUMNS]))
    mass = zprime_mass(read_metadata(split_path(zprime_dir, "test")), str(zprime_dir))
    zprime = pd.concat([read_split(zprime_dir, split, columns) for split in SPLITS], ignore_index=True)
    require_clean(zprime, features, artifact.meta.get("reference_medians", {}), str(zprime_dir), "evaluate")
    if val is None:
        val = read_split(prepared_dir, "val", list(dict.fromkeys([*features, *OBJECT_COLUMNS, TARGET])))
    return study(test, zprime, val, train, mass, artifact, params, list(result.figures["estimators"]))


def run_evaluate(params: EvaluateParams, prepared_dir: str | os.PathLike[str], model_dir: str | os.PathLike[str],
                 out_dir: str | os.PathLike[str], history_path: str | os.PathLike[str] | None = None,
                 zprime_dir: str | os.PathLike[str] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Evaluate the model and the baselines on one split, write the outputs, log them; return the figures."""
    check_output_dir(out_dir, "evaluate", [p for p in (prepared_dir, model_dir, history_path, zprime_dir) if p],
                     overwrite)
    prepared_dir = Path(prepared_dir)
    artifact = load_model_dir(model_dir)
    check_training_run(artifact.run_id)
    features = artifact.features
    path = split_path(prepared_dir, params.split)
    truth = [c for c in (*DIAGNOSTICS, *NEUTRINOS) if c in open_split(path).columns]  # the flow's observables
    columns = list(dict.fromkeys([*features, *OBJECT_COLUMNS, TARGET, *ID_COLUMNS, *truth]))
    read = {params.split, "train", *(["val"] if params.unfold or zprime_dir is not None else [])}
    require_disjoint([split_path(prepared_dir, s) for s in SPLITS if s in read])  # no trained-on event evaluated
    test = read_split(prepared_dir, params.split, columns, params.max_events)
    require_clean(test, features, artifact.meta.get("reference_medians", {}), str(path), "evaluate")
    train = read_split(prepared_dir, "train", [*OBJECT_COLUMNS, TARGET])
    data = {"path": str(path.resolve()), "sha256": file_sha256(path)}
    own_data = data["sha256"] == artifact.meta.get("data", {}).get(f"{params.split}_sha256")
    val = None
    if params.unfold:  # the unfolding's response comes from val (train would give a too sharp response)
        val = read_split(prepared_dir, "val", list(dict.fromkeys([*features, *OBJECT_COLUMNS, TARGET])))
    result = evaluate(test, train, artifact.model, features, params, artifact.meta, val)
    figures = result.figures
    injection = None
    if zprime_dir is not None:
        injection = zprime_study(Path(zprime_dir), test, train, val, prepared_dir, artifact, params, result)
        figures["zprime"] = injection.figures
    rule = None
    if params.ellipse:
        rule = SOLUTION_RULE
    history = pd.read_csv(history_path) if history_path and Path(history_path).is_file() else None
    true = test[TARGET].to_numpy(np.float64)
    with atomic_dir(out_dir, "evaluate") as tmp:
        write_outputs(tmp, result, true, params, history)
        if injection is not None:
            write_injection(tmp, injection)
        if rule:
            (tmp / "ellipse_rule.txt").write_text(rule + "\n")
    log_to_run(artifact.run_id, figures, Path(out_dir), params, own_data, data)
    return figures


def main(params: EvaluateParams, prepared_dir: str, model_dir: str, out_dir: str,
         history_path: str | None = None, zprime_dir: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Stage entry: evaluate, print the comparison table."""
    figures = run_evaluate(params, prepared_dir, model_dir, out_dir, history_path, zprime_dir, overwrite)
    print(f"evaluate: {figures['n_events']} {params.split} events")
    if "ellipse_exact_fraction" in figures:
        print(f"ellipse method: exact solution for {figures['ellipse_exact_fraction']:.1%} of events, nearest "
              f"approach for the rest ({figures['ellipse_degenerate_fraction']:.1%} with ellipses shrunk to points)")
    print(summary_table(figures))
    if "zprime" in figures:
        print(zprime_table(figures["zprime"]))
    for name, reason in figures.get("skipped", {}).items():
        print(f"evaluate: skipped {name}: {reason}")
    return figures
