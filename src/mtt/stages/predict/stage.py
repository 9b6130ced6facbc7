"""`mtt predict`: a trained model applied to new ROOT files (simulated or CMS NanoAOD), one row per input event.

The model folder carries what training used: the feature list, the model, and (in `model.json`) the prepare
settings of its training data (schema, selection, object quality, jet slots). The inputs go through the same
code as training data (`mtt.core.events`: reading, schema mapping, selection, features); only `--schema`,
`--units` and explicit `-S` overrides of the prepare section change that. Before predicting, the selected
events pass the critical checks against the model's training reference (NaN, float features, units: a
refusal) and the drift checks against the train profile (a warning table; `--strict` refuses).

Output: per input event, in the input's entry order (files in the order given), run, luminosityBlock, event,
`selected`, the predicted m_tt in GeV (NaN where not selected) and, where the head gives them, the mode and
16/84% quantiles (MDN) or the quantiles (quantile head). Parquet also gets the input file and entry; a ROOT
output is a TTree of the same length as the input, usable as a friend of the input tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtt.core import tracking
from mtt.core.artifact import PROFILE_FILE, ModelArtifact, load_model_dir, read_meta
from mtt.core.checks import drift_rows, require_clean
from mtt.core.dataset import ID_COLUMNS, feature_columns, set_names
from mtt.core.distributions import MDN_WINDOW
from mtt.core.errors import PredictError
from mtt.core.events.inputs import (
    Step,
    cached_tree,
    check_branches,
    check_distinct,
    clear_open_trees,
    discover_inputs,
    plan_steps,
)
from mtt.core.events.params import PrepareParams
from mtt.core.events.schemas import SCHEMAS
from mtt.core.events.selection import format_cutflow
from mtt.core.events.step import report_nonfinite_inputs, select_step
from mtt.core.inference import head_output
from mtt.core.io import atomic_file, check_output_file, remove_stale, reproducible_root
from mtt.core.workers import LocalExecutor, resolve_workers

#: the settings of prepare that decide which events are selected and how their features are built
CARRIED = ("selection", "nanoaod", "max_jets")


@dataclass
class Prediction:
    """The per-event output table and what the stage measured on the way."""

    table: pd.DataFrame
    cutflow: dict[str, int]
    drift: list[dict[str, Any]]
    #: events with NaN/inf inputs (not predicted) and, per input branch checked, events with NaN/inf in it
    nonfinite: dict[str, Any]


def resolve_model(model: str, folder: Path) -> Path:
    """A models/ folder: the path itself, or downloaded from `runs:/<id>` or `models:/<name>@<alias>|/<version>`."""
    if not model.startswith(("runs:/", "models:/")):
        if not Path(model).is_dir():
            raise PredictError(f"--model {model}: no such model folder (or give runs:/<run id> or "
                               "models:/<name>@<alias>)")
        return Path(model)
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    tracking.configure()
    client = MlflowClient()
    try:
        run_id = model_run(client, model)
        return Path(client.download_artifacts(run_id, "models", str(folder)))
    except MlflowException as exc:
        raise PredictError(f"--model {model}: {exc.message.splitlines()[0]}") from None


def model_run(client: Any, model: str) -> str:
    """The training run behind a runs:/ or models:/ URI."""
    if model.startswith("runs:/"):
        return model.removeprefix("runs:/").split("/")[0]
    name, _, which = model.removeprefix("models:/").partition("@")
    if which:
        return client.get_model_version_by_alias(name, which).run_id
    name, _, version = name.partition("/")
    if not version:
        raise PredictError(f"--model {model}: say which version: models:/{name}@<alias> or models:/{name}/<n>")
    return client.get_model_version(name, version).run_id


def prepare_settings(meta: dict[str, Any], base: PrepareParams, changes: dict[str, Any]) -> PrepareParams:
    """The prepare section of training (carried in model.json), with the feature sets the model reads and the
    explicit changes (--schema, --units, -S) on top; params.yaml's values where the model carries none."""
    carried = meta.get("prepare", {})
    feature_set = meta.get("params", {}).get("feature_set")
    sets = set_names(feature_set) if feature_set else list(base.feature_sets)
    merged = {**base.model_dump(by_alias=True), **{k: carried[k] for k in CARRIED if k in carried},
              "feature_sets": sets}
    for key, value in changes.items():
        merged[key] = {**merged[key], **value} if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return PrepareParams.model_validate(merged)


