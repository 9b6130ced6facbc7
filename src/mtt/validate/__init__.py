"""`validate` stage: great-expectations checks that catch bad scaling, wrong units and feature drift.

Between `prepare` and `train`: builds the train reference (profile and scaler, fitted on train only) as
tracked outputs, validates every split against it, writes a JSON summary (a DVC metric) and an HTML Data
Docs site, prints a table, and stops the pipeline on critical failures. `mtt validate --data` checks any new
dataset (Parquet from prepare, or ROOT files) against an existing reference.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtt.config import PrepareParams, ValidateParams
from mtt.io import atomic_dir, atomic_file
from mtt.prepare.split import SPLITS
from mtt.validate.profile import build_profile, load_profile, save_profile
from mtt.validate.scaling import allowed_range, fit_scaler, fitted_on, load_scaler, save_scaler

PROFILE = "profile.json"
SCALER = "scaler.joblib"


class ValidationFailed(RuntimeError):
    """Critical expectations failed; the message names split, column, expectation and observed value."""


@dataclass
class Check:
    """One expectation's outcome, flattened for reports."""

    split: str
    category: str
    expectation: str
    column: str
    success: bool
    critical: bool
    observed: Any
    why: str = ""

    def line(self) -> str:
        observed = self.observed
        if isinstance(observed, float):
            observed = f"{observed:.6g}"
        text = f"{self.split}: {self.category}: {self.column or '(table)'}: {self.expectation} observed {observed}"
        return f"{text} ({self.why})" if self.why else text


@dataclass
class Report:
    """All checks of a validation run, with counts per split."""

    checks: list[Check] = field(default_factory=list)

    def failures(self, critical: bool | None = None) -> list[Check]:
        return [c for c in self.checks if not c.success and (critical is None or c.critical == critical)]

    def summary(self) -> dict[str, Any]:
        splits: dict[str, Any] = {}
        for check in self.checks:
            entry = splits.setdefault(check.split, {"evaluated": 0, "passed": 0, "failed": 0})
            entry["evaluated"] += 1
            entry["passed" if check.success else "failed"] += 1
        by_category: dict[str, dict[str, int]] = {}
        for check in self.checks:
            entry = by_category.setdefault(check.category, {"evaluated": 0, "failed": 0})
            entry["evaluated"] += 1
            entry["failed"] += int(not check.success)
        return {"splits": splits, "categories": by_category,
                "critical_failures": len(self.failures(critical=True)),
                "warnings": len(self.failures(critical=False)),
                "failures": [c.line() for c in self.failures()]}

    def table(self) -> str:
        categories = sorted({c.category for c in self.checks})
        splits = list(dict.fromkeys(c.split for c in self.checks))
        lines = [f"{'split':12s}" + "".join(f"{c:>14s}" for c in categories)]
        for split in splits:
            cells = []
            for category in categories:
                mine = [c for c in self.checks if c.split == split and c.category == category]
                failed = sum(not c.success for c in mine)
                cells.append(f"{len(mine) - failed}/{len(mine)}" + (" FAIL" if failed else "") if mine else "-")
            lines.append(f"{split:12s}" + "".join(f"{cell:>14s}" for cell in cells))
        return "\n".join(lines)


def _observed(result: dict[str, Any]) -> Any:
    if "observed_value" in result:
        value = result["observed_value"]
        if isinstance(value, dict) and "values" in value:
            return value["values"]
        return value.item() if hasattr(value, "item") else value
    if "unexpected_percent" in result:
        return f"{result['unexpected_percent']:.3g}% of values outside"
    return None


class GXRunner:
    """One ephemeral great-expectations context; each suite runs through a Checkpoint that updates Data Docs."""

    def __init__(self, docs_dir: Path | None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("mtt")
        self.site = None
        if docs_dir is not None:
            self.site = "mtt"
            self.context.add_data_docs_site(site_name=self.site, site_config={
                "class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(Path(docs_dir).resolve())}})

    def run(self, split: str, name: str, frame: pd.DataFrame, expectations: list[Any]) -> list[Check]:
        """Validate `frame` against the expectations as suite `name`; flatten the results."""
        gx = self.gx
        # the whole suite at once: add_expectation re-serialises the suite into the store on every call
        suite = self.context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
        batch = self.source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
        definition = self.context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch,
                                                                                      suite=suite))
        actions = [gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[self.site])] if self.site else []
        checkpoint = self.context.checkpoints.add(gx.Checkpoint(name=name, validation_definitions=[definition],
                                                                actions=actions))
        result = checkpoint.run(batch_parameters={"dataframe": frame})
        checks = []
        for suite_result in result.run_results.values():
            for r in suite_result.results:
                config = r.expectation_config
                meta = config.meta or {}
                checks.append(Check(split=split, category=meta.get("category", "?"), expectation=config.type,
                                    column=config.kwargs.get("column", ""), success=bool(r.success),
                                    critical=bool(meta.get("critical", True)), observed=_observed(r.result),
                                    why=meta.get("why", "")))
        return checks


