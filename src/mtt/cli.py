"""The `mtt` command: one subcommand per pipeline stage, each a thin call into its module."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from mtt.core.errors import MttError, ValidationFailed
from mtt.core.io import OutputError
from mtt.core.params import load_params, parse_overrides


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a param of this stage's section, e.g. -S n_events=500 "
                             "(an empty value keeps params.yaml)")


def _stage(sub: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand with the options every stage shares."""
    parser = sub.add_parser(name, help=summary, description=description)
    _add_common(parser)
    return parser


def _add_overwrite(parser: argparse.ArgumentParser) -> None:
    """--overwrite: a stage replaces its own earlier output folder, or an empty one; anything else only when asked."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an output folder that holds files this stage did not write (never an input, "
                             "the current folder or the project)")


def _add_child_paths(parser: argparse.ArgumentParser, out: str) -> None:
    """The paths every child's train and evaluate read (as in dvc.yaml), and the folder children write under."""
    parser.add_argument("--prepared", default="data/prepared", help="prepared splits (default: data/prepared)")
    parser.add_argument("--reference", default="data/reference", help="the validate stage's reference "
                        "(default: data/reference)")
    parser.add_argument("--validation", default="reports/validation.json",
                        help="the validate stage's summary, attached to each run (default: reports/validation.json)")
    parser.add_argument("--docs", default="reports/data_docs", help="the validate stage's Data Docs, attached too")
    parser.add_argument("--out", default=None, help=f"folder of the table, the plot and one folder per child run "
                                                    f"(default: {out})")
    parser.add_argument("--zprime", default=None, metavar="PREPARED",
                        help="prepared Z' sample: every child's evaluate injects it (e.g. data/prepared_zprime)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with a subcommand per stage."""
    parser = argparse.ArgumentParser(prog="mtt", description="m_tt regression pipeline: run one stage.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (or MTT_DEBUG=1)")
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    simulate = _stage(sub, "simulate", "Pythia 8 tt -> dilepton events + detector -> ROOT files",
                      "Generate tt -> dilepton events with Pythia 8, apply a Delphes-CMS-like detector response, "
                      "write NanoAOD-style ROOT.")
    simulate.add_argument("--out", default="data/raw", help="output folder (default: data/raw)")
    _add_overwrite(simulate)
    prepare = _stage(sub, "prepare", "selection, features and train/val/test Parquet from ROOT files",
                     "Read ROOT files (simulate output or CMS NanoAOD), apply the dilepton selection, build the "
                     "feature sets, write train/val/test Parquet.")
    prepare.add_argument("--input", action="append", default=None, metavar="PATH",
                         help="ROOT file or folder of .root files (repeatable; default: data/raw)")
    prepare.add_argument("--out", default="data/prepared", help="output folder (default: data/prepared)")
    prepare.add_argument("--metrics", default="reports/cutflow.json",
                         help="cutflow metrics JSON (default: reports/cutflow.json)")
    _add_overwrite(prepare)
    validate = _stage(sub, "validate", "great-expectations checks of prepared data against the train reference",
                      "Build the train reference (profile, scaler), validate every split: schema, physics ranges, "
                      "units, drift, scaling. With --data, check new data (Parquet or ROOT) against an existing "
                      "reference instead.")
    validate.add_argument("--prepared", default="data/prepared", help="prepared splits (default: data/prepared)")
    validate.add_argument("--reference", default="data/reference", help="reference folder (default: data/reference)")
    validate.add_argument("--summary", default=None,
                          help="JSON summary (default: reports/validation.json, a DVC metric; with --data: none, "
                               "so checking new data never touches the pipeline's reports)")
    validate.add_argument("--docs", default=None,
                          help="Data Docs site folder (default: reports/data_docs; with --data: none)")
    validate.add_argument("--data", action="append", default=None, metavar="PATH",
                          help="new data to check against --reference: Parquet from prepare, or ROOT files")
    _add_overwrite(validate)
    train = _stage(sub, "train", "Keras regression of m_tt, logged to MLflow",
                   "Train the m_tt regressor on the prepared splits; log the run to MLflow (params, lineage, "
                   "per-epoch metrics, artifacts, model with signature).")
    train.add_argument("--prepared", default="data/prepared", help="prepared splits (default: data/prepared)")
    train.add_argument("--reference", default="data/reference",
                       help="the validate stage's reference: the scaler fitted on train (default: data/reference)")
    train.add_argument("--validation", default="reports/validation.json",
                       help="the validate stage's summary, attached to the run (default: reports/validation.json)")
    train.add_argument("--docs", default="reports/data_docs", help="the validate stage's Data Docs, attached too")
    train.add_argument("--model", default="models", help="output folder for the model (default: models)")
    train.add_argument("--metrics", default="reports/train_metrics.json", help="headline figures (a DVC metric)")
    train.add_argument("--history", default="reports/history.csv", help="per-epoch history (a DVC plot)")
    train.add_argument("--checkpoints", default="checkpoints/train",
                       help="per-epoch state that train.resume continues from (default: checkpoints/train)")
    _add_overwrite(train)
    evaluate = _stage(sub, "evaluate", "resolution, bias, spectrum of the model next to the ellipse method",
                      "Evaluate the trained model on the test split next to the visible-mass and ellipse-method "
                      "baselines: metrics JSON, per-bin tables, plots; logged to the training run in MLflow.")
    evaluate.add_argument("--prepared", default="data/prepared", help="prepared splits (default: data/prepared)")
    evaluate.add_argument("--model", default="models", help="the train stage's model folder (default: models)")
    evaluate.add_argument("--out", default="eval", help="output folder (default: eval)")
    evaluate.add_argument("--history", default="reports/history.csv", help="training history, for the loss curve")
    evaluate.add_argument("--zprime", default=None, metavar="PREPARED",
                          help="prepared Z' sample (data/prepared_zprime): inject it into the test split and fit "
                               "the peak per estimator (prior robustness)")
    _add_overwrite(evaluate)
    sweep = sub.add_parser("sweep", help="train + evaluate once per value of one train param, as child runs",
                           description="For each value of one train param (-S key=a,b,c) run `mtt train` then "
                                       "`mtt evaluate` in a subprocess, logged into a child of one parent MLflow "
                                       "run; a failed child is marked FAILED and the sweep goes on. Writes "
                                       "sweep.csv and sweep.png to --out and to the parent run.")
    sweep.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    sweep.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="a train param: one with comma-separated values is swept (-S n_train=1e4,3e4,1e5, "
                            "-S head=point,mdn), any other is fixed for every child (-S epochs=5)")
    _add_child_paths(sweep, "sweeps/<param>")
    tune = _stage(sub, "tune", "Optuna search over train params (tune.space), each trial a child run",
                  "Hyper-parameter search with Optuna's seeded TPE sampler over params.yaml's tune.space; each "
                  "trial is `mtt train` + `mtt evaluate` logged into a child of one parent MLflow run; the "
                  "objective is the val resolution at the best epoch. The parent gets best.<param>, best_value, "
                  "tune.csv and tune.png.")
    tune.add_argument("-T", "--train-set", dest="train_overrides", action="append", default=[],
                      metavar="KEY=VALUE", help="a train param fixed for every trial, e.g. -T epochs=5")
    _add_child_paths(tune, "sweeps/tune")
    predict = _stage(sub, "predict", "a trained model on new ROOT files (simulated or CMS NanoAOD)",
                     "Apply a trained model to ROOT files with the selection and features of its training data "
                     "(carried in model.json): one row per input event, m_tt where it passes. -S changes the "
                     "prepare section, e.g. -S selection.n_btag_min=0.")
    predict.add_argument("--model", required=True,
                         help="a models/ folder, runs:/<run id>, or models:/<name>@<alias> (or /<version>)")
    predict.add_argument("--input", action="append", required=True, metavar="PATH",
                         help="ROOT file or folder of .root files (repeatable)")
    predict.add_argument("--output", required=True, help="file.parquet, or file.root (a friend tree of the input)")
    predict.add_argument("--schema", choices=["native", "nanoaod"], default=None, help="input branch layout")
    predict.add_argument("--units", choices=["GeV", "MeV"], default=None, help="energy unit of the input")
    predict.add_argument("--reference", default=None,
                         help="a reference folder whose train profile the drift checks use (default: the profile "
                              "saved with the model)")
    predict.add_argument("--strict", action="store_true", help="refuse, instead of warning, when features drifted")
    predict.add_argument("--overwrite", action="store_true", help="replace an existing output")
    runs = sub.add_parser("runs", help="MLflow housekeeping: mark runs of dead processes KILLED",
                          description="Runs left RUNNING by a process that died without a word (SIGKILL, a lost "
                                      "node) are marked KILLED: a run mtt made carries its process (host, pid, "
                                      "start time) and is dead when that process no longer runs on this host; a "
                                      "run without those tags (made by another tool, or by an older mtt) cannot "
                                      "be checked, so it counts as dead once it started more than --older-than "
                                      "hours ago. Runs of processes on other hosts are left to `mtt runs "
                                      "--cleanup` there. `mtt train` and `mtt sweep` mark the dead tagged runs of "
                                      "their experiment by themselves.")
    runs.add_argument("--cleanup", action="store_true", required=True, help="mark dead runs KILLED")
    runs.add_argument("--experiment", default=None, help="experiment name (default: all experiments)")
    runs.add_argument("--older-than", type=_hours, default=None, metavar="HOURS",
                      help="a RUNNING run without mtt's process tags is dead once it started this many hours ago "
                           "(default: 24; 0: every such run)")
    ui = sub.add_parser("ui", help="the MLflow UI for this project's runs (one worker), opened on the training runs",
                        description="Start `mlflow server` on the project's store with one worker, no job runner "
                                    "and no telemetry, and print the URL of the experiment's training runs.")
    ui.add_argument("--experiment", default="mtt", help="experiment whose runs the printed URL shows (default: mtt)")
    ui.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, this machine only)")
    ui.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    relocate = sub.add_parser("relocate", help="point a copied or moved project's MLflow store at its new folder",
                              description="The local store (mlflow.db, the MLmodel files under mlartifacts/) "
                                          "records absolute paths of the folder the runs were made in; rewrite "
                                          "them to this project's folder.")
    relocate.add_argument("--from", dest="old", default=None, type=Path,
                          help="the folder the store was written in (default: read from the store)")
    report = sub.add_parser("report", help="a study's results table and figures, rebuilt from tracked MLflow runs",
                            description="Read a report spec (YAML: rows = run id + estimator, metric columns, "
                                        "figures), write <out>/<spec stem>-table.md and <out>/figures/<name> "
                                        "from the runs' metrics and artifacts, and print the table.")
    report.add_argument("--spec", required=True, help="report spec, e.g. docs/bias-study.yaml")
    report.add_argument("--out", default="docs", help="output folder (default: docs)")
    promote = sub.add_parser("promote", help="move the registered model's alias champion to a better version",
                             description="Move alias `champion` of a registered model to a version (--version, "
                                         "--run, default: the one alias `candidate` names) when its metric is "
                                         "lower than the champion's, or with --force; print what was done and why. "
                                         "An empty value keeps the default (as `mlflow run -e promote` passes it).")
    promote.add_argument("--params", default="params.yaml", help="params file: train.registered_model and "
                         "train.promote_metric are the defaults (default: params.yaml)")
    promote.add_argument("--name", default=None, help="registered model (default: train.registered_model)")
    promote.add_argument("--version", default=None, help="the version to promote (default: alias candidate)")
    promote.add_argument("--run", default=None, metavar="RUN_ID", help="promote the version this run registered "
                         "(instead of --version)")
    promote.add_argument("--metric", default=None, help="run metric to compare, lower is better (default: "
                         "train.promote_metric, e.g. final/val_resolution; test/model.resolution once evaluate ran)")
    promote.add_argument("--force", nargs="?", const="true", default="false", choices=["true", "false", ""],
                         metavar="true|false", help="move champion whatever the metric says (--force, or --force=true)")
    baseline = sub.add_parser("baseline", help="the working tree's DVC metrics against those committed at HEAD",
                              description="Compare every figure of the metrics files dvc.yaml names with git "
                                          "HEAD's: data-derived ones exactly, model-derived ones within the "
                                          "relative tolerances of baseline.yaml (measured from the seed-to-seed "
                                          "spread). Prints the figures that differ; exits 1 naming those beyond "
                                          "tolerance.")
    baseline.add_argument("--check", action="store_true", required=True, help="compare against git HEAD")
    baseline.add_argument("--rules", default="baseline.yaml", help="tolerances, next to dvc.yaml (default: "
                          "baseline.yaml)")
    baseline.add_argument("--all", dest="show_all", action="store_true", help="list every figure, not only "
                          "those that differ")
    for command in sub.choices.values():  # `mtt train --debug` as well as `mtt --debug train`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the traceback of an error (or MTT_DEBUG=1)")
    return parser


