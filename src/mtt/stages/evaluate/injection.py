"""Prior robustness: a Z' -> tt resonance injected into the SM test split, and what each estimator makes of it.

The injected set is the SM test split plus Z' events (drawn with `evaluate.seed` from the Z' branch's
prepared sample, none of which the model saw) at `evaluate.zprime.fraction`, each event labelled. For every
per-event estimator, every spectrum estimator (the MDN's expected spectrum) and the truth, the Z' peak is
fitted in the injected spectrum as a Gaussian over the SM-only prediction: the same estimator applied to the
SM val split, a statistically independent sample, as the background shape (`mtt.core.peaks.fit_peak`); for the
estimators that learned nothing from train (the truth, the visible mass, the ellipse method) val and train. The
figures: peak position and width and the Gaussian's yield, against the Z' mass and the number injected; the
yield of a search that knows the signal shape (the estimator on the Z' events not injected as its template);
and the median of the estimator over the Z' events alone (the pull toward the SM bulk, with no fit between).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mtt.core.artifact import ModelArtifact
from mtt.core.dataset import TARGET
from mtt.core.errors import EvaluateError
from mtt.core.inference import head_output
from mtt.core.peaks import Peak, expected_counts, fit_peak, fit_yield
from mtt.stages.evaluate.estimators import (
    ELLIPSE,
    MODEL,
    VISIBLE,
    Evaluation,
    draw_estimators,
    ellipse_mtt,
    mixture_estimators,
    momenta,
    training_prior,
    visible_mass,
    visible_scale,
)
from mtt.stages.evaluate.params import EvaluateParams

SIGNAL = "is_signal"
TRUTH = "truth"


def zprime_mass(meta: dict[str, Any], path: str) -> float:
    """The Z' pole mass that the sample's prepare metadata carries from simulate's manifest."""
    generator = meta.get("generator") or {}
    if generator.get("process") != "zprime":
        raise EvaluateError(f"{path}: not a Z' sample (prepare recorded process {generator.get('process')!r}); "
                            "make it with `mtt simulate -S process=zprime` (the simulate_zprime stage)")
    return float(generator["zprime"]["mass"])


def injected_set(sm: pd.DataFrame, zprime: pd.DataFrame, fraction: float, rng: np.random.Generator
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The SM events plus n_signal = f / (1 - f) * n_SM Z' events drawn without replacement, labelled; and the
    Z' events not drawn (the signal template of a search for this Z')."""
    n_signal = int(round(fraction / (1 - fraction) * len(sm)))
    if n_signal > len(zprime):
        raise EvaluateError(f"evaluate.zprime.fraction {fraction} of {len(sm)} SM events needs {n_signal} Z' events; "
                            f"the Z' sample has {len(zprime)}: raise simulate.zprime.n_events")
    drawn = np.zeros(len(zprime), dtype=bool)
    drawn[rng.choice(len(zprime), n_signal, replace=False)] = True
    injected = pd.concat([sm.assign(**{SIGNAL: False}), zprime[drawn].assign(**{SIGNAL: True})], ignore_index=True)
    return injected, zprime[~drawn]


@dataclass
class Spectra:
    """Per-event estimates and per-bin spectra of one set of events, by estimator name (GeV)."""

    values: dict[str, np.ndarray]
    histograms: dict[str, np.ndarray]


def untrained(frame: pd.DataFrame, params: EvaluateParams, train: pd.DataFrame) -> dict[str, np.ndarray]:
    """The estimators that learned nothing from the train split (the truth, the visible mass, whose one scale
    factor is a mean over train, and the ellipse method): their SM-only shape may come from train as well."""
    values = {TRUTH: frame[TARGET].to_numpy(np.float64), VISIBLE: visible_scale(train) * visible_mass(momenta(frame))}
    if params.ellipse:
        values[ELLIPSE] = ellipse_mtt(frame, params).m_tt
    return values


def estimate(frame: pd.DataFrame, artifact: ModelArtifact, params: EvaluateParams, names: list[str],
             train: pd.DataFrame, edges: np.ndarray) -> Spectra:
    """Every estimator of the evaluation on other events: the head's, the visible mass, the ellipse method."""
    output = head_output(artifact.model, frame[artifact.features].to_numpy(np.float32), artifact.meta,
                         params.flow_samples, params.seed + 2)
    values = {**untrained(frame, params, train), MODEL: output.point}
    result = Evaluation({}, {}, {})
    if output.draws is not None:
        draw_estimators(output.draws, names, result, edges, np.random.default_rng(params.seed), params.mdn_window)
    if output.mixture is not None:
        prior = training_prior(train[TARGET].to_numpy(np.float64)) if "mdn_likelihood" in names else None
        mixture_estimators(output.mixture, names, result, edges, np.random.default_rng(params.seed), prior,
                           params.mdn_window)
    return Spectra({**values, **result.estimates}, result.histograms)


