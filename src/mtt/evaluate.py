"""`evaluate` stage: resolution, bias and spectrum agreement of the model, next to the classical baselines.

On the test split (the same events for every estimator): the trained model, the visible mass m(l+ l- b b)
scaled by its mean ratio to the truth on train, and the ellipse method (analytic neutrino solutions,
`mtt.reco.ellipse`). Writes `eval/metrics.json` (a DVC metric), `eval/per_bin.csv` and `eval/spectrum.csv`
(DVC plots), PNG plots in `eval/plots/`, and logs all of it to the training run in MLflow.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtt.config import EvaluateParams
from mtt.io import atomic_dir
from mtt.metrics import per_bin, spectrum_figures
from mtt.prepare.features import OBJECTS, TARGET

MODEL = "model"
VISIBLE = "baseline_visible"
ELLIPSE = "baseline_ellipse"
#: the ellipse method's exact-solution events only, and the model on those same events
ELLIPSE_EXACT = "baseline_ellipse_exact"
MODEL_ON_EXACT = "model_on_ellipse_exact"
#: the columns the baselines need: the four objects' momenta and MET
OBJECT_COLUMNS = [f"{o}_{k}" for o in OBJECTS for k in ("pt", "eta", "phi", "e")] + ["met_px", "met_py"]


class EvaluateError(ValueError):
    """Missing model, split or columns, named."""


def read_split(path: Path, columns: list[str], max_events: int = 0) -> pd.DataFrame:
    """The named columns of a prepared split (the first max_events rows if set), checked."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise EvaluateError(f"{path}: prepared split missing; run the prepare stage first")
    available = set(pq.read_schema(path).names)
    missing = [c for c in columns if c not in available]
    if missing:
        raise EvaluateError(f"{path}: missing columns {missing} (the baselines need the lowlevel feature set: "
                            "add it to prepare.feature_sets)" if set(missing) & set(OBJECT_COLUMNS)
                            else f"{path}: missing columns {missing}")
    table = pd.read_parquet(path, columns=columns)
    if max_events:
        table = table.iloc[:max_events]
    if len(table) == 0:
        raise EvaluateError(f"{path}: no events to evaluate")
    return table


def load_model(model_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The saved inference model (raw features -> GeV) and its model.json."""
    import keras

    import mtt.model  # noqa: F401  (registers the custom layers)
    from mtt.train import MODEL_FILE

    if not (model_dir / MODEL_FILE).is_file():
        raise EvaluateError(f"{model_dir / MODEL_FILE}: no trained model; run the train stage first")
    return keras.models.load_model(model_dir / MODEL_FILE), json.loads((model_dir / "model.json").read_text())


def predict_mtt(model: Any, x: np.ndarray, batch: int = 65536) -> np.ndarray:
    """Predicted m_tt in GeV (the first output column: the point estimate or the mixture mean)."""
    out = [np.asarray(model(x[i:i + batch])).reshape(min(batch, len(x) - i), -1)[:, 0]
           for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.float64)


def momenta(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """(n, 4) px, py, pz, E of l+, l-, b1, b2 from their pt, eta, phi, E columns."""
    import vector

    out = {}
    for name in OBJECTS:
        v = vector.array({k: table[f"{name}_{k}"].to_numpy(np.float64) for k in ("pt", "eta", "phi")}
                         | {"E": table[f"{name}_e"].to_numpy(np.float64)})
        out[name] = np.column_stack([v.px, v.py, v.pz, v.E])
    return out


def visible_mass(p4: dict[str, np.ndarray]) -> np.ndarray:
    """m(l+ l- b1 b2) in GeV."""
    total = sum(p4[name] for name in OBJECTS)
    return np.sqrt(np.maximum(total[:, 3] ** 2 - np.sum(total[:, :3] ** 2, axis=1), 0.0))


def visible_scale(train: pd.DataFrame) -> float:
    """Mean of m_tt / m_vis on train: the factor that turns the visible mass into an m_tt estimator."""
    return float(np.mean(train[TARGET].to_numpy(np.float64) / visible_mass(momenta(train))))


def ellipse_mtt(table: pd.DataFrame, params: EvaluateParams) -> Any:
    """The ellipse method's `EllipseResult` (m_tt, exact, degenerate, ...) with its minimum-distance fallback."""
    from mtt.reco.ellipse import reconstruct_mtt

    p4 = momenta(table)
    return reconstruct_mtt(p4["lplus"], p4["lminus"], p4["b1"], p4["b2"], table.met_px.to_numpy(np.float64),
                           table.met_py.to_numpy(np.float64), m_w=params.m_w, m_t=params.m_t)


def evaluate(test: pd.DataFrame, train: pd.DataFrame, model: Any, features: list[str],
             params: EvaluateParams) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, pd.DataFrame]]:
    """(figures per estimator, predictions per estimator, per-bin tables) on the same test events."""
    edges = params.edges()
    true = test[TARGET].to_numpy(np.float64)
    estimates = {MODEL: predict_mtt(model, test[features].to_numpy(np.float32)),
                 VISIBLE: visible_scale(train) * visible_mass(momenta(test))}
    figures: dict[str, Any] = {"n_events": len(test)}
    if params.ellipse:
        result = ellipse_mtt(test, params)
        estimates[ELLIPSE], exact = result.m_tt, result.exact
        figures["ellipse_exact_fraction"] = float(exact.mean())
        figures["ellipse_degenerate_fraction"] = float(result.degenerate.mean())
        figures[ELLIPSE_EXACT] = spectrum_figures(estimates[ELLIPSE][exact], true[exact], edges)
        figures[MODEL_ON_EXACT] = spectrum_figures(estimates[MODEL][exact], true[exact], edges)
    for name, pred in estimates.items():
        figures[name] = spectrum_figures(pred, true, edges)
    tables = {name: pd.DataFrame(per_bin(pred, true, edges)) for name, pred in estimates.items()}
    return figures, estimates, tables