def run_promote(args: argparse.Namespace) -> int:
    """`mtt promote`: the name and metric default to params.yaml's train section (read only when needed)."""
    from mtt.core.registry import main as promote_main

    if args.version and args.run:
        raise MttError("give --version or --run, not both")
    train = load_params(args.params, "train") if not (args.name and args.metric) else None
    name = args.name or train.registered_model
    if not name:
        raise MttError(f"no registered model to promote: train.registered_model is empty in {args.params}; "
                       "give --name")
    promote_main(name, args.metric or train.promote_metric, args.version or None, args.run or None,
                 args.force == "true")
    return 0


def _hours(text: str) -> float:
    """--older-than: a number of hours, 0 or more."""
    try:
        hours = float(text)
    except ValueError:
        hours = -1.0
    if not hours >= 0 or hours == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of hours, 0 or more, got {text!r}")
    return hours


def cleanup_runs(experiment: str | None, older_than: float | None = None) -> list[str]:
    """Mark the dead RUNNING runs of one experiment (or all) KILLED, untagged ones after `older_than` hours
    (default: run_lifecycle.UNTAGGED_HOURS); their ids."""
    from mlflow.tracking import MlflowClient

    from mtt.core import run_lifecycle, tracking

    tracking.configure()
    client = MlflowClient()
    experiments = ([client.get_experiment_by_name(experiment)] if experiment else client.search_experiments())
    if experiment and experiments[0] is None:
        raise MttError(f"no MLflow experiment {experiment!r} in {tracking.tracking_uri()}")
    hours = run_lifecycle.UNTAGGED_HOURS if older_than is None else older_than
    killed = [run for e in experiments for run in run_lifecycle.mark_dead_runs(e.experiment_id, hours)]
    print(f"mtt runs: {len(killed)} run(s) of dead processes marked KILLED")
    return killed


