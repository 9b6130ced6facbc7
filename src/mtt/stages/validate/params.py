"""The validate section of params.yaml: schema, physics ranges, units, drift and scaling checks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mtt.core.params import Section, Window, increasing_quantiles, ordered


class DriftParams(Section):
    """Bounds on how far val, test or new data may sit from the train reference (beyond statistical noise)."""

    action: Literal["fail", "warn"] = Field("fail", description="what a drift failure does")
    bins: int = Field(20, ge=2, le=1000, description="equal-population bins of the train distribution (KL "
                      "divergence)")
    kl_max: float = Field(0.02, ge=0, description="KL divergence to the train histogram")
    mean_shift_max: float = Field(0.05, ge=0, description="|mean - train mean| in train standard deviations")
    std_ratio_max: float = Field(0.1, ge=0, description="|std / train std - 1|")
    quantiles: list[float] = Field([0.05, 0.25, 0.5, 0.75, 0.95], min_length=1, description="checked quantiles: "
                                   "strictly increasing, each strictly between 0 and 1")
    quantile_shift_max: float = Field(
        0.02, ge=0, le=0.5, description="|F_train(val quantile q) - q|: a quantile's shift in probability")

    _quantiles = field_validator("quantiles")(increasing_quantiles)


class ScalingParams(Section):
    """How much transformed val/test data may leave the range the scaler maps train into."""

    minmax_outside_max: float = Field(0.01, ge=0, le=1, description="fraction outside [0, 1] (minmax)")
    z_max: float = Field(5.0, gt=0, description="|z| bound (standard, robust)")
    z_outside_max: float = Field(0.001, ge=0, le=1, description="fraction beyond z_max (standard, robust)")


class ValidateParams(Section):
    """great-expectations checks: schema, physics ranges, units, drift, scaling."""

    top_mass: float = Field(173.0, gt=100, lt=250, description="m_tt must exceed 2 top_mass - mtt_margin")
    mtt_margin: float = Field(50.0, ge=0, description="GeV below the 2 m_t threshold still allowed (less than "
                              "2 top_mass)")
    eta_max: float = Field(2.5, gt=0, description="|eta| of leptons and b jets")
    # wide on purpose: the units check is for factor-1000 mistakes (MeV read as GeV), not for physics
    lepton_pt_median: Window = Field(
        (5.0, 500.0), strict=False, description="GeV range [low, high] of the lepton pT medians (units check), "
        "0 <= low < high; no off form: the units check is critical")
    jet_pt_median: Window = Field(
        (10.0, 1000.0), strict=False, description="GeV range [low, high] of the b-jet pT medians (units check), "
        "0 <= low < high; no off form: the units check is critical")
    drift: DriftParams = DriftParams()
    scaling: ScalingParams = ScalingParams()

    @field_validator("lepton_pt_median", "jet_pt_median")
    @classmethod
    def _low_below_high(cls, value: tuple[float, float]) -> tuple[float, float]:
        return ordered(value, "GeV")

    @model_validator(mode="after")
    def _threshold_above_zero(self) -> ValidateParams:
        if self.mtt_margin >= 2 * self.top_mass:
            raise ValueError(f"mtt_margin: {self.mtt_margin:g} GeV is at least 2 x top_mass ({2 * self.top_mass:g} "
                             "GeV), which would switch the m_tt threshold check off; give less")
        return self


