"""The m_tt estimators compared on the same events: the model, the scaled visible mass, the ellipse method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mtt.core.dataset import NEUTRINOS, OBJECTS, TARGET
from mtt.core.distributions import Draws, Mixture
from mtt.core.errors import EvaluateError
from mtt.core.inference import HeadOutput, head_output
from mtt.core.kinematics import cartesian
from mtt.core.metrics import (
    coverage,
    coverage_per_bin,
    crps_gaussian_mixture,
    crps_point,
    crps_quantiles,
    crps_samples,
    histogram_figures,
    median_bias,
    per_bin,
    pit_flatness,
    resolution,
    spectrum_figures,
    width_ratio,
)
from mtt.core.reco.ellipse import reconstruct_mtt
from mtt.core.unfolding import Response, common_iterations, merged_edges, unfold
from mtt.stages.evaluate.params import EvaluateParams

MODEL = "model"
VISIBLE = "baseline_visible"
ELLIPSE = "baseline_ellipse"
#: the ellipse method's exact-solution events only, and the model on those same events
ELLIPSE_EXACT = "baseline_ellipse_exact"
MODEL_ON_EXACT = "model_on_ellipse_exact"


def momenta(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """(n, 4) px, py, pz, E of l+, l-, b1, b2 from their pt, eta, phi, E columns."""
    return {name: cartesian(*(table[f"{name}_{k}"].to_numpy(np.float64) for k in ("pt", "eta", "phi", "e")))
            for name in OBJECTS}


def visible_mass(p4: dict[str, np.ndarray]) -> np.ndarray:
    """m(l+ l- b1 b2) in GeV."""
    total = sum(p4[name] for name in OBJECTS)
    return np.sqrt(np.maximum(total[:, 3] ** 2 - np.sum(total[:, :3] ** 2, axis=1), 0.0))


def visible_scale(train: pd.DataFrame) -> float:
    """Mean of m_tt / m_vis on train: the factor that turns the visible mass into an m_tt estimator."""
    return float(np.mean(train[TARGET].to_numpy(np.float64) / visible_mass(momenta(train))))


def ellipse_mtt(table: pd.DataFrame, params: EvaluateParams) -> Any:
    """The ellipse method's `EllipseResult` (m_tt, exact, degenerate, ...) with its minimum-distance fallback."""
    p4 = momenta(table)
    return reconstruct_mtt(p4["lplus"], p4["lminus"], p4["b1"], p4["b2"], table.met_px.to_numpy(np.float64),
                           table.met_py.to_numpy(np.float64), m_w=params.m_w, m_t=params.m_t)


#: what each head provides, beyond the point estimate (`model`) and the classical baselines
PROVIDED = {"point": [], "mdn": ["mdn_mode", "mdn_window", "mdn_mean", "mdn_sample", "mdn_expected", "mdn_likelihood"],
            "quantile": ["quantile"], "flow": ["flow_window", "flow_mean", "flow_sample", "flow_expected"]}
#: the likelihood maximum is searched on this grid step (GeV), inside the train truth's 0.1%-99.9% range
LIKELIHOOD_STEP = 2.0
UNFOLDED = ["model_unfolded", "ellipse_unfolded"]


def chosen_estimators(head: str, wanted: list[str], ellipse: bool, unfold: bool) -> tuple[list[str], dict[str, str]]:
    """(estimators to compute, skipped ones with the reason); an estimator the head cannot give is an error."""
    provided = PROVIDED[head] + (UNFOLDED if unfold else [])
    every = [name for names in PROVIDED.values() for name in names] + UNFOLDED
    if wanted != ["all"]:
        unknown = [w for w in wanted if w not in provided]
        if unknown:
            raise EvaluateError(f"evaluate.estimators: {unknown} not available: the model's head is {head!r}, which "
                                f"provides {', '.join(provided) or 'the point estimate only'}")
        provided = list(wanted)
    if not ellipse and "ellipse_unfolded" in provided:
        provided.remove("ellipse_unfolded")
    says = {"point": "one value per event", "quantile": "quantiles", "mdn": "a mixture",
            "flow": "posterior draws of the neutrinos"}
    skipped = {name: f"the {head!r} head predicts {says[head]}"
               for name in every if name not in provided and name not in UNFOLDED}
    if not unfold:
        skipped.update(dict.fromkeys(UNFOLDED, "evaluate.unfold is false"))
    elif not ellipse:
        skipped["ellipse_unfolded"] = "evaluate.ellipse is false"
    return provided, skipped