def new_data(paths: list[str], prepare: Any) -> Any:
    """A table of new data to validate: Parquet file(s) from prepare, or ROOT files run through prepare first."""
    import tempfile
    from pathlib import Path

    import pandas as pd

    from mtt.core.dataset import SPLITS, split_path

    files = [Path(p) for p in paths]
    if all(p.suffix == ".parquet" for p in files):
        return pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
    from mtt.stages.prepare import run_prepare

    with tempfile.TemporaryDirectory() as tmp:
        run_prepare(prepare, files, Path(tmp) / "prepared")
        return pd.concat([pd.read_parquet(split_path(Path(tmp) / "prepared", s)) for s in SPLITS], ignore_index=True)


def run_predict(args: argparse.Namespace) -> int:
    """`mtt predict`: params.yaml's prepare section under the model's own, then the command line's changes."""
    from mtt.stages.predict import Request
    from mtt.stages.predict import main as predict_main

    changes = parse_overrides(args.overrides, "prepare")
    changes.update({k: v for k, v in (("schema", args.schema), ("units", args.units)) if v is not None})
    load_params(args.params, "prepare", changes)  # a bad override stops here, naming the key
    params = load_params(args.params)
    request = Request(args.model, args.input, Path(args.output), _path(args.reference), args.strict, args.overwrite,
                      params.evaluate.mdn_window)
    predict_main(request, params.prepare, changes, (params.validation.drift.mean_shift_max,
                                                    params.validation.drift.quantile_shift_max))
    return 0


