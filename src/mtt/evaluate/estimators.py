"""The m_tt estimators compared on the same events: the model, the scaled visible mass, the ellipse method."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mtt.config import EvaluateParams
from mtt.dataset import OBJECTS, TARGET
from mtt.metrics import per_bin, spectrum_figures

MODEL = "model"
VISIBLE = "baseline_visible"
ELLIPSE = "baseline_ellipse"
#: the ellipse method's exact-solution events only, and the model on those same events
ELLIPSE_EXACT = "baseline_ellipse_exact"
MODEL_ON_EXACT = "model_on_ellipse_exact"


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