def spectrum_table(true: np.ndarray, estimates: dict[str, np.ndarray], edges: np.ndarray) -> pd.DataFrame:
    """Histogram counts per m_tt bin of the truth and each estimator (the DVC spectrum plot)."""
    frame = pd.DataFrame({"m_tt": (edges[:-1] + edges[1:]) / 2, "truth": np.histogram(true, edges)[0]})
    for name, pred in estimates.items():
        frame[name] = np.histogram(pred[np.isfinite(pred)], edges)[0]
    return frame


def per_bin_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per true m_tt bin: its edges, centre, events, and each estimator's bias and resolution."""
    first = next(iter(tables.values()))
    frame = first[["m_tt_low", "m_tt_high"]].assign(m_tt=(first.m_tt_low + first.m_tt_high) / 2,
                                                    n_events=first.n_events)
    for name, table in tables.items():
        frame[f"{name}_bias"], frame[f"{name}_resolution"] = table.bias, table.resolution
    return frame


def write_outputs(folder: Path, figures: dict[str, Any], estimates: dict[str, np.ndarray],
                  tables: dict[str, pd.DataFrame], true: np.ndarray, params: EvaluateParams,
                  history: pd.DataFrame | None) -> None:
    """metrics.json, per_bin.csv, spectrum.csv and the plots, into `folder`."""
    from mtt import plots

    edges = params.edges()
    (folder / "metrics.json").write_text(json.dumps(figures, indent=2) + "\n")
    per_bin_table(tables).to_csv(folder / "per_bin.csv", index=False)
    spectrum_table(true, estimates, edges).to_csv(folder / "spectrum.csv", index=False)
    (folder / "plots").mkdir()
    plots.spectrum(true, estimates, edges, folder / "plots" / "spectrum.png")
    for name, pred in estimates.items():
        plots.response_matrix(pred, true, edges, folder / "plots" / f"response_{name}.png", name)
    plots.bias_resolution(tables, folder / "plots" / "bias_resolution.png")
    plots.residuals(true, estimates, folder / "plots" / "residuals.png")
    if history is not None:
        plots.loss_curve(history, folder / "plots" / "loss_curve.png")


def flat_metrics(figures: dict[str, Any]) -> dict[str, float]:
    """{"model/resolution": ..., "baseline_ellipse/resolution": ...}: the MLflow metric names."""
    out = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            out.update({f"{key}/{k}": float(v) for k, v in value.items()})
        else:
            out[f"eval/{key}"] = float(value)
    return out