def uses_tracking(args: argparse.Namespace) -> bool:
    """Whether the command logs to or reads from MLflow: the TRACKED commands, predict with a runs:/ or
    models:/ model, and any stage under `mlflow run` (MLFLOW_RUN_ID set)."""
    model = str(getattr(args, "model", "") or "")
    return (args.stage in TRACKED or bool(os.environ.get("MLFLOW_RUN_ID"))
            or (args.stage == "predict" and model.startswith(("runs:/", "models:/"))))


def run_stage(args: argparse.Namespace) -> int:
    """Load the stage's params (failing early on bad ones) and run it; the exit status."""
    if uses_tracking(args):  # a tracking server that is down: one line now, not after the stage's work
        from mtt.core import tracking

        tracking.require_server()
    tool = TOOLS.get(args.stage)
    if tool is not None:
        return tool(args)
    changes = parse_overrides(args.overrides, args.stage)
    params = load_params(args.params, args.stage, changes)
    if args.stage == "simulate":
        from mtt.stages.simulate import main as simulate_main

        simulate_main(params, args.out, args.overwrite)
    elif args.stage == "prepare":
        from mtt.stages.prepare import main as prepare_main

        prepare_main(params, args.input or ["data/raw"], args.out, args.metrics, args.overwrite)
    elif args.stage == "validate":
        from mtt.core.preprocessing import scaler_name
        from mtt.stages.validate import main as validate_main
        from mtt.stages.validate import validate_new
        from mtt.stages.validate.stage import check_outputs

        train = load_params(args.params, "train")  # the scaler training will use is the one checked
        scaler = scaler_name(train.scaler, train.log_features)
        if args.data:
            check_outputs([*args.data, args.reference], None, args.docs, args.summary, args.overwrite)
            frame = new_data(args.data, load_params(args.params, "prepare"))
            validate_new(params, frame, args.reference, args.summary, args.docs, scaler=scaler,
                         overwrite=args.overwrite)
        else:
            validate_main(params, args.prepared, args.reference, args.summary or "reports/validation.json",
                          args.docs or "reports/data_docs", scaler, args.overwrite)
    elif args.stage == "train":
        from mtt.stages.train import TrainPaths
        from mtt.stages.train import main as train_main

        paths = TrainPaths(prepared=Path(args.prepared), reference=Path(args.reference), model=Path(args.model),
                           metrics=_path(args.metrics), history=_path(args.history),
                           checkpoints=_path(args.checkpoints), validation=_path(args.validation),
                           docs=_path(args.docs), overwrite=args.overwrite)
        train_main(params, paths, changes, Path(args.params))
    elif args.stage == "evaluate":
        from mtt.stages.evaluate import main as evaluate_main

        evaluate_main(params, args.prepared, args.model, args.out, args.history, args.zprime, args.overwrite)
    return 0