def distribution_figures(output: HeadOutput, true: np.ndarray, edges: np.ndarray,
                         rng: np.random.Generator) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """CRPS, 68% and 95% coverage (overall, per true m_tt bin), PIT flatness of a distribution head."""
    if output.draws is not None:
        draws = output.draws
        crps = crps_samples(draws.values, true)
        intervals = {68: (draws.quantile(0.16), draws.quantile(0.84)), 95: (draws.quantile(0.025),
                                                                              draws.quantile(0.975))}
        pit = draws.cdf(true)
        extra = {"pit_chi2_ndf": pit_flatness(pit)[1]}
        arrays = {"pit": pit}
    elif output.mixture is not None:
        mixture = output.mixture
        gaussian = mixture.gaussian_in_gev()
        if gaussian is not None:
            crps = crps_gaussian_mixture(mixture.weights, gaussian[0], gaussian[1], true)
        else:
            crps = crps_samples(np.column_stack([mixture.sample(rng) for _ in range(100)]), true)
        intervals = {68: (mixture.quantile(0.16), mixture.quantile(0.84)),
                     95: (mixture.quantile(0.025), mixture.quantile(0.975))}
        pit = mixture.cdf(true)
        _, pit_chi2 = pit_flatness(pit)
        extra = {"pit_chi2_ndf": pit_chi2}
        arrays = {"pit": pit}
    else:
        quantiles, levels = output.quantiles, output.levels
        crps = crps_quantiles(quantiles, levels, true)
        level = {round(q, 4): quantiles[:, i] for i, q in enumerate(levels)}
        intervals = {size: (level[low], level[high]) for size, (low, high) in
                     ((68, (0.16, 0.84)), (95, (0.025, 0.975))) if low in level and high in level}
        extra, arrays = {}, {}
    figures = {"crps": float(np.mean(crps)), **extra}
    for size, (low, high) in intervals.items():
        figures[f"coverage_{size}"] = coverage(low, high, true)
        for kind, by in (("", None), ("_by_prediction", output.point)):
            per_bin_coverage = coverage_per_bin(low, high, true, edges, by=by)
            arrays[f"coverage_{size}{kind}_per_bin"] = per_bin_coverage
            off = np.abs(per_bin_coverage - size / 100)
            figures[f"coverage_{size}{kind}_worst_bin"] = float(np.nanmax(off)) if np.isfinite(off).any() \
                else float("nan")
    return figures, arrays


@dataclass
class Evaluation:
    """Everything `evaluate` computed on the same test events."""

    figures: dict[str, Any]
    estimates: dict[str, np.ndarray]  # per-event estimators, GeV
    tables: dict[str, pd.DataFrame]  # per true m_tt bin
    histograms: dict[str, np.ndarray] = field(default_factory=dict)  # spectra given as counts per bin
    unfolded: dict[str, Any] = field(default_factory=dict)  # mtt.core.unfolding.Unfolded per estimator
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # PIT values, coverage per bin