def log_to_run(run_id: str | None, figures: dict[str, Any], folder: Path, rule: str | None) -> bool:
    """Log figures and plots to the training run (without reopening it); False if the run is unknown.

    Under `mlflow run -e evaluate` (MLFLOW_RUN_ID set) they also go to the run that command started.
    """
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from mtt import tracking

    tracking.configure()
    client = MlflowClient()
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in flat_metrics(figures).items() if np.isfinite(v)]
    logged = False
    for target in dict.fromkeys(filter(None, [run_id, os.environ.get("MLFLOW_RUN_ID")])):
        try:
            client.get_run(target)
        except MlflowException:
            print(f"evaluate: MLflow run {target} is not in {tracking.tracking_uri()}: figures written to files only")
            continue
        client.log_batch(target, metrics=metrics)
        client.set_tag(target, "eval.model_run_id", run_id or "")
        if rule:
            client.set_tag(target, "eval.ellipse_rule", rule)
        client.log_artifacts(target, str(folder), artifact_path="evaluate")
        logged = True
    return logged


def run_evaluate(params: EvaluateParams, prepared_dir: str | os.PathLike[str], model_dir: str | os.PathLike[str],
                 out_dir: str | os.PathLike[str], history_path: str | os.PathLike[str] | None = None,
                 ) -> dict[str, Any]:
    """Evaluate the model and the baselines on one split, write the outputs, log them; return the figures."""
    prepared_dir, model_dir = Path(prepared_dir), Path(model_dir)
    model, meta = load_model(model_dir)
    features = meta["features"]
    columns = list(dict.fromkeys([*features, *OBJECT_COLUMNS, TARGET]))
    test = read_split(prepared_dir / f"{params.split}.parquet", columns, params.max_events)
    train = read_split(prepared_dir / "train.parquet", [*OBJECT_COLUMNS, TARGET])
    figures, estimates, tables = evaluate(test, train, model, features, params)
    rule = None
    if params.ellipse:
        from mtt.reco.ellipse import SOLUTION_RULE

        rule = SOLUTION_RULE
    history = pd.read_csv(history_path) if history_path and Path(history_path).is_file() else None
    true = test[TARGET].to_numpy(np.float64)
    with atomic_dir(out_dir) as tmp:
        write_outputs(tmp, figures, estimates, tables, true, params, history)
        if (Path(out_dir) / ".gitignore").is_file():  # DVC's entry for the cached plots folder stays
            shutil.copy2(Path(out_dir) / ".gitignore", tmp / ".gitignore")
        if rule:
            (tmp / "ellipse_rule.txt").write_text(rule + "\n")
    log_to_run(meta.get("mlflow_run_id"), figures, Path(out_dir), rule)
    return figures


def summary_table(figures: dict[str, Any]) -> str:
    """The side-by-side table printed at the end of the stage."""
    names = [n for n in (MODEL, VISIBLE, ELLIPSE, ELLIPSE_EXACT, MODEL_ON_EXACT) if n in figures]
    keys = {"resolution": "resolution", "bias": "median bias", "rmse": "RMSE [GeV]", "within_20pct": "within 20%",
            "width_ratio": "width ratio", "wasserstein": "W1 [GeV]", "chi2_ndf": "chi2/ndf",
            "fraction_reconstructed": "with m_tt"}
    lines = [f"{'estimator':24s}" + "".join(f"{label:>13s}" for label in keys.values())]
    for name in names:
        lines.append(f"{name:24s}" + "".join(f"{figures[name].get(k, float('nan')):13.4g}" for k in keys))
    return "\n".join(lines)


def main(params: EvaluateParams, prepared_dir: str, model_dir: str, out_dir: str,
         history_path: str | None = None) -> dict[str, Any]:
    """Stage entry: evaluate, print the comparison table."""
    figures = run_evaluate(params, prepared_dir, model_dir, out_dir, history_path)
    print(f"evaluate: {figures['n_events']} {params.split} events")
    if "ellipse_exact_fraction" in figures:
        print(f"ellipse method: exact solution for {figures['ellipse_exact_fraction']:.1%} of events, nearest "
              f"approach for the rest ({figures['ellipse_degenerate_fraction']:.1%} with ellipses shrunk to points)")
    print(summary_table(figures))
    return figures