def run_store(args: argparse.Namespace) -> int:
    """`mtt ui` and `mtt relocate`: the local MLflow store, served or moved."""
    from mtt.tools import store

    if args.stage == "ui":
        store.serve(args.experiment, args.host, args.port)
    else:
        store.relocate(args.old)
    return 0


def run_report(args: argparse.Namespace) -> int:
    """`mtt report`: a study's table and figures from tracked runs."""
    from mtt.tools.report import main as report_main

    report_main(args.spec, args.out)
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    """`mtt baseline --check`: a fresh run's metrics against the committed ones."""
    from mtt.tools.baseline import main as baseline_main

    baseline_main(args.rules, args.show_all)
    return 0


def run_cleanup(args: argparse.Namespace) -> int:
    """`mtt runs --cleanup`."""
    cleanup_runs(args.experiment, args.older_than)
    return 0


def run_search(args: argparse.Namespace) -> int:
    """`mtt sweep` and `mtt tune`: child runs of train + evaluate, which mtt.tools.sweep starts as subprocesses."""
    from mtt.tools.sweep import StagePaths, run_sweep, run_tune

    paths = StagePaths(params=Path(args.params), prepared=Path(args.prepared), reference=Path(args.reference),
                       validation=_path(args.validation), docs=_path(args.docs), out=_path(args.out),
                       zprime=_path(args.zprime))
    if args.stage == "sweep":
        run_sweep(args.overrides, paths)
    else:
        run_tune(load_params(args.params, "tune", parse_overrides(args.overrides, "tune")), args.train_overrides,
                 paths)
    return 0