def evaluate(test: pd.DataFrame, train: pd.DataFrame, model: Any, features: list[str], params: EvaluateParams,
             meta: dict[str, Any] | None = None, val: pd.DataFrame | None = None) -> Evaluation:
    """Every estimator the head supports, the baselines, and the unfolded spectra, on the same test events."""
    meta = meta or {}
    edges = params.edges()
    true = test[TARGET].to_numpy(np.float64)
    output = head_output(model, test[features].to_numpy(np.float32), meta, params.flow_samples, params.seed)
    names, skipped = chosen_estimators(output.head, list(params.estimators), params.ellipse, params.unfold
                                       and val is not None)
    result = Evaluation({"n_events": len(test), "head": output.head, "estimators": names, "skipped": skipped},
                        {MODEL: output.point, VISIBLE: visible_scale(train) * visible_mass(momenta(test))}, {})
    if params.ellipse:
        ellipse = ellipse_mtt(test, params)
        result.estimates[ELLIPSE], exact = ellipse.m_tt, ellipse.exact
        result.figures["ellipse_exact_fraction"] = float(exact.mean())
        result.figures["ellipse_degenerate_fraction"] = float(ellipse.degenerate.mean())
        result.figures[ELLIPSE_EXACT] = spectrum_figures(result.estimates[ELLIPSE][exact], true[exact], edges)
        result.figures[MODEL_ON_EXACT] = spectrum_figures(output.point[exact], true[exact], edges)
    rng = np.random.default_rng(params.seed)
    if output.mixture is not None:
        prior = likelihood_prior(names, result, train, meta)
        mixture_estimators(output.mixture, names, result, edges, rng, prior, params.mdn_window)
    if output.draws is not None:
        draw_estimators(output.draws, names, result, edges, rng, params.mdn_window)
        result.figures["flow_observables"] = flow_observables(output, test, params.m_t)
    for name, pred in result.estimates.items():
        result.figures[name] = spectrum_figures(pred, true, edges)
    result.figures[MODEL]["crps"] = float(np.mean(crps_point(output.point, true)))
    if output.head != "point":
        figures, arrays = distribution_figures(output, true, edges, rng)
        result.figures[output.head] = figures
        result.arrays.update({f"{output.head}_{k}": v for k, v in arrays.items()})
    for name, counts in result.histograms.items():
        result.figures[name] = histogram_figures(counts, true, edges)
    if val is not None and any(n in names for n in UNFOLDED):
        _unfold_estimators(val, test, model, features, params, meta, names, result)
    result.tables = {name: pd.DataFrame(per_bin(pred, true, edges)) for name, pred in result.estimates.items()}
    return result


def likelihood_prior(names: list[str], result: Evaluation, train: pd.DataFrame, meta: dict[str, Any]
                     ) -> tuple[np.ndarray, np.ndarray] | None:
    """The prior the MDN was trained under, or None (and the likelihood estimator skipped, with the reason)."""
    if "mdn_likelihood" not in names:
        return None
    weights = meta.get("params", {}).get("sample_weights", "none")
    if weights != "none":
        names.remove("mdn_likelihood")
        result.figures["skipped"]["mdn_likelihood"] = (f"trained with sample_weights={weights!r}: the prior is not "
                                                       "the train spectrum")
        return None
    return training_prior(train[TARGET].to_numpy(np.float64))


