"""The YAML spec of `mtt report` (`mtt.tools.report`): which runs, metrics and figures make a study's table.

Every key is checked when the spec is read (a typo, a bad format spec or an unknown placeholder names its key),
so a report fails before it asks the store for anything.
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mtt.core.errors import MttError
from mtt.core.params import allowed_keys, error_location, load_yaml

#: the only placeholder metric keys may use
PLACEHOLDER = "estimator"
#: the markers around the generated table in a hand-written document
TABLE_BEGIN = "<!-- mtt report: table begin -->"
TABLE_END = "<!-- mtt report: table end -->"


class ReportError(MttError):
    """A bad report spec, or a run, metric source or figure the spec names that the store does not have."""


def _check_template(value: str | None) -> str | None:
    """A metric key may say `{estimator}` and nothing else in braces, so a typo fails before any lookup."""
    if value is None:
        return None
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise ValueError(f"not a valid key template ({exc})") from None
    if names - {PLACEHOLDER}:
        raise ValueError(f"unknown placeholder(s) {sorted(names - {PLACEHOLDER})}; only {{{PLACEHOLDER}}} is "
                         "substituted")
    return value


def _check_format(value: str) -> str:
    """A format spec is tried on a number when the spec is read, not when the first row is written."""
    try:
        format(1.0, value)
    except ValueError as exc:
        raise ValueError(f"not a format spec for numbers, e.g. '.3f' or '+.2f' ({exc})") from None
    return value


class SpecModel(BaseModel):
    """Base for spec entries: an unknown key (a typo) or a number where text belongs is an error."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Column(SpecModel):
    """A metric column: the run's metric `<estimator>/<column>` unless `key` says otherwise."""

    header: str = Field(min_length=1, description="column header in the table")
    format: str = Field(".4g", description="Python format spec of the value, e.g. '.3f', '+.3f'")
    key: str | None = Field(None, description="metric key template, e.g. 'zprime/{estimator}/peak'")

    _format = field_validator("format")(_check_format)
    _key = field_validator("key")(_check_template)


class ExtraColumn(SpecModel):
    """A column read with its full metric key, the same for every row (e.g. training time)."""

    key: str = Field(min_length=1, description="metric key, e.g. 'wall_time_s' ({estimator} is substituted)")
    header: str = Field(min_length=1, description="column header in the table")
    format: str = Field(".4g", description="Python format spec of the value")

    _format = field_validator("format")(_check_format)
    _key = field_validator("key")(_check_template)


class Row(SpecModel):
    """One table row: a run, addressed by id, and the estimator whose metrics it shows."""

    label: str = Field(min_length=1, description="row label in the table")
    run: str = Field(min_length=1, description="MLflow run id")
    estimator: str = Field("model", min_length=1, description="metric prefix: model, mdn_mode, baseline_ellipse...")
    keys: dict[str, str] = Field({}, description="column -> metric key template for this row only")

    @field_validator("keys")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value.values():
            _check_template(key)
        return value


class Figure(SpecModel):
    """A plot copied from a run's artifacts into `<out>/figures/<name>`, downscaled."""

    run: str = Field(min_length=1, description="MLflow run id")
    artifact: str = Field(min_length=1, description="artifact path in the run, e.g. evaluate/plots/spectrum.png")
    name: str = Field(min_length=1, description="file name under <out>/figures/, ending in .png")

    @field_validator("name")
    @classmethod
    def _plain_png(cls, value: str) -> str:
        if Path(value).name != value or value.startswith(".") or not value.lower().endswith(".png"):
            raise ValueError("a plain file name ending in .png (no folders)")
        return value


class Curves(SpecModel):
    """Per-epoch metric histories of several runs overlaid, a panel per metric (e.g. what coincides with a dip
    of the loss), drawn into `<out>/figures/<name>`."""

    name: str = Field(min_length=1, description="file name under <out>/figures/, ending in .png")
    runs: dict[str, str] = Field(min_length=1, description="legend label -> MLflow run id")
    metrics: list[str] = Field(min_length=1, description="metric keys logged per epoch (step = epoch)")
    log_y: list[str] = Field([], description="metrics drawn on a logarithmic axis")
    normalise: list[str] = Field([], description="metrics divided by their first epoch's value (losses in "
                                 "different units compare)")

    _plain_png = field_validator("name")(Figure._plain_png.__func__)  # type: ignore[attr-defined]


class ReportSpec(SpecModel):
    """What a study's table and figures are made of."""

    experiment: str | None = Field(None, description="if set, every run must belong to this experiment")
    label_header: str = Field("", description="header of the label column")
    columns: dict[str, Column] = Field({}, description="metric suffix -> column")
    extra_columns: list[ExtraColumn] = Field([], description="columns read with their full metric key")
    rows: list[Row] = Field(min_length=1, description="table rows, in order")
    figures: list[Figure] = Field([], description="plots to copy")
    curves: list[Curves] = Field([], description="per-epoch histories of several runs, drawn together")
    document: str | None = Field(None, description="a hand-written Markdown file whose table, between the lines "
                                 f"{TABLE_BEGIN!r} and {TABLE_END!r}, is replaced by the generated one")
    max_width: int = Field(900, ge=100, le=4000, description="figures wider than this (pixels) are scaled down")

    @model_validator(mode="after")
    def _consistent(self) -> ReportSpec:
        if not self.columns and not self.extra_columns:
            raise ValueError("no columns: give `columns` (metric suffix -> header) and/or `extra_columns`")
        for i, row in enumerate(self.rows):
            unknown = set(row.keys) - set(self.columns)
            if unknown:
                raise ValueError(f"rows[{i}] ({row.label!r}).keys: unknown column(s) {sorted(unknown)}; columns: "
                                 f"{', '.join(self.columns) or 'none'}")
        names = [f.name for f in self.figures]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"figures: name(s) {twice} used twice; each figure needs its own file")
        return self


def _describe(error: dict[str, Any]) -> str:
    """One pydantic error as 'key: problem (got value)', with the allowed keys for a typo."""
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{error_location(loc)}: unknown key; allowed keys: {allowed_keys(loc[:-1], ReportSpec)}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if not loc:  # a check across keys: its message names them, the input is the whole spec
        return message
    return f"{error_location(loc)}: {message} (got {error.get('input')!r})"


def load_spec(path: str | os.PathLike[str]) -> ReportSpec:
    """Read and validate a report spec; a ReportError names the file and every bad key."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: report spec not found")
    try:
        raw = load_yaml(path.read_text())
    except MttError as exc:
        raise ReportError(f"{path}: {exc}") from None
    except Exception as exc:  # yaml.YAMLError, with its line and column
        raise ReportError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ReportError(f"{path}: expected a mapping with `rows` and `columns`, got {type(raw).__name__}")
    try:
        return ReportSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(err) for err in exc.errors())
        raise ReportError(f"{path}: invalid report spec:\n  {problems}") from None


def metric_key(template: str, estimator: str) -> str:
    """A metric key with `{estimator}` filled in."""
    return template.format(**{PLACEHOLDER: estimator})


def row_keys(spec: ReportSpec, row: Row) -> list[str]:
    """The metric key behind each value column of `row`, in table order."""
    keys = [row.keys.get(name) or column.key or f"{{{PLACEHOLDER}}}/{name}" for name, column in spec.columns.items()]
    keys += [extra.key for extra in spec.extra_columns]
    return [metric_key(k, row.estimator) for k in keys]


def formats(spec: ReportSpec) -> list[str]:
    """The format spec of each value column, in table order."""
    return [c.format for c in spec.columns.values()] + [c.format for c in spec.extra_columns]
