"""great-expectations suites, built in code so they can be reviewed: schema, physics, units, drift, scaling.

Every expectation carries `meta = {"category": ..., "critical": ...}`; the stage reports by category and
stops on critical failures. Importing this module imports great-expectations (several seconds): only the
validate stage does.
"""

from __future__ import annotations

import math
from typing import Any

import great_expectations.expectations as gxe
import numpy as np
from scipy.stats import beta

from mtt.core.dataset import CHANNELS, ID_COLUMNS, OBJECTS, TARGET
from mtt.stages.validate.params import ValidateParams

#: the columns every prepared table has besides features and truth
IDENTITY_TYPES = {"run": "uint32", "luminosityBlock": "uint32", "event": "uint64", "weight": "float32"}


class ExpectColumnQuantileValuesToBeBetweenNative(gxe.ExpectColumnQuantileValuesToBeBetween):
    """The quantile check with its result cast to Python types.

    GX 1.24 returns numpy bools in this expectation's result, which breaks JSON serialisation inside
    `ValidationDefinition.run` under numpy 2; the check itself is unchanged.
    """

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None, execution_engine: Any = None):
        out = super()._validate(metrics, runtime_configuration, execution_engine)
        out["success"] = bool(out["success"])
        details = out["result"]["details"]
        details["success_details"] = [bool(s) for s in details["success_details"]]
        observed = out["result"]["observed_value"]
        observed["values"] = [None if v is None else float(v) for v in observed["values"]]
        return out


def _meta(category: str, critical: bool, **extra: Any) -> dict[str, Any]:
    return {"category": category, "critical": critical, **extra}


def schema_expectations(columns: list[str], features: list[str], truth_columns: list[str]) -> list[Any]:
    """Expected columns in order, row count > 0, no nulls, float32 features, identity types, channel values."""
    meta = _meta("schema", True)
    expectations: list[Any] = [
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(columns), meta=meta),
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=meta),
    ]
    for column in [*features, *truth_columns]:
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=column, meta=meta))
        expectations.append(gxe.ExpectColumnValuesToBeOfType(column=column, type_="float32", meta=meta))
    for column, dtype in IDENTITY_TYPES.items():
        if column in columns:
            expectations.append(gxe.ExpectColumnValuesToBeOfType(column=column, type_=dtype, meta=meta))
    if "channel" in columns:
        expectations.append(gxe.ExpectColumnValuesToBeInSet(column="channel", value_set=CHANNELS, meta=meta))
    if set(ID_COLUMNS) <= set(columns):  # an event twice (the same input read twice) biases every figure
        expectations.append(gxe.ExpectCompoundColumnsToBeUnique(
            column_list=ID_COLUMNS, meta=_meta("schema", True, why="each (run, luminosityBlock, event) once")))
    return expectations


def _range(column: str, low: float | None, high: float | None, why: str, strict_min: bool = False) -> Any:
    return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high, strict_min=strict_min,
                                             meta=_meta("physics", True, why=why))


def physics_expectations(features: list[str], truth_columns: list[str], params: ValidateParams) -> list[Any]:
    """Ranges every event must respect: pT > 0, |eta| within acceptance, phi in [-pi, pi], masses >= 0, ..."""
    out = []
    pi = math.pi * (1 + 1e-6)  # float32 rounding of +-pi
    for column in features:
        if column.endswith("_pt") or column == "ht":
            out.append(_range(column, 0.0, None, "transverse momenta are positive", strict_min=True))
        elif column.endswith("_eta") and column.split("_")[0] in OBJECTS:
            out.append(_range(column, -params.eta_max, params.eta_max, "tracker acceptance"))
        elif column.endswith("_phi") or column.startswith("dphi_"):
            out.append(_range(column, -pi, pi, "azimuthal angles"))
        elif column.startswith("m_") or column.endswith("_e") or column.startswith("dr_"):
            out.append(_range(column, 0.0, None, "masses, energies and distances are non-negative"))
        elif column in ("n_jets", "n_bjets"):
            out.append(_range(column, 0.0, None, "multiplicities"))
    if TARGET in truth_columns:
        threshold = 2 * params.top_mass - params.mtt_margin
        out.append(_range(TARGET, threshold, None, f"above the tt threshold 2 m_t - {params.mtt_margin:g} GeV"))
    for column in ("top_pt", "antitop_pt"):
        if column in truth_columns:
            out.append(_range(column, 0.0, None, "transverse momenta are positive"))
    return out


def units_expectations(features: list[str], params: ValidateParams) -> list[Any]:
    """Medians of lepton and b-jet pT in the GeV range of tt events: an MeV file (x1000) fails here."""
    out = []
    for prefix, (low, high) in (("lplus", params.lepton_pt_median), ("lminus", params.lepton_pt_median),
                                ("b1", params.jet_pt_median), ("b2", params.jet_pt_median)):
        column = f"{prefix}_pt"
        if column in features:
            out.append(gxe.ExpectColumnMedianToBeBetween(
                column=column, min_value=low, max_value=high,
                meta=_meta("units", True, why=f"median {column} of tt events is {low:g}-{high:g} GeV; "
                                              "a value ~1000x larger means the input is in MeV "
                                              "(set prepare.units: MeV)")))
    return out


#: every statistical bound allows this many standard errors: ~200 drift checks per split stay quiet on clean
#: data (two-sided tail 6e-7 each), while a 10% shift of one feature in a few thousand events stands far out
SIGMAS = 5.0
#: the KL divergence is compared only where every train-profile bin expects this many events of the sample:
#: below it the statistic's noise is far from its large-sample form (a padded jet column with 40 events gave
#: KL 0.70 where the bound assumes chi-square behaviour)
MIN_EXPECTED_PER_BIN = 5.0
TAIL = 2.9e-7  # one-sided normal tail at 5 sigma