def training_prior(true_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(grid, log density) of the train split's true m_tt: a Gaussian KDE in log m (smooth at the threshold),
    on a grid that stays where the train spectrum has events (the likelihood is undefined where it has none)."""
    from scipy.stats import gaussian_kde

    low, high = np.quantile(true_train, [0.001, 0.999])
    grid = np.arange(low, high + LIKELIHOOD_STEP, LIKELIHOOD_STEP)
    kde = gaussian_kde(np.log(true_train))
    return grid, np.log(np.maximum(kde(np.log(grid)), 1e-300)) - np.log(grid)


def mixture_estimators(mixture: Mixture, names: list[str], result: Evaluation, edges: np.ndarray,
                       rng: np.random.Generator, prior: tuple[np.ndarray, np.ndarray] | None, window: float) -> None:
    """Mode, most probable within +-window, mean, one seeded draw per event, the expected spectrum and the
    likelihood maximum of an MDN."""
    if "mdn_likelihood" in names and prior is not None:
        result.estimates["mdn_likelihood"] = mixture.likelihood_maximum(*prior)
    if "mdn_mode" in names:
        result.estimates["mdn_mode"] = mixture.mode()
    if "mdn_window" in names:
        result.estimates["mdn_window"] = mixture.most_probable_within(window)
    if "mdn_mean" in names:
        result.estimates["mdn_mean"] = mixture.mean_gev()
    if "mdn_sample" in names:
        result.estimates["mdn_sample"] = mixture.sample(rng)
    if "mdn_expected" in names:
        result.histograms["mdn_expected"] = mixture.expected_spectrum(edges)


def draw_estimators(draws: Draws, names: list[str], result: Evaluation, edges: np.ndarray,
                    rng: np.random.Generator, window: float) -> None:
    """The flow's estimators from its posterior draws, read as the MDN's are (flow_window: the mdn_window rule)."""
    readings = {"flow_window": lambda: draws.most_probable_within(window), "flow_mean": draws.mean_gev,
                "flow_sample": lambda: draws.sample(rng)}
    for name, reading in readings.items():
        if name in names:
            result.estimates[name] = reading()
    if "flow_expected" in names:
        result.histograms["flow_expected"] = draws.expected_spectrum(edges)


def flow_observables(output: HeadOutput, test: pd.DataFrame, m_t: float) -> dict[str, Any]:
    """Beyond m_tt, from the same draws: the top quark's pT and rapidity (each draw pairs the b jets with the
    leptons as the top mass prefers), the MET constraint (how far the drawn neutrinos' pT sum is from the
    measured MET, next to the true neutrinos' distance: the detector's MET resolution), and the m_tt resolution
    with the true neutrinos (the floor of any neutrino model with these leptons and jets)."""
    top_pt, top_y = posterior_top(output.visible, output.neutrinos, m_t)
    met = test[["met_px", "met_py"]].to_numpy(np.float64)
    drawn = output.neutrinos[..., [0, 1]] + output.neutrinos[..., [3, 4]]
    figures: dict[str, Any] = {"posterior_fraction": float(np.isfinite(output.draws.values).all(axis=1).mean())}
    for name, values in (("top_pt", top_pt), ("top_y", top_y)):
        if name in test:
            figures[name] = observable_figures(values, test[name].to_numpy(np.float64), relative=name == "top_pt")
    figures["met_residual_drawn_gev"] = float(np.median(np.hypot(*(drawn - met[:, None, :]).transpose(2, 0, 1))))
    if set(NEUTRINOS) <= set(test):
        true_nu = test[NEUTRINOS].to_numpy(np.float64)
        figures["met_residual_true_gev"] = float(np.median(np.hypot(*(true_nu[:, [0, 1]] + true_nu[:, [3, 4]]
                                                                       - met).T)))
        # the floor of any neutrino model: the visible objects plus the true neutrinos
        visible = output.visible.reshape(-1, 4, 4).sum(axis=1)
        floor = _mass(visible + _massless(true_nu[:, :3]) + _massless(true_nu[:, 3:]))
        figures["true_neutrinos_resolution"] = resolution(floor, test[TARGET].to_numpy(np.float64))
    return figures


def _massless(p: np.ndarray) -> np.ndarray:
    """(..., 4) four-momenta of massless particles from (..., 3) momenta."""
    return np.concatenate([p, np.linalg.norm(p, axis=-1, keepdims=True)], axis=-1)


def posterior_top(visible: np.ndarray, neutrinos: np.ndarray, m_t: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) top pT and rapidity per draw: t = l+ + nu + b, with the b jet (b1 or b2) whose two top candidates
    are nearer m_t in that draw."""
    p4 = visible.reshape(len(visible), 1, 4, 4)
    nu = neutrinos.astype(np.float64)
    nu_p4, antinu_p4 = _massless(nu[..., :3]), _massless(nu[..., 3:])
    lplus, lminus, b1, b2 = (p4[:, :, i] for i in range(4))
    pairings = [(lplus + nu_p4 + b1, lminus + antinu_p4 + b2), (lplus + nu_p4 + b2, lminus + antinu_p4 + b1)]
    distance = [np.abs(_mass(t) - m_t) + np.abs(_mass(tbar) - m_t) for t, tbar in pairings]
    top = np.where((distance[0] <= distance[1])[..., None], pairings[0][0], pairings[1][0])
    pt = np.hypot(top[..., 0], top[..., 1])
    rapidity = 0.5 * np.log((top[..., 3] + top[..., 2]) / np.maximum(top[..., 3] - top[..., 2], 1e-9))
    return pt, rapidity


def _mass(p4: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(p4[..., 3] ** 2 - np.sum(p4[..., :3] ** 2, axis=-1), 0.0))


