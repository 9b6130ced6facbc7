"""`mtt report`: a study's results table and figures, rebuilt from tracked MLflow runs.

A hand-written study (e.g. ``docs/bias-study.md``) cites run ids; its YAML spec (``docs/bias-study.yaml``)
says which run and estimator each table row reads, which metrics the columns show and which plots to copy.
Rebuilding from the spec gives the same numbers as long as the runs are in the store, so the prose and the
tracked results cannot drift apart silently.
"""

from __future__ import annotations

import math
import os
import string
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mtt.core import metric_names, tracking
from mtt.core.errors import MttError
from mtt.core.io import atomic_file
from mtt.core.params import allowed_keys, error_location, load_yaml

#: what a table cell shows for a metric the run does not have (not an error: a row may lack e.g. coverage)
MISSING = "–"
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


class RunCache:
    """Runs fetched once each; a missing run or one from the wrong experiment is an error naming who asked."""

    def __init__(self, client: Any, experiment: str | None) -> None:
        self.client = client
        self.experiment = experiment
        self.runs: dict[str, Any] = {}

    def get(self, run_id: str, who: str) -> Any:
        """The run `run_id`, for `who` (e.g. "row 'MSE point'"), as named in error messages."""
        if run_id not in self.runs:
            from mlflow.exceptions import MlflowException

            try:
                run = self.client.get_run(run_id)
            except MlflowException:
                raise ReportError(f"{who}: no MLflow run {run_id!r} in {self.client.tracking_uri}") from None
            if self.experiment is not None:
                name = self.client.get_experiment(run.info.experiment_id).name
                if name != self.experiment:
                    raise ReportError(f"{who}: run {run_id} belongs to experiment {name!r}, not to the spec's "
                                      f"experiment {self.experiment!r}")
            self.runs[run_id] = run
        return self.runs[run_id]


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


def cell(metrics: dict[str, float], key: str, spec: str) -> str:
    """The formatted metric, or MISSING when the run lacks it (or logged a non-finite value)."""
    value = metric_names.find_metric(metrics, key)  # also under the names runs before the rename used
    if value is None or not math.isfinite(value):
        return MISSING
    return format(value, spec)


def _escape(text: str) -> str:
    """Table cells cannot hold a bare '|' or a line break."""
    return text.replace("|", r"\|").replace("\n", " ")


@dataclass
class Table:
    """The rendered table and what it could not fill."""

    markdown: str
    missing: list[str] = field(default_factory=list)


def build_table(spec: ReportSpec, runs: RunCache, source: str) -> Table:
    """The Markdown table: label, the columns, the short run id; the full ids listed below it."""
    headers = [spec.label_header, *(c.header for c in spec.columns.values()),
               *(c.header for c in spec.extra_columns), "run"]
    lines = [f"<!-- generated by `mtt report --spec {source}` from tracked MLflow runs; edit the spec, not this "
             "file -->", "", "| " + " | ".join(_escape(h) for h in headers) + " |",
             "|" + "|".join([":---", *("---:" for _ in headers[1:-1]), ":---"]) + "|"]
    missing = []
    for row in spec.rows:
        run = runs.get(row.run, f"row {row.label!r}")
        keys = row_keys(spec, row)
        cells = [cell(run.data.metrics, k, f) for k, f in zip(keys, formats(spec), strict=True)]
        missing += [f"row {row.label!r} (run {row.run[:8]}): no metric {k!r}"
                    for k, c in zip(keys, cells, strict=True) if c == MISSING]
        lines.append("| " + " | ".join([_escape(row.label), *cells, f"`{row.run[:8]}`"]) + " |")
    lines += ["", "Runs:", ""]
    for run_id in dict.fromkeys(row.run for row in spec.rows):
        run = runs.runs[run_id]
        lines.append(f"- `{run_id[:8]}`: `{run_id}` ({_escape(run.info.run_name or 'unnamed')})")
    return Table("\n".join(lines) + "\n", missing)


def downscale(source: Path, target: Path, max_width: int) -> tuple[int, int]:
    """Save `source` as a PNG at most `max_width` pixels wide (aspect kept), so docs stay light; its size."""
    from PIL import Image  # matplotlib's own image dependency

    with Image.open(source) as image:
        image.load()
        if image.width > max_width:
            height = max(1, round(image.height * max_width / image.width))
            image = image.resize((max_width, height), Image.Resampling.LANCZOS)
        image.save(target, format="PNG", optimize=True)
        return image.size