def truth_columns(frame: pd.DataFrame) -> list[str]:
    """Target and diagnostics present in a prepared table."""
    from mtt.prepare.features import DIAGNOSTICS, TARGET

    return [c for c in (TARGET, *DIAGNOSTICS) if c in frame.columns]


def check_split(runner: GXRunner, split: str, frame: pd.DataFrame, columns: list[str], features: list[str],
                reference: dict[str, Any], params: ValidateParams, with_drift: bool) -> list[Check]:
    """Schema, physics and units on the raw table; drift against the profile; scaling on the transformed one."""
    from mtt.validate import suites

    truth = truth_columns(frame)
    checks = runner.run(split, f"{split}_schema", frame, suites.schema_expectations(columns, features, truth))
    # value checks on float64: GX's range check is vectorised only for float64 columns (float32 goes through
    # a Python call per value, 40x slower on a million rows)
    present = [c for c in features if c in frame.columns]
    numeric = [c for c in [*present, *truth] if pd.api.types.is_float_dtype(frame[c])]
    values = frame.astype({c: np.float64 for c in numeric})
    expectations = (suites.physics_expectations(present, truth, params)
                    + suites.units_expectations(present, params))
    if with_drift and len(frame):
        profile = {**reference["profile"], "features": {c: reference["profile"]["features"][c] for c in present}}
        expectations += suites.drift_expectations(profile, len(frame), params)
    checks += runner.run(split, split, values, expectations)
    if present == features and len(frame) and frame[features].notna().all().all():
        kind = reference["scaler"]["kind"]
        scaled = pd.DataFrame(reference["scaler"]["scaler"].transform(frame[features].to_numpy(np.float64)),
                              columns=features)
        low, high, mostly = allowed_range(kind, params.scaling, reference["profile"]["n_rows"], len(frame))
        if split == "train":
            mostly = 1.0  # the scaler was fitted here: every train value must map inside
        checks += runner.run(split, f"{split}_scaled", scaled,
                             suites.scaling_expectations(features, low, high, mostly, kind))
    return checks


def build_reference(train: pd.DataFrame, features: list[str], params: ValidateParams,
                    reference_dir: str | os.PathLike[str]) -> None:
    """Write the train profile and the scaler fitted on train (tracked outputs) into `reference_dir`."""
    with atomic_dir(reference_dir) as tmp:
        save_profile(build_profile(train, features, params.drift.quantiles, params.drift.bins), tmp / PROFILE)
        save_scaler(fit_scaler(params.scaler, train[features].to_numpy(np.float64)), params.scaler, features,
                    tmp / SCALER)