@dataclass(frozen=True)
class StepJob:
    """One read step for a worker: what it selects and builds."""

    step: Step
    params: PrepareParams
    columns: tuple[str, ...]


@dataclass
class StepRows:
    """A step's selected events: their input file and entries, feature columns, cutflow (no raw arrays)."""

    path: Path
    entries: np.ndarray
    table: dict[str, np.ndarray]
    cutflow: dict[str, int]
    nonfinite: dict[str, int]  # per input branch checked, events with NaN/inf in it


def select_job(job: StepJob) -> StepRows:
    """The training data's reading, selection and features, on one step (in a worker process); the weight is
    not an input of the model, so a NaN weight is counted but does not stop a prediction."""
    selected = select_step(job.step, job.params, False, job.columns, weighted=False)
    return StepRows(job.step.path, selected.entries, selected.table, selected.cutflow, selected.nonfinite)


def selected_steps(files: list[Path], params: PrepareParams, columns: list[str]) -> list[StepRows]:
    """Every step of every file, in input order; a pool of forked workers as in prepare (TensorFlow is not
    loaded yet: forking after it is unsafe)."""
    trees = [cached_tree(path, params.tree) for path in files]
    jobs = [StepJob(step, params, tuple(columns)) for step in plan_steps(files, trees, params.step_size)]
    workers = resolve_workers(params.workers, len(jobs))
    if workers == 1:
        return [select_job(job) for job in jobs]
    with LocalExecutor(workers, "predict") as local:
        return list(local.in_order(select_job, jobs, [f"read step {i} ({job.step.path.name})"
                                                       for i, job in enumerate(jobs)]))


def event_ids(files: list[Path], params: PrepareParams) -> pd.DataFrame:
    """run, luminosityBlock, event, file and entry of every input event (selected or not), in input order."""
    schema = SCHEMAS[params.schema_name]
    parts = []
    for path in files:
        tree = cached_tree(path, params.tree)
        arrays = tree.arrays([schema.event[k] for k in ID_COLUMNS], library="np")
        part = pd.DataFrame({k: arrays[schema.event[k]] for k in ID_COLUMNS})
        part["file"], part["entry"] = str(path), np.arange(tree.num_entries)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


#: a flow head's posterior draws per event behind predict's columns (evaluate.flow_samples' default)
FLOW_SAMPLES = 128


def head_columns(artifact: ModelArtifact, x: np.ndarray, window: float) -> dict[str, np.ndarray]:
    """m_tt and what else the head gives: the MDN's mode, the m_tt most probably within +-window (evaluate's
    `mdn_window`) and 16/84% quantiles, the quantile head's levels."""
    output = head_output(artifact.model, x, artifact.meta, FLOW_SAMPLES)
    columns = {"m_tt": output.point}
    if output.draws is not None:
        columns.update(m_tt_window=output.draws.most_probable_within(window), m_tt_q16=output.draws.quantile(0.16),
                       m_tt_q84=output.draws.quantile(0.84))
    if output.mixture is not None:
        columns.update(m_tt_mode=output.mixture.mode(), m_tt_window=output.mixture.most_probable_within(window),
                       m_tt_q16=output.mixture.quantile(0.16), m_tt_q84=output.mixture.quantile(0.84))
    elif output.quantiles is not None:
        columns.update({f"m_tt_q{round(100 * q):02d}": output.quantiles[:, i] for i, q in enumerate(output.levels)})
    return columns