def fetch_figure(runs: RunCache, figure: Figure, folder: Path, max_width: int) -> Path:
    """Download one figure from its run into `folder` and downscale it there; the file written."""
    from mlflow.exceptions import MlflowException
    from PIL import UnidentifiedImageError

    who = f"figure {figure.name!r}"
    runs.get(figure.run, who)
    download = folder / "download"
    try:
        local = Path(runs.client.download_artifacts(figure.run, figure.artifact, str(download)))
    except (MlflowException, OSError):
        parent = Path(figure.artifact).parent.as_posix()
        parent = None if parent == "." else parent
        listed = [Path(f.path).name for f in runs.client.list_artifacts(figure.run, parent)]
        raise ReportError(f"{who}: run {figure.run} has no artifact {figure.artifact!r}; under "
                          f"{parent or 'the root'}: {', '.join(listed) or 'nothing'}") from None
    if not local.is_file():
        raise ReportError(f"{who}: artifact {figure.artifact!r} of run {figure.run} is a folder, not an image")
    try:
        downscale(local, folder / figure.name, max_width)
    except (UnidentifiedImageError, OSError) as exc:
        raise ReportError(f"{who}: artifact {figure.artifact!r} of run {figure.run} is not a readable image: "
                          f"{exc}") from None
    return folder / figure.name


def metric_history(client: Any, run_id: str, metric: str) -> list[Any]:
    """A metric's per-step history, under its current name or the one older runs used ('val_loss' for
    'epoch/val_loss')."""
    for name in metric_names.metric_names(metric):
        history = client.get_metric_history(run_id, name)
        if history:
            return history
    return []


def draw_curves(runs: RunCache, curves: Curves, folder: Path) -> Path:
    """Fetch each run's per-epoch history of each metric and draw them together; the file written."""
    from mtt.core import plots

    who = f"curves {curves.name!r}"
    histories: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for label, run_id in curves.runs.items():
        runs.get(run_id, who)
        histories[label] = {}
        for metric in curves.metrics:
            points = sorted(metric_history(runs.client, run_id, metric), key=lambda m: m.step)
            histories[label][metric] = ([m.step for m in points], [m.value for m in points])
    plots.metric_curves(histories, curves.metrics, folder / curves.name, set(curves.log_y), set(curves.normalise))
    return folder / curves.name


def insert_table(document: Path, markdown: str) -> None:
    """Replace the table between the markers of a hand-written document, leaving the prose as it is."""
    try:
        text = document.read_text()
    except OSError as exc:
        raise ReportError(f"document {document}: cannot be read ({exc})") from None
    begin, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if begin < 0 or end < begin:
        raise ReportError(f"document {document}: no table markers; put the lines {TABLE_BEGIN!r} and "
                          f"{TABLE_END!r} where the table goes")
    with atomic_file(document) as target:
        target.write_text(f"{text[:begin]}{TABLE_BEGIN}\n{markdown.rstrip()}\n{text[end:]}")


@dataclass
class Report:
    """What `run_report` wrote."""

    table: Path
    figures: list[Path]
    markdown: str
    missing: list[str]


def _client() -> Any:
    """The project's tracking store; refuses to create an empty SQLite store just to find no runs in it."""
    from mlflow.tracking import MlflowClient

    uri = tracking.tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ReportError(f"no MLflow store at {uri}: run the pipeline first, or set MLFLOW_TRACKING_URI")
    tracking.configure()
    return MlflowClient(uri)


def run_report(spec_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], client: Any = None) -> Report:
    """Rebuild the table and figures of `spec_path` into `out_dir`; everything is fetched before anything is
    written, and each file appears under its name only when whole."""
    spec_path, out_dir = Path(spec_path), Path(out_dir)
    spec = load_spec(spec_path)
    runs = RunCache(client if client is not None else _client(), spec.experiment)
    table = build_table(spec, runs, spec_path.as_posix())
    written = []
    with tempfile.TemporaryDirectory(prefix="mtt-report-") as tmp:
        staged = [fetch_figure(runs, figure, Path(tmp), spec.max_width) for figure in spec.figures]
        staged += [draw_curves(runs, curves, Path(tmp)) for curves in spec.curves]
        for path in staged:
            with atomic_file(out_dir / "figures" / path.name) as target:
                target.write_bytes(path.read_bytes())
            written.append(out_dir / "figures" / path.name)
    table_path = out_dir / f"{spec_path.stem}-table.md"
    with atomic_file(table_path) as target:
        target.write_text(table.markdown)
    if spec.document:
        insert_table(Path(spec.document), table.markdown)
    return Report(table_path, written, table.markdown, table.missing)


def main(spec_path: str, out_dir: str) -> Report:
    """The command: build the report, print the table, say what was written and which metrics were absent."""
    report = run_report(spec_path, out_dir)
    print(report.markdown)
    if report.missing:  # expected where an estimator has no such figure; the first few say which
        shown = "; ".join(report.missing[:3])
        print(f"mtt report: {len(report.missing)} cell(s) {MISSING} (no such metric in the run), e.g. {shown}")
    print(f"mtt report: wrote {report.table}" + (f" and {len(report.figures)} figure(s) in "
                                                 f"{Path(out_dir) / 'figures'}" if report.figures else ""))
    return report
