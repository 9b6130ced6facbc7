"""The evaluate stage's tables: spectra and per-bin figures (DVC plots), flat MLflow metrics, the printout."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mtt.core.metric_names import STUDIES, is_model_independent, model_figures
from mtt.stages.evaluate.estimators import ELLIPSE, ELLIPSE_EXACT, MODEL, MODEL_ON_EXACT, VISIBLE

#: the headline figures (lower is better) a model's estimator is divided by the ellipse method's
RATIO_FIGURES = ("resolution", "wasserstein", "chi2_ndf")
#: the ellipse-method estimator each model estimator is compared with, when not the per-event ellipse method
#: itself: the unfolded spectrum with the unfolded ellipse spectrum, the exact-solution events with themselves
ELLIPSE_COUNTERPARTS = {"model_unfolded": "ellipse_unfolded", MODEL_ON_EXACT: ELLIPSE_EXACT}


def spectrum_table(true: np.ndarray, estimates: dict[str, np.ndarray], edges: np.ndarray,
                   histograms: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Counts per m_tt bin of the truth, each per-event estimator and each spectrum estimator (DVC plot)."""
    frame = pd.DataFrame({"m_tt": (edges[:-1] + edges[1:]) / 2, "truth": np.histogram(true, edges)[0]})
    for name, pred in estimates.items():
        frame[name] = np.histogram(pred[np.isfinite(pred)], edges)[0]
    for name, counts in (histograms or {}).items():
        frame[name] = np.asarray(counts, dtype=np.float64)
    return frame


def per_bin_table(tables: dict[str, pd.DataFrame], coverages: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """One row per true m_tt bin: its edges, centre, events, and each estimator's bias and resolution."""
    first = next(iter(tables.values()))
    frame = first[["m_tt_low", "m_tt_high"]].assign(m_tt=(first.m_tt_low + first.m_tt_high) / 2,
                                                    n_events=first.n_events)
    for name, table in tables.items():
        frame[f"{name}_bias"], frame[f"{name}_resolution"] = table.bias, table.resolution
    for name, values in (coverages or {}).items():
        frame[name.removesuffix("_per_bin")] = values
    return frame


def unfolded_table(edges: np.ndarray, truth: np.ndarray, unfolded: dict[str, Any]) -> pd.DataFrame:
    """Per unfolding bin: the truth, and each unfolded spectrum with its errors, relative uncertainty, pull."""
    frame = pd.DataFrame({"m_tt_low": edges[:-1], "m_tt_high": edges[1:], "truth": truth})
    for name, result in unfolded.items():
        frame[name] = result.counts
        frame[f"{name}_stat_err"], frame[f"{name}_sys_err"] = result.stat_err, result.sys_err
        frame[f"{name}_relative_uncertainty"] = result.relative_uncertainty
        frame[f"{name}_pull"] = result.pulls(truth)
    return frame


def run_figures(figures: dict[str, Any]) -> dict[str, Any]:
    """What a configuration's run gets: the figures that depend on its model (the baselines, the truth and the
    data counts are the same in every configuration: the study's parent run has them) and its ratios to the
    ellipse method (`ellipse_ratios`)."""
    logged = model_figures(figures)
    for name, ratios in ellipse_ratios(figures).items():
        logged[name] = {**logged.get(name, {}), **ratios}
    return logged


def ellipse_ratios(figures: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per estimator of the model, its headline figures divided by the ellipse method's on the same events:
    {"model": {"resolution_ratio": 0.8, "wasserstein_ratio": ..., "chi2_ndf_ratio": ...}, ...}. Below 1 the model
    beats the classical reconstruction (resolution: narrower m_tt response; W1 and chi2/ndf: a spectrum closer to
    the truth); the unfolded spectrum is divided by the unfolded ellipse spectrum. Empty without the ellipse
    method; a figure missing, not finite or zero in the denominator gives no ratio."""
    ratios: dict[str, dict[str, float]] = {}
    for name, row in figures.items():
        if not isinstance(row, dict) or name in STUDIES or is_model_independent(name):
            continue
        reference = figures.get(ELLIPSE_COUNTERPARTS.get(name, ELLIPSE), {})
        row_ratios = {f"{key}_ratio": float(row[key] / reference[key]) for key in RATIO_FIGURES
                      if _finite(row.get(key)) and _finite(reference.get(key)) and reference[key] != 0}
        if row_ratios:
            ratios[name] = row_ratios
    return ratios


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and bool(np.isfinite(value))


def zprime_table(figures: dict[str, Any]) -> str:
    """The Z' peak per estimator, printed by the stage."""
    lines = [f"Z' at {figures['mass']:.0f} GeV, {figures['n_signal']} events injected into {figures['n_sm']} SM "
             f"events; Gaussian fitted over each estimator's SM-only shape (val):",
             f"{'estimator':24s}{'peak [GeV]':>12s}{'shift':>9s}{'width':>9s}{'yield':>9s}{'/injected':>10s}"
             f"{'Z median':>10s}{'template yield':>16s}"]
    for name, row in figures.items():
        if isinstance(row, dict) and name != "skipped":
            median = row.get("signal_median", float("nan"))
            lines.append(f"{name:24s}{row['position']:12.1f}{row['position_shift']:+9.1%}{row['width']:9.1f}"
                         f"{row['signal']:9.0f}{row['yield_ratio']:10.2f}{median:10.1f}"
                         f"{row['template_yield']:9.0f} +- {row['template_yield_error']:3.0f}"
                         + ("  (fit on a limit)" if row.get("at_bound") else ""))
    return "\n".join(lines)


def summary_table(figures: dict[str, Any]) -> str:
    """The side-by-side table printed at the end of the stage."""
    names = [n for n in (MODEL, "mdn_mode", "mdn_window", "mdn_likelihood", "mdn_mean", "mdn_sample", "mdn_expected",
                         "model_unfolded", VISIBLE,
                         ELLIPSE, "ellipse_unfolded", ELLIPSE_EXACT, MODEL_ON_EXACT) if n in figures]
    keys = {"resolution": "resolution", "calibrated_resolution": "calibrated", "response_slope": "slope",
            "bias": "median bias", "rmse": "RMSE [GeV]", "within_20pct": "within 20%",
            "width_ratio": "width ratio", "wasserstein": "W1 [GeV]", "chi2_ndf": "chi2/ndf",
            "fraction_reconstructed": "with m_tt"}
    lines = [f"{'estimator':24s}" + "".join(f"{label:>13s}" for label in keys.values())]
    for name in names:
        lines.append(f"{name:24s}" + "".join(f"{figures[name].get(k, float('nan')):13.4g}" for k in keys))
    return "\n".join(lines)