def check_inputs(frame: pd.DataFrame, artifact: ModelArtifact, profile: Path, where: str,
                 drift: tuple[float, float]) -> list[dict[str, Any]]:
    """Refuse what the critical checks refuse; the drift rows against the train profile (if there is one)."""
    require_clean(frame, artifact.features, artifact.meta.get("reference_medians", {}), where, "predict")
    if not profile.is_file():
        print(f"predict: no train profile at {profile}: drift not checked (give --reference)")
        return []
    return drift_rows(frame, json.loads(profile.read_text()), artifact.features, *drift)


def predict(model_dir: Path, meta: dict[str, Any], inputs: list[str], params: PrepareParams,
            reference: Path | None, drift: tuple[float, float], window: float) -> Prediction:
    """Select and build features as in training, check them, predict; one row per input event."""
    files = discover_inputs(inputs)
    check_distinct(files)
    clear_open_trees()
    schema = SCHEMAS[params.schema_name]
    for path in files:
        check_branches(path, cached_tree(path, params.tree), schema)
    columns = feature_columns(params.feature_sets, params.max_jets)
    missing = [f for f in meta["features"] if f not in columns]
    if missing:
        raise PredictError(f"the model reads {missing[:5]}{' ...' if len(missing) > 5 else ''}, which the feature "
                           f"sets {params.feature_sets} do not build")
    steps = selected_steps(files, params, columns)
    cutflow = {k: sum(s.cutflow.get(k, 0) for s in steps) for k in steps[0].cutflow} if steps else {"all": 0}
    by_branch = {k: sum(s.nonfinite.get(k, 0) for s in steps) for k in steps[0].nonfinite} if steps else {}
    n_nonfinite = report_nonfinite_inputs(cutflow, by_branch, params.max_nonfinite_fraction, "predict", PredictError,
                                          unused=[schema.event["weight"]])
    if sum(len(s.entries) for s in steps) == 0:
        raise PredictError(f"no events pass the selection in {len(files)} file(s):\n{format_cutflow(cutflow)}")
    table = event_ids(files, params)
    first_row = dict(zip(map(str, files), np.cumsum([0, *table.groupby("file", sort=False).size()])[:-1],
                         strict=True))
    index = np.concatenate([first_row[str(step.path)] + step.entries for step in steps])
    features = pd.concat([pd.DataFrame(step.table) for step in steps], ignore_index=True)
    artifact = load_model_dir(model_dir)
    where = ", ".join(map(str, files[:3])) + (" ..." if len(files) > 3 else "")
    profile = reference / PROFILE_FILE if reference is not None else model_dir / PROFILE_FILE  # the model's own
    drifted = check_inputs(features, artifact, profile, where, drift)
    finite = np.isfinite(features[artifact.features].to_numpy(np.float64)).all(axis=1)
    table["selected"] = False
    table.loc[index[finite], "selected"] = True
    x = features.loc[finite, artifact.features].to_numpy(np.float32)
    for name, values in head_columns(artifact, x, window).items():
        column = np.full(len(table), np.nan)
        column[index[finite]] = values
        table[name] = column
    nonfinite = {"events": n_nonfinite, "by_branch": by_branch}
    table.attrs["mtt_predict"] = {"cutflow": cutflow, "nonfinite_inputs": n_nonfinite,
                                  "nonfinite_inputs_by_branch": by_branch}  # stored in a Parquet output
    return Prediction(table, cutflow, drifted, nonfinite)