def load_reference(reference_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The profile and scaler written by `build_reference`."""
    reference_dir = Path(reference_dir)
    for name in (PROFILE, SCALER):
        if not (reference_dir / name).is_file():
            raise FileNotFoundError(f"{reference_dir / name}: reference missing; run the validate stage on the "
                                    "prepared data first (dvc repro validate)")
    return {"profile": load_profile(reference_dir / PROFILE), "scaler": load_scaler(reference_dir / SCALER)}


def scaler_check(train: pd.DataFrame, reference: dict[str, Any]) -> Check:
    """The reference scaler must be fitted on exactly this train split (not val, test, or a subset)."""
    kind, columns = reference["scaler"]["kind"], reference["scaler"]["columns"]
    ok, worst = fitted_on(reference["scaler"]["scaler"], kind, train[columns].to_numpy(np.float64))
    return Check(split="train", category="scaling", expectation="scaler_fitted_on_train", column="(all)",
                 success=ok, critical=True, observed=f"max relative difference {worst:.3g} from a refit on train",
                 why="the saved scaler must be fitted on the train split only")


def finish(report: Report, summary_path: str | os.PathLike[str] | None, seconds: float) -> dict[str, Any]:
    """Write the summary, print the table and the failures, raise on critical failures."""
    summary = {**report.summary(), "seconds": round(seconds, 3)}
    if summary_path is not None:
        with atomic_file(summary_path) as tmp:
            tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(report.table())
    for check in report.failures(critical=False):
        print(f"validate: warning: {check.line()}")
    critical = report.failures(critical=True)
    if critical:
        lines = "\n  ".join(c.line() for c in critical)
        raise ValidationFailed(f"{len(critical)} critical check(s) failed:\n  {lines}")
    return summary


def _docs_into(docs_dir: str | os.PathLike[str] | None) -> Any:
    """A temporary folder for Data Docs that replaces `docs_dir` when closed (or None)."""
    return atomic_dir(docs_dir) if docs_dir is not None else contextlib.nullcontext()


def run_validate(params: ValidateParams, prepared_dir: str | os.PathLike[str],
                 reference_dir: str | os.PathLike[str], summary_path: str | os.PathLike[str] | None = None,
                 docs_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The stage: build the reference from train, validate every split against it."""
    from mtt.prepare import read_metadata

    start = time.perf_counter()
    prepared_dir = Path(prepared_dir)
    paths = {split: prepared_dir / f"{split}.parquet" for split in SPLITS}
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: prepared split missing; run the prepare stage first")
    metadata = read_metadata(paths["train"])
    features = list(metadata["features"])
    frames = {split: pd.read_parquet(path) for split, path in paths.items()}
    columns = list(frames["train"].columns)
    train = frames["train"]
    if len(train) == 0 or train[features].isna().any().any():
        raise ValidationFailed(f"{paths['train']}: the train split is empty or has nulls; cannot build a reference")
    build_reference(train, features, params, reference_dir)
    reference = load_reference(reference_dir)
    report = Report([scaler_check(train, reference)])
    with _docs_into(docs_dir) as docs:
        runner = GXRunner(docs)
        for split, frame in frames.items():
            report.checks += check_split(runner, split, frame, columns, features, reference, params,
                                         with_drift=split != "train")
    return finish(report, summary_path, time.perf_counter() - start)


def load_new_data(data: list[str | os.PathLike[str]], prepare_params: PrepareParams) -> pd.DataFrame:
    """A table to validate: Parquet file(s) from prepare, or ROOT files run through prepare first."""
    paths = [Path(d) for d in data]
    if all(p.suffix == ".parquet" for p in paths):
        return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    from mtt.prepare import run_prepare

    with tempfile.TemporaryDirectory() as tmp:
        run_prepare(prepare_params, paths, Path(tmp) / "prepared")
        return pd.concat([pd.read_parquet(Path(tmp) / "prepared" / f"{s}.parquet") for s in SPLITS],
                         ignore_index=True)


def validate_new(params: ValidateParams, frame: pd.DataFrame, reference_dir: str | os.PathLike[str],
                 summary_path: str | os.PathLike[str] | None = None,
                 docs_dir: str | os.PathLike[str] | None = None, name: str = "new") -> dict[str, Any]:
    """Check a new dataset against the reference: schema of its features, physics, units, drift, scaling."""
    start = time.perf_counter()
    reference = load_reference(reference_dir)
    features = reference["scaler"]["columns"]
    identity = [c for c in ("run", "luminosityBlock", "event", "weight", "channel") if c in frame.columns]
    columns = [*features, *truth_columns(frame), *identity]
    with _docs_into(docs_dir) as docs:
        checks = check_split(GXRunner(docs), name, frame, columns, features, reference, params, with_drift=True)
    return finish(Report(checks), summary_path, time.perf_counter() - start)


def main(params: ValidateParams, prepared_dir: str, reference_dir: str, summary_path: str | None,
         docs_dir: str | None) -> dict[str, Any]:
    """Stage entry."""
    summary = run_validate(params, prepared_dir, reference_dir, summary_path, docs_dir)
    total = sum(s["evaluated"] for s in summary["splits"].values())
    print(f"validate: {total} checks, {summary['critical_failures']} critical failure(s), "
          f"{summary['warnings']} warning(s) in {summary['seconds']:.1f} s")
    return summary