def _noise(n: int, n_ref: int) -> float:
    """Relative statistical error of a comparison between samples of n and n_ref entries."""
    return math.sqrt(1.0 / max(n, 1) + 1.0 / max(n_ref, 1))


def quantile_ranges(ref: dict[str, Any], quantiles: list[float], tolerance: float,
                    n: int) -> list[list[float | None]]:
    """Allowed value ranges of each quantile of an n-event sample, from the train inverse CDF.

    The sample quantile q sits at train probability U_(k), k = ceil(q n), which follows Beta(k, n + 1 - k)
    under no drift: exact for any n and any distribution (heavy tails, discrete features). The range adds the
    tolerance and the train sample's own uncertainty.
    """
    grid = np.linspace(0.0, 1.0, len(ref["quantile_grid"]))
    ranges = []
    for q in quantiles:
        k = min(max(math.ceil(q * n), 1), n)
        low_p, high_p = beta.ppf([TAIL, 1 - TAIL], k, n + 1 - k)
        slack = tolerance + SIGMAS * math.sqrt(q * (1 - q) / ref["n"])
        low_p, high_p = low_p - slack, high_p + slack
        # beyond the ends of the train distribution the range is open: new data may exceed the train extremes
        low = float(np.interp(low_p, grid, ref["quantile_grid"])) if low_p > 0 else None
        high = float(np.interp(high_p, grid, ref["quantile_grid"])) if high_p < 1 else None
        ranges.append([low, high])
    return ranges


def drift_expectations(profile: dict[str, Any], n_rows: int, params: ValidateParams) -> list[Any]:
    """Mean, standard deviation, quantiles and KL divergence of each feature against the train profile.

    Each bound is the configured tolerance plus SIGMAS standard errors of the comparison, so small samples
    are not flagged for noise and large shifts are flagged however small the sample.
    """
    drift = params.drift
    meta = _meta("drift", drift.action == "fail")
    out: list[Any] = []
    for column, ref in profile["features"].items():
        noise = _noise(n_rows, ref["n"])
        std = ref["std"]
        mean_bound = drift.mean_shift_max * std + SIGMAS * std * noise
        # the standard error of a standard deviation grows with the kurtosis of the distribution
        std_bound = drift.std_ratio_max + SIGMAS * math.sqrt(max(ref["kurtosis"] - 1, 0.5) / 4) * noise
        out.append(gxe.ExpectColumnMeanToBeBetween(column=column, min_value=ref["mean"] - mean_bound,
                                                   max_value=ref["mean"] + mean_bound, meta=meta))
        out.append(gxe.ExpectColumnStdevToBeBetween(column=column, min_value=std * (1 - std_bound),
                                                    max_value=std * (1 + std_bound), meta=meta))
        out.append(ExpectColumnQuantileValuesToBeBetweenNative(column=column, quantile_ranges={
            "quantiles": list(drift.quantiles),
            "value_ranges": quantile_ranges(ref, drift.quantiles, drift.quantile_shift_max, n_rows)}, meta=meta))
        n_bins = len(ref["bin_weights"])
        if n_rows * min(ref["bin_weights"]) < MIN_EXPECTED_PER_BIN:
            continue  # too few events for a histogram comparison: the moments and quantiles above still apply
        out.append(gxe.ExpectColumnKLDivergenceToBeLessThan(
            column=column, partition_object={"bins": ref["bin_edges"], "weights": ref["bin_weights"]},
            threshold=drift.kl_max + SIGMAS * (n_bins - 1) / 2 * noise**2, tail_weight_holdout=1e-4, meta=meta))
    return out


def consistency_expectations(residual_columns: list[str], tolerance: float) -> list[Any]:
    """Each derived feature agrees with its value recomputed from the objects (`mtt.core.checks`), in all but 0.1%
    of the events: a column rescaled on its own fails this for any sample size."""
    meta = _meta("consistency", True, why="a derived feature equals its value recomputed from the objects")
    return [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=-tolerance, max_value=tolerance, mostly=0.999,
                                              meta=meta) for c in residual_columns]


def log_scale_expectations(profile: dict[str, Any], n_rows: int, critical: bool) -> list[Any]:
    """The mean of log(x) of each positive momentum-like feature: the most sensitive test of a scale shift
    (x -> 1.05 x moves it by log 1.05 = 0.049), bounded by SIGMAS standard errors of the comparison."""
    meta = _meta("drift", critical, why="mean of log(x): a scale shift")
    out = []
    for column, ref in profile["features"].items():
        if "log_mean" not in ref:
            continue
        bound = SIGMAS * ref["log_std"] * _noise(n_rows, ref["n"])
        out.append(gxe.ExpectColumnMeanToBeBetween(column=f"log_{column}", min_value=ref["log_mean"] - bound,
                                                   max_value=ref["log_mean"] + bound, meta=meta))
    return out


def scaling_expectations(ranges: dict[str, tuple[float, float, float]], kind: str) -> list[Any]:
    """On the transformed features: per column, the fraction outside (low, high) stays below 1 - mostly."""
    out = []
    for column, (low, high, mostly) in ranges.items():
        meta = _meta("scaling", True, why=f"{kind}-scaled features stay within [{low:g}, {high:g}]")
        span = high - low
        out.append(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low - 1e-6 * span,
                                                     max_value=high + 1e-6 * span, mostly=mostly, meta=meta))
    return out