#: the commands that log to or read from MLflow: a tracking server (MLFLOW_TRACKING_URI=http://...) must answer
TRACKED = {"train", "evaluate", "sweep", "tune", "runs", "promote", "report"}
#: the commands that read no stage section of params.yaml before they start
TOOLS = {"runs": run_cleanup, "sweep": run_search, "tune": run_search, "predict": run_predict,
         "promote": run_promote, "report": run_report, "ui": run_store, "relocate": run_store,
         "baseline": run_baseline}


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `kill` and batch systems send), handled like Ctrl-C: runs end KILLED, outputs stay whole."""


def _terminate(signum: int, frame: Any) -> None:
    """The first SIGTERM stops the stage; the ones after it (a batch system's second `kill`, an impatient
    user) must not abort the cleanup it starts, which ends the run KILLED and removes temporary outputs."""
    signal.signal(signal.SIGTERM, _cleaning_up)
    raise Terminated


def _cleaning_up(signum: int, frame: Any) -> None:
    """A SIGTERM during the cleanup: say so, and let the cleanup finish (SIGKILL stops at once)."""
    os.write(2, b"mtt: SIGTERM again: still ending the run and removing temporary outputs (SIGKILL stops at "
                b"once)\n")


#: what a failure of MLflow's store or client says, and what the user can do about it
MLFLOW_HINTS = (
    (("registered tracking store", "unsupported uri", "not a valid uri", "scheme"),
     "the tracking URI {uri} is not supported: use sqlite:///<path>.db, a folder, or http(s)://host:port "
     "(MLFLOW_TRACKING_URI)"),
    (("must be in the 'active' state", "deleted"),
     "the run was deleted in MLflow: restore it (`mlflow runs restore --run-id <id>`) or train again"),
    (("malformed", "not a database", "no such table", "can't locate revision"),
     "the MLflow store {uri} is corrupt or of another MLflow version: move it aside (a new one is made) or "
     "restore it from a backup"),
    (("database or disk is full", "no space left"),
     "no space left for the MLflow store {uri}: free disk space, then run again"),
)


def _first_line(exc: BaseException) -> str:
    """The exception's message on one line (its class name when it has none)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def explain(exc: BaseException) -> str:
    """One line for an exception that is not one of mtt's own: what failed and what to do."""
    text = _first_line(exc)
    module = type(exc).__module__.split(".")[0]
    if module in ("mlflow", "sqlalchemy", "sqlite3", "alembic"):
        uri = os.environ.get("MLFLOW_TRACKING_URI") or "(the project's mlflow.db)"
        for needles, hint in MLFLOW_HINTS:
            if any(n in text.lower() for n in needles):
                return f"MLflow: {text[:300]}; {hint.format(uri=uri)}"
        return f"MLflow: {text[:300]} (tracking store {uri})"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"no space left on the device writing {exc.filename or 'an output'}: free disk space, then run again"
    if isinstance(exc, OutputError | ValueError | OSError):  # messages written for the user (ours, or a path's)
        return text
    if isinstance(exc, MemoryError):
        return "out of memory: run with fewer events or smaller steps (prepare.step_size, train.batch_size)"
    return (f"{type(exc).__name__}: {text[:300]} (unexpected: run again with --debug or MTT_DEBUG=1 for the "
            "traceback, and report it)")


def debugging(args: argparse.Namespace) -> bool:
    """Whether to show tracebacks: --debug, or MTT_DEBUG=1 in the environment."""
    return bool(getattr(args, "debug", False)) or os.environ.get("MTT_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the stage; clear one-line errors instead of tracebacks (those behind --debug)."""
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return run_stage(args)
    except Terminated:
        print(f"mtt {args.stage}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"mtt {args.stage}: interrupted", file=sys.stderr)
        return 130
    except ValidationFailed as exc:
        print(f"mtt {args.stage}: failed: {exc}", file=sys.stderr)
        return 1
    except MttError as exc:
        if debugging(args):
            traceback.print_exc()
        print(f"mtt {args.stage}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # anything else: one line, the traceback behind --debug
        if debugging(args):
            traceback.print_exc()
        print(f"mtt {args.stage}: error: {explain(exc)}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
