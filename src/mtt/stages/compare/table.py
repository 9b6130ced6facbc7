"""The comparison table: per configuration and estimator, the physics figures next to the ellipse method's.

Every number comes from the configurations' evaluate outputs (`eval/metrics.json`) and train outputs
(`train.json`); nothing is recomputed here, so the table says what the pipeline measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mtt.stages.compare.params import StudyParams

#: what an MDN's or a flow's density is judged by (CRPS, coverage) sits on its median's row, `model`
MODEL = "model"
DENSITY_HEADS = ("mdn", "flow")


@dataclass(frozen=True)
class Column:
    """A column of the table: its key in the JSON, its Markdown header and number format."""

    key: str
    header: str
    format: str


COLUMNS = (
    Column("resolution", "resolution", ".3f"),
    Column("resolution_ratio", "/ ellipse", ".2f"),
    Column("within_20pct", "within 20%", ".3f"),
    Column("bias", "median bias", "+.3f"),
    Column("width_ratio", "width ratio", ".3f"),
    Column("wasserstein", "W1 [GeV]", ".1f"),
    Column("chi2_ndf", "chi2/ndf", ".1f"),
    Column("crps", "CRPS [GeV]", ".1f"),
    Column("coverage_68", "68% coverage", ".3f"),
    Column("coverage_68_off", "68% worst-bin off", ".3f"),
    Column("zprime_shift", "Z' peak shift", "+.3f"),
    Column("zprime_yield", "Z' yield / injected", ".2f"),
    Column("train_s", "train [s]", ".0f"),
)


@dataclass(frozen=True)
class Outputs:
    """One configuration's outputs: evaluate's figures and train's headline (with the run id and wall time)."""

    config: str
    figures: dict[str, Any]
    train: dict[str, Any]


def _number(value: Any) -> float | None:
    """A finite number, or None (a figure an estimator does not have)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def row(config: str, estimator: str, figures: dict[str, Any], reference: dict[str, Any],
        train: dict[str, Any] | None) -> dict[str, Any]:
    """One row: an estimator's figures, its resolution over the reference's, the Z' fit, the train time."""
    own = figures.get(estimator, {})
    resolution, reference_resolution = _number(own.get("resolution")), _number(reference.get("resolution"))
    values: dict[str, Any] = {key: _number(own.get(key)) for key in
                              ("resolution", "within_20pct", "bias", "width_ratio", "wasserstein", "chi2_ndf", "crps")}
    values["resolution_ratio"] = (resolution / reference_resolution if resolution is not None and reference_resolution
                                  else None)
    density = next((figures[h] for h in DENSITY_HEADS if h in figures), {}) if estimator == MODEL else {}
    if density:  # the MDN's or flow's distribution: its CRPS and coverage, on the row of its median
        values["crps"] = _number(density.get("crps"))
    values["coverage_68"] = _number(density.get("coverage_68"))
    # |coverage - 0.68| in the predicted-m_tt bin where it is largest (the per-bin target: <= 0.03)
    values["coverage_68_off"] = _number(density.get("coverage_68_by_prediction_worst_bin"))
    fit = figures.get("zprime", {}).get(estimator, {})
    values["zprime_shift"] = _number(fit.get("position_shift"))
    values["zprime_yield"] = _number(fit.get("yield_ratio"))
    values["train_s"] = _number((train or {}).get("wall_time_s"))
    return {"config": config, "estimator": estimator, **{c.key: values[c.key] for c in COLUMNS}}


def rows(outputs: list[Outputs], params: StudyParams) -> list[dict[str, Any]]:
    """Every configuration's estimators (those it has), then the model-free baselines once."""
    table = []
    for one in outputs:
        reference = one.figures.get(params.reference, {})
        for estimator in params.estimators:
            if isinstance(one.figures.get(estimator), dict):
                table.append(row(one.config, estimator, one.figures, reference, one.train))
    first = outputs[0].figures
    for estimator in params.baselines:
        if isinstance(first.get(estimator), dict):
            table.append(row("", estimator, first, first.get(params.reference, {}), None))
    return table


def headline(table: list[dict[str, Any]], params: StudyParams) -> dict[str, dict[str, dict[str, float]]]:
    """The few figures `dvc exp show` should lead with: per configuration and headline estimator, resolution
    over the ellipse method's and the width ratio (1 = the true spectrum's width), to 4 digits; a figure an
    estimator lacks (a spectrum has no per-event resolution) is left out, and so is the width of a per-event
    reading other than `model` (`mdn_window`: its configuration's spectrum is `mdn_expected`), which keeps the
    headline within `dvc exp show`'s first 20 columns with five configurations."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for one in table:
        if one["config"] and one["estimator"] in params.headline:
            keys = ("resolution_ratio", "width_ratio")
            if one["estimator"] != MODEL and one["resolution_ratio"] is not None:
                keys = ("resolution_ratio",)
            out.setdefault(one["config"], {})[one["estimator"]] = {
                key: float(f"{one[key]:.4g}") for key in keys if one[key] is not None}
    return out


def _cell(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def markdown(table: list[dict[str, Any]], params: StudyParams, n_events: int, split: str = "test") -> str:
    """The table as Markdown, with a line saying what it is measured on and which row is recommended."""
    header = ["configuration", "estimator", *(c.header for c in COLUMNS)]
    lines = [f"{split.capitalize()} split, {n_events:,} events (the same for every configuration); ratios to "
             f"`{params.reference}`; the recommended configuration is `{params.recommended}` (**bold**).", "",
             "| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * len(COLUMNS)) + "|"]
    for one in table:
        name = one["config"] or "(no model)"
        if one["config"] == params.recommended:
            name = f"**{name}**"
        cells = [name, f"`{one['estimator']}`", *(_cell(one[c.key], c.format) for c in COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rounded(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows for the JSON file: numbers to 10 significant digits (the same bytes on every rerun)."""
    return [{k: float(f"{v:.10g}") if isinstance(v, float) else v for k, v in one.items()} for one in table]
