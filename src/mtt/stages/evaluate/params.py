"""The evaluate section of params.yaml: binning, estimators, unfolding, the Z' injection."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mtt.core.distributions import MDN_WINDOW
from mtt.core.params import Section, size_text


class InjectionParams(Section):
    """The injected set: the SM test split plus Z' events, and the fit of the Z' peak in it."""

    fraction: float = Field(0.05, gt=0, lt=0.5, description="Z' share of the injected set: signal / (signal + SM)")
    bin_width: float = Field(20.0, gt=0, description="bin width (GeV) of the histograms the peak is fitted in")


#: the unfolding's error propagation (pyunfold's Adye propagation) builds a (bins^2 x bins^2) covariance of the
#: response and multiplies through it in every iteration: memory ~8 bins^4 bytes, time ~bins^5, measured 0.23 s
#: per iteration at 96 bins (7 MB and ~2 ms at 24; 11 GB and 25 s at 192; 500 bins would need 500 GB)
UNFOLD_MAX_BINS = 64
UNFOLD_SECONDS_AT_96 = 0.23
#: iterations of a typical unfolding: the KS stopping rule stopped after 5 (model) and 15 (ellipse method)
UNFOLD_TYPICAL_ITERATIONS = 15


def unfolding_estimate(n_bins: int) -> str:
    """What evaluate's unfolding costs: memory of one iteration and the time of all of it (both methods: pyunfold's
    stopping rule and result with its error propagation, ~n_bins^5; the replicas run batched in numpy, ~n_bins^2,
    and are left out)."""
    unfoldings = 2 * 2
    seconds = unfoldings * UNFOLD_TYPICAL_ITERATIONS * UNFOLD_SECONDS_AT_96 * (n_bins / 96) ** 5
    time = f"{seconds / 3600:,.0f} hours" if seconds >= 7200 else f"{max(seconds / 60, 1):.0f} min"
    return (f"a {size_text(8.0 * n_bins**4)} covariance per iteration and ~{time} ({unfoldings} unfoldings x "
            f"~{UNFOLD_TYPICAL_ITERATIONS} iterations, ~n_bins^5 each)")


class EvaluateParams(Section):
    """Resolution, bias and spectrum agreement on the test split, next to the classical baselines."""

    split: Literal["test", "val"] = Field("test", description="prepared split to evaluate on")
    m_tt_min: float = Field(300.0, ge=0, description="lower edge of the m_tt histograms (GeV)")
    m_tt_max: float = Field(1500.0, gt=0, description="upper edge of the m_tt histograms (GeV)")
    n_bins: int = Field(24, ge=2, le=500, description=f"m_tt bins for spectra, chi2 and per-bin figures; at most "
                        f"{UNFOLD_MAX_BINS} with unfold: true ({unfolding_estimate(UNFOLD_MAX_BINS)}; the cost "
                        "grows as n_bins^5)")
    ellipse: bool = Field(True, description="run the ellipse-method baseline")
    m_w: float = Field(80.4, gt=0, description="W mass of the ellipse method (GeV), below m_t")
    m_t: float = Field(172.5, gt=0, description="top mass of the ellipse method (GeV)")
    max_events: int = Field(0, ge=0, description="evaluate on the first n events only; 0 = all")
    estimators: list[str] = Field(["all"], min_length=1, description="'all' that the head provides, or names: "
                                  "mdn_mode, mdn_window, mdn_mean, mdn_sample, mdn_expected, quantile, "
                                  "flow_window, flow_mean, flow_sample, flow_expected, model_unfolded, "
                                  "ellipse_unfolded")
    mdn_window: float = Field(MDN_WINDOW, gt=0, lt=1, description="mdn_window: per event, the m_tt most "
                              "probably within this relative tolerance of the truth (0.1 = +-10%)")
    flow_samples: int = Field(128, ge=8, le=4096, description="flow head: posterior draws per event behind its "
                              "estimators (median, flow_window, flow_expected, CRPS, coverage, top pT and rapidity)")
    unfold: bool = Field(True, description="unfold the model's and the ellipse method's spectra (response from val)")
    unfold_ts_stopping: float = Field(1e-3, gt=0, description="stop iterating when the KS distance between "
                                      "successive unfolded spectra is below this")
    unfold_prior: Literal["smooth", "flat", "truth"] = Field(
        "smooth", description="the unfolding's starting spectrum: smooth (the val truth with its bin-to-bin "
        "fluctuations fitted away: a local quadratic in the log density), flat, or truth (the val truth histogram, "
        "whose fluctuations pass into the result)")
    unfold_max_iter: int = Field(100, ge=1, le=1000, description="at most this many unfolding iterations")
    unfold_replicas: int = Field(1000, ge=2, le=10_000, description="Poisson replicas of the observed histogram, "
                                 "and as many of the response sample, for the unfolded errors and covariance")
    unfold_min_events: int = Field(20, ge=1, description="unfolding bins: the m_tt bins merged until each holds this "
                                   "many val events")
    seed: int = Field(7, ge=0, lt=2**31, description="MDN sampling, unfolding replicas, the Z' events injected")
    zprime: InjectionParams = InjectionParams()

    @model_validator(mode="after")
    def _range(self) -> EvaluateParams:
        if self.m_tt_max <= self.m_tt_min:
            raise ValueError(f"m_tt_max ({self.m_tt_max}) must exceed m_tt_min ({self.m_tt_min})")
        if self.m_w >= self.m_t:
            raise ValueError(f"m_w: {self.m_w:g} GeV must be below m_t ({self.m_t:g} GeV): the ellipse method "
                             "decays t -> W b")
        return self

    @model_validator(mode="after")
    def _unfolding_finishes(self) -> EvaluateParams:
        if self.unfold and self.n_bins > UNFOLD_MAX_BINS:
            raise ValueError(f"n_bins: unfolding {self.n_bins} bins needs "
                             f"{unfolding_estimate(self.n_bins)}; give at most "
                             f"{UNFOLD_MAX_BINS} bins or unfold: false")
        return self

    def edges(self) -> Any:
        """The m_tt bin edges (GeV)."""
        import numpy as np

        return np.linspace(self.m_tt_min, self.m_tt_max, self.n_bins + 1)