def _counts(spectra: Spectra, name: str, edges: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The spectrum of one estimator in the fit's bins (events with no estimate are left out)."""
    if name in spectra.histograms:
        return spectra.histograms[name]
    values = spectra.values[name] if mask is None else spectra.values[name][mask]
    return np.histogram(values[np.isfinite(values)], edges)[0].astype(np.float64)


def peak_figures(peak: Peak, known_shape: tuple[float, float], signal_values: np.ndarray | None, mass: float,
                 n_signal: int) -> dict[str, float]:
    """The fits against the truth: position over the Z' mass, yields over the number injected."""
    figures = {**peak.as_dict(), "position_shift": peak.position / mass - 1.0, "yield_ratio": peak.signal / n_signal,
               "template_yield": known_shape[0], "template_yield_error": known_shape[1],
               "template_yield_ratio": known_shape[0] / n_signal}
    if signal_values is not None:
        finite = signal_values[np.isfinite(signal_values)]
        figures["signal_median"] = float(np.median(finite)) if finite.size else float("nan")
        figures["signal_median_shift"] = figures["signal_median"] / mass - 1.0
    return figures


@dataclass
class Injection:
    """What the Z' study found: figures per estimator, and the spectra behind them for the plot."""

    figures: dict[str, Any]
    injected: Spectra
    signal: np.ndarray
    templates: dict[str, np.ndarray]
    peaks: dict[str, Peak]
    edges: np.ndarray


def study(sm_test: pd.DataFrame, zprime: pd.DataFrame, sm_val: pd.DataFrame, train: pd.DataFrame, mass: float,
          artifact: ModelArtifact, params: EvaluateParams, names: list[str]) -> Injection:
    """Inject, estimate, fit the peak per estimator over its SM-only shape: from val for the trained estimators
    (the model has seen train), from val and train (5.6x the events, so the shape fluctuates 2.4x less) for the
    truth, the visible mass and the ellipse method, which learned nothing from train."""
    edges = np.arange(params.m_tt_min, params.m_tt_max + 0.5 * params.zprime.bin_width, params.zprime.bin_width)
    injected, unused = injected_set(sm_test, zprime, params.zprime.fraction, np.random.default_rng(params.seed))
    signal = injected[SIGNAL].to_numpy()
    on_injected = estimate(injected, artifact, params, names, train, edges)
    on_val = estimate(sm_val, artifact, params, names, train, edges)
    for name, values in untrained(train, params, train).items():  # train is SM-only, and unseen by these
        on_val.values[name] = np.concatenate([on_val.values[name], values])
    on_unused = estimate(unused, artifact, params, names, train, edges)
    n_signal = int(signal.sum())
    figures: dict[str, Any] = {"mass": mass, "fraction": params.zprime.fraction, "n_signal": n_signal,
                               "n_sm": int(len(signal) - n_signal)}
    templates, peaks, skipped = {}, {}, {}
    for name in [*on_injected.values, *on_injected.histograms]:
        template, counts = _counts(on_val, name, edges), _counts(on_injected, name, edges)
        if template.sum() <= 0 or counts.sum() <= 0:  # e.g. a model still on its loss plateau, predicting ~0
            skipped[name] = (f"no {name} value inside [{edges[0]:g}, {edges[-1]:g}] GeV: no peak to fit")
            print(f"evaluate: Z' injection: {skipped[name]}")
            continue
        templates[name] = template
        peaks[name] = fit_peak(counts, templates[name], edges)
        known_shape = fit_yield(counts, templates[name], _counts(on_unused, name, edges))
        per_event = on_injected.values.get(name)
        figures[name] = peak_figures(peaks[name], known_shape, None if per_event is None else per_event[signal],
                                     mass, n_signal)
    if skipped:
        figures["skipped"] = skipped
    return Injection(figures, on_injected, signal, templates, peaks, edges)


def plot_panels(injection: Injection) -> dict[str, dict[str, np.ndarray]]:
    """Per estimator: SM and Z' parts of the injected spectrum (or its total), the fitted shapes."""
    edges, signal = injection.edges, injection.signal
    panels = {}
    for name, peak in injection.peaks.items():
        template = injection.templates[name] / injection.templates[name].sum()
        theta = np.array([peak.background, peak.signal, peak.position, peak.width])
        panel = {"fit_background": peak.background * template, "fit_total": expected_counts(theta, template, edges)}
        if name in injection.injected.values:
            panel["sm"] = _counts(injection.injected, name, edges, ~signal)
            panel["signal"] = _counts(injection.injected, name, edges, signal)
        else:
            panel["total"] = _counts(injection.injected, name, edges)
        panels[name] = panel
    return panels