def observable_figures(draws: np.ndarray, true: np.ndarray, relative: bool) -> dict[str, float]:
    """The posterior median's resolution (relative for pT, absolute for a rapidity) and bias, its spectrum's width
    ratio, and the 68% coverage of the draws' central interval."""
    median = np.median(draws, axis=1)
    low, high = np.quantile(draws, [0.16, 0.84], axis=1)
    if relative:
        core = {"resolution": resolution(median, true), "bias": median_bias(median, true)}
    else:
        residual = median - true
        core = {"resolution": float(np.subtract(*np.quantile(residual, [0.84, 0.16])) / 2),
                "bias": float(np.median(residual))}
    return {**core, "width_ratio": width_ratio(median, true), "coverage_68": coverage(low, high, true)}


def _unfold_estimators(val: pd.DataFrame, test: pd.DataFrame, model: Any, features: list[str],
                       params: EvaluateParams, meta: dict[str, Any], names: list[str], result: Evaluation) -> None:
    """The model's point estimate and the ellipse method through the same unfolding (response from val)."""
    true_val = val[TARGET].to_numpy(np.float64)
    edges = merged_edges(params.edges(), true_val, params.unfold_min_events)
    if len(edges) < 4:  # fewer than three bins: nothing to unfold
        for name in UNFOLDED:
            if name in names:
                names.remove(name)
                result.figures["skipped"][name] = (f"{len(true_val)} val events give {len(edges) - 1} bin(s) of >= "
                                                   f"{params.unfold_min_events} events: too few to unfold")
        return
    result.figures["unfolding_edges"] = [float(e) for e in edges]
    truth_test, _ = np.histogram(test[TARGET].to_numpy(np.float64), edges)
    inputs = {"model_unfolded": (head_output(model, val[features].to_numpy(np.float32), meta, params.flow_samples,
                                             params.seed + 1).point,
                                 result.estimates[MODEL])}
    if "ellipse_unfolded" in names:
        inputs["ellipse_unfolded"] = (ellipse_mtt(val, params).m_tt, result.estimates[ELLIPSE])
    histograms = {name: (np.histogram(reco_test[np.isfinite(reco_test)], edges)[0],
                         Response.build(np.nan_to_num(reco_val, nan=-1.0), true_val, edges))
                  for name, (reco_val, reco_test) in inputs.items() if name in names}
    iterations, own = common_iterations(list(histograms.values()), params.unfold_ts_stopping, params.unfold_max_iter,
                                        params.unfold_prior)
    result.figures["unfolding_iterations"] = iterations
    for (name, (observed, response)), own_iterations in zip(histograms.items(), own, strict=True):
        unfolded = unfold(observed, response, replicas=params.unfold_replicas, seed=params.seed, iterations=iterations,
                          prior=params.unfold_prior)
        result.unfolded[name] = unfolded
        result.figures[name] = {**histogram_figures(unfolded.counts, test[TARGET].to_numpy(np.float64), edges),
                                **unfolded_figures(unfolded, truth_test), "own_stopping_iterations": own_iterations}
    result.arrays["unfolding_edges"] = edges
    if {"model_unfolded", "ellipse_unfolded"} <= set(result.unfolded):
        centres = (edges[:-1] + edges[1:]) / 2
        window = (centres > 350) & (centres < 1000)
        ratio = (result.unfolded["model_unfolded"].relative_uncertainty
                 / result.unfolded["ellipse_unfolded"].relative_uncertainty)[window]
        result.figures["unfolded_uncertainty_ratio_350_1000"] = {"mean": float(np.nanmean(ratio)),
                                                                 "max": float(np.nanmax(ratio))}


def unfolded_figures(unfolded: Any, truth: np.ndarray) -> dict[str, float | int]:
    """chi2/ndf against the test truth with the quoted errors per bin (`chi2_ndf_errors`) and with the full
    covariance (`chi2_ndf_cov`), the mean pull, the iterations. The test truth histogram shares the observed
    histogram's fluctuations (both come from the same events), so with honest errors both chi2 fall below 1
    (against the expected spectrum of a toy they are ~1: benchmarks/unfolding_toys.py)."""
    pulls = unfolded.pulls(truth)
    return {"chi2_ndf_errors": float(np.nanmean(pulls**2)), "chi2_ndf_cov": unfolded.chi2_ndf_cov(truth),
            "mean_pull": float(np.nanmean(pulls)), "iterations": unfolded.iterations}