def write_output(table: pd.DataFrame, output: Path, overwrite: bool) -> None:
    """Parquet (every column) or a ROOT TTree `Friends` (numbers only, so ROOT can AddFriend it), under a temporary
    name, then renamed; the same table gives the same bytes (a ROOT file's UUIDs follow its content)."""
    if output.exists() and not overwrite:
        raise PredictError(f"--output {output}: exists; give --overwrite to replace it")
    if output.suffix not in (".parquet", ".root"):
        raise PredictError(f"--output {output}: write .parquet or .root")
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".parquet":
        with atomic_file(output) as tmp:
            table.to_parquet(tmp, index=False)
        return
    columns = {c: table[c].to_numpy() for c in table.columns if c != "file"}
    content = hashlib.sha256()
    for name, values in columns.items():
        content.update(f"{name}:{values.dtype.str}:".encode() + np.ascontiguousarray(values).tobytes())
    # a TTree (mktree), not what uproot 5.7 makes of a dict (an RNTuple, which ROOT cannot take as a friend)
    with reproducible_root(output, f"predict {content.hexdigest()}") as root:
        root.mktree("Friends", columns)


def drift_table(rows: list[dict[str, Any]]) -> str:
    """The drifted features, printed before the predictions are written."""
    lines = [f"{'feature':24s}{'mean shift [sd]':>17s}{'bound':>8s}{'median at train q':>19s}{'bound':>8s}"]
    lines += [f"{r['feature']:24s}{r['mean_shift']:17.3f}{r['mean_bound']:8.3f}{r['median_quantile']:19.3f}"
              f"{r['quantile_bound']:8.3f}" for r in rows if r["drifted"]]
    return "\n".join(lines)


@dataclass(frozen=True)
class Request:
    """What the command line asks for: the model, the inputs, the output and how strict to be."""

    model: str
    inputs: list[str]
    output: Path
    reference: Path | None = None
    strict: bool = False
    overwrite: bool = False
    mdn_window: float = MDN_WINDOW  # an MDN's m_tt_window: within +-this


def check_request(request: Request) -> None:
    """Before any work: the output is a new .parquet/.root file (or --overwrite), apart from every input and the
    model, in a folder that can be written."""
    output = request.output
    if output.suffix not in (".parquet", ".root"):
        raise PredictError(f"--output {output}: write .parquet or .root")
    local_model = [] if request.model.startswith(("runs:/", "models:/")) else [request.model]
    check_output_file(output, [*request.inputs, *local_model, *([request.reference] if request.reference else [])])
    if output.exists() and not request.overwrite:
        raise PredictError(f"--output {output}: exists; give --overwrite to replace it")


def scratch_folder() -> tempfile.TemporaryDirectory:
    """A temporary folder (for a model downloaded from MLflow) named after this process, as
    .mtt-predict-<uid>.<pid>.<random>.tmp in the temp folder: those of killed runs are removed first."""
    base = Path(tempfile.gettempdir()) / f"mtt-predict-{getattr(os, 'getuid', lambda: 0)()}"  # one user's only
    remove_stale(base)
    return tempfile.TemporaryDirectory(prefix=f".{base.name}.{os.getpid()}.", suffix=".tmp", dir=base.parent)


def main(request: Request, base: PrepareParams, changes: dict[str, Any], drift: tuple[float, float]) -> Prediction:
    """Stage entry: resolve the model, predict, report drift, write."""
    check_request(request)
    remove_stale(request.output)  # the temporary output of a killed run
    with scratch_folder() as tmp:
        folder = resolve_model(request.model, Path(tmp))
        meta = read_meta(folder)
        params = prepare_settings(meta, base, changes)
        result = predict(folder, meta, request.inputs, params, request.reference, drift, request.mdn_window)
    drifted = [r for r in result.drift if r["drifted"]]
    if drifted:
        print(f"predict: warning: {len(drifted)} of {len(result.drift)} features drifted from the training data:\n"
              f"{drift_table(result.drift)}")
        if request.strict:
            raise PredictError(f"{len(drifted)} feature(s) drifted from the training data and --strict is set")
    write_output(result.table, request.output, request.overwrite)
    n, selected = len(result.table), int(result.table["selected"].sum())
    print(f"predict: {n} events read, {selected} selected and predicted -> {request.output} "
          f"(schema {params.schema_name}, units {params.units})")
    return result
