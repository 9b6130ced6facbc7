"""The validate stage: build the train reference, check every split against it, report, stop on failures."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtt.core.checks import CONSISTENCY_TOLERANCE, consistency_residuals
from mtt.core.dataset import ID_COLUMNS, IDENTITY, SPLITS, open_split, split_overlaps, split_path, truth_columns
from mtt.core.errors import ValidationFailed
from mtt.core.io import atomic_dir, check_output_dir, check_output_file, file_sha256, portable_path, write_json
from mtt.core.preprocessing import Scaler, momentum_like
from mtt.stages.validate import suites
from mtt.stages.validate.gx import GXRunner, reproducible_docs
from mtt.stages.validate.params import ValidateParams
from mtt.stages.validate.reference import SCALERS_FILE, load_reference, scaler_check, write_reference
from mtt.stages.validate.report import Check, Report
from mtt.stages.validate.scaling import allowed_range


def check_split(runner: GXRunner, split: str, frame: pd.DataFrame, columns: list[str], features: list[str],
                reference: dict[str, Any], params: ValidateParams, with_drift: bool) -> list[Check]:
    """Schema, physics and units on the raw table; drift against the profile; scaling on the transformed one
    (with the reference's `chosen` scaler: the one training uses)."""

    scaler: Scaler = reference["chosen"]
    truth = truth_columns(list(frame.columns))
    checks = runner.run(split, f"{split}_schema", frame, suites.schema_expectations(columns, features, truth))
    # value checks on float64: GX's range check is vectorised only for float64 columns (float32 goes through
    # a Python call per value, 40x slower on a million rows)
    present = [c for c in features if c in frame.columns]
    numeric = [c for c in [*present, *truth] if pd.api.types.is_float_dtype(frame[c])]
    values = frame.astype({c: np.float64 for c in numeric})
    residuals = consistency_residuals(frame)
    expectations = (suites.physics_expectations(present, truth, params)
                    + suites.units_expectations(present, params)
                    + suites.consistency_expectations(list(residuals.columns), CONSISTENCY_TOLERANCE))
    values = pd.concat([values, residuals], axis=1)
    if with_drift and len(frame):
        profile = {**reference["profile"], "features": {c: reference["profile"]["features"][c] for c in present}}
        expectations += suites.drift_expectations(profile, len(frame), params)
        logs = {f"log_{c}": np.log(values[c].clip(lower=1e-30)) for c, momentum in zip(present, momentum_like(present),
                                                                                      strict=True)
                if momentum and "log_mean" in profile["features"][c]}
        values = pd.concat([values, pd.DataFrame(logs, index=values.index)], axis=1)
        expectations += suites.log_scale_expectations(
            {"features": {c.removeprefix("log_"): profile["features"][c.removeprefix("log_")] for c in logs}},
            len(frame), params.drift.action == "fail")
    checks += runner.run(split, split, values, expectations)
    if present == features and len(frame) and frame[features].notna().all().all():
        scaled = pd.DataFrame(scaler.transform(frame[features].to_numpy(np.float64)), columns=features)
        outside = reference["train_outside"].get(scaler.name, {})
        ranges = {c: allowed_range(scaler.kind, params.scaling, reference["profile"]["n_rows"], len(frame),
                                   outside.get(c, 0.0)) for c in features}
        if split == "train":  # the scaler was fitted here: train values map inside, but for long tails
            ranges = {c: (low, high, 1.0 - outside.get(c, 0.0)) for c, (low, high, _) in ranges.items()}
        checks += runner.run(split, f"{split}_scaled", scaled, suites.scaling_expectations(ranges, scaler.name))
    return checks


def summarize(report: Report, summary_path: str | os.PathLike[str] | None, seconds: float,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the summary, print the table and the warnings; return the summary with the time taken (not written:
    the summary is a tracked DVC metric, the same bytes for the same data)."""
    summary = {**report.summary(), **(extra or {})}
    if summary_path is not None:
        write_json(summary_path, summary)
    summary["seconds"] = round(seconds, 3)
    print(report.table())
    for check in report.failures(critical=False):
        print(f"validate: warning: {check.line()}")
    return summary


def raise_on_critical(report: Report, note: str = "") -> None:
    """Stop with every critical failure: split, category, column, expectation, observed value."""
    critical = report.failures(critical=True)
    if critical:
        lines = "\n  ".join(c.line() for c in critical)
        raise ValidationFailed(f"{len(critical)} critical check(s) failed:\n  {lines}{note}")


def finish(report: Report, summary_path: str | os.PathLike[str] | None, seconds: float,
           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the summary, print the table and the failures, raise on critical failures."""
    summary = summarize(report, summary_path, seconds, extra)
    raise_on_critical(report)
    return summary


def check_outputs(inputs: list[Any], reference_dir: Any, docs_dir: Any, summary_path: Any, overwrite: bool) -> None:
    """Before any work: the reference and Data Docs folders and the summary may not lose the user's files or
    replace what is read (see `mtt.core.io.check_output_dir`)."""
    folders = [f for f in (reference_dir, docs_dir) if f is not None]
    for folder in folders:
        check_output_dir(folder, "validate", [*inputs, *(f for f in folders if f is not folder)], overwrite)
    if summary_path is not None:
        check_output_file(summary_path, [*inputs, *folders])


def require_disjoint_frames(frames: dict[Any, pd.DataFrame]) -> None:
    """A critical check before any other: no event (run, luminosityBlock, event) in two splits. It stops the stage
    before a reference is built, as an empty train split does: every figure of data that overlaps is wrong."""
    ids = {Path(path): frame for path, frame in frames.items() if set(ID_COLUMNS) <= set(frame.columns)}
    overlaps = split_overlaps(ids)
    if overlaps:
        raise ValidationFailed("; ".join(o.message() for o in overlaps))


#: fewer events than this in a split cannot be compared with the train reference (a standard deviation needs two,
#: and the drift bounds of a handful of events admit anything): refused rather than passed or failed
MIN_SPLIT_EVENTS = 10


def check_split_sizes(sizes: dict[str, int], where: Any) -> None:
    """Refuse a split of 1 to MIN_SPLIT_EVENTS - 1 events, naming it (an empty split has nothing to check)."""
    small = {split: n for split, n in sizes.items() if 0 < n < MIN_SPLIT_EVENTS}
    if small:
        listed = ", ".join(f"{split} has {n}" for split, n in small.items())
        raise ValidationFailed(f"{where}: {listed} event(s); validate needs at least {MIN_SPLIT_EVENTS} per split to "
                               "compare it with the train reference: prepare more events")


@contextlib.contextmanager
def _docs_into(docs_dir: str | os.PathLike[str] | None) -> Iterator[Path | None]:
    """A temporary folder for Data Docs that replaces `docs_dir` when closed (or None); the site is made
    byte-reproducible before the swap."""
    if docs_dir is None:
        yield None
        return
    with atomic_dir(docs_dir, "validate") as docs:
        yield docs
        reproducible_docs(docs)


def _reference_scaler(reference: dict[str, Any], scaler: str, where: Any) -> Scaler:
    """The named scaler of the reference, or an error listing those it holds."""
    if scaler not in reference["scalers"]:
        raise ValidationFailed(f"{where}: no scaler {scaler!r} in the reference (it holds "
                               f"{', '.join(reference['scalers'])}); re-run the validate stage")
    return reference["scalers"][scaler]


def run_validate(params: ValidateParams, prepared_dir: str | os.PathLike[str],
                 reference_dir: str | os.PathLike[str], summary_path: str | os.PathLike[str] | None = None,
                 docs_dir: str | os.PathLike[str] | None = None, scaler: str = "standard",
                 overwrite: bool = False) -> dict[str, Any]:
    """The stage: build the reference from train, validate every split against it (scaling: with `scaler`).

    The new reference replaces the old one only when the train split passes its critical checks (a failed
    run must not leave a reference built from bad data). The outputs are swapped in the order reference,
    Data Docs, summary; the summary records the hashes of the files it describes.
    """
    check_outputs([prepared_dir], reference_dir, docs_dir, summary_path, overwrite)
    start = time.perf_counter()
    splits = {split: open_split(split_path(prepared_dir, split), need_target=False) for split in SPLITS}
    features = list(splits["train"].metadata["features"])
    frames = {split: opened.read() for split, opened in splits.items()}
    check_split_sizes({split: len(frame) for split, frame in frames.items()}, prepared_dir)
    require_disjoint_frames({opened.path: frames[split] for split, opened in splits.items()})
    train = frames["train"]
    if len(train) == 0 or train[features].isna().any().any():
        raise ValidationFailed(f"{splits['train'].path}: the train split is empty or has nulls; cannot build a "
                               "reference")
    with atomic_dir(reference_dir, "validate") as new_reference:
        write_reference(train, features, params, new_reference)
        reference = load_reference(new_reference)
        reference["chosen"] = chosen = _reference_scaler(reference, scaler, reference_dir)
        report = Report([scaler_check(train, chosen)])
        with _docs_into(docs_dir) as docs:
            runner = GXRunner(docs)
            for split, frame in frames.items():
                report.checks += check_split(runner, split, frame, list(train.columns), features, reference, params,
                                             with_drift=split != "train")
        inputs = {split: {"path": portable_path(opened.path), "sha256": file_sha256(opened.path)}
                  for split, opened in splits.items()}
        train_failed = any(c.split == "train" for c in report.failures(critical=True))
        if train_failed:  # leaving the block by an exception discards the new reference
            summarize(report, summary_path, time.perf_counter() - start, {"scaler": chosen.name, "inputs": inputs,
                                                                          "reference_updated": False})
            raise_on_critical(report, f"\n{reference_dir} was not replaced: the train split failed")
        extra = {"scaler": chosen.name, "inputs": inputs, "reference_updated": True,
                 "reference_sha256": file_sha256(new_reference / SCALERS_FILE)}
    summary = summarize(report, summary_path, time.perf_counter() - start, extra)
    raise_on_critical(report)
    return summary


def validate_new(params: ValidateParams, frame: pd.DataFrame, reference_dir: str | os.PathLike[str],
                 summary_path: str | os.PathLike[str] | None = None,
                 docs_dir: str | os.PathLike[str] | None = None, name: str = "new",
                 scaler: str = "standard", overwrite: bool = False) -> dict[str, Any]:
    """Check a new dataset against the reference: schema of its features, physics, units, drift, scaling."""
    check_outputs([reference_dir], None, docs_dir, summary_path, overwrite)
    start = time.perf_counter()
    with_drift = len(frame) >= MIN_SPLIT_EVENTS
    if not with_drift:  # schema, physics and units are checked event by event; drift needs a sample
        print(f"validate: warning: the new data has {len(frame)} event(s): drift checks skipped (they need at least "
              f"{MIN_SPLIT_EVENTS})")
    reference = load_reference(reference_dir)
    reference["chosen"] = chosen = _reference_scaler(reference, scaler, reference_dir)
    features = list(chosen.columns)
    identity = [c for c in IDENTITY if c in frame.columns]
    columns = [*features, *truth_columns(list(frame.columns)), *identity]
    with _docs_into(docs_dir) as docs:
        checks = check_split(GXRunner(docs), name, frame, columns, features, reference, params, with_drift)
    return finish(Report(checks), summary_path, time.perf_counter() - start,
                  {"scaler": chosen.name, "drift_checked": with_drift})


def main(params: ValidateParams, prepared_dir: str, reference_dir: str, summary_path: str | None,
         docs_dir: str | None, scaler: str = "standard", overwrite: bool = False) -> dict[str, Any]:
    """Stage entry."""
    summary = run_validate(params, prepared_dir, reference_dir, summary_path, docs_dir, scaler, overwrite)
    total = sum(s["evaluated"] for s in summary["splits"].values())
    print(f"validate: {total} checks, {summary['critical_failures']} critical failure(s), "
          f"{summary['warnings']} warning(s) in {summary['seconds']:.1f} s (scaling checked for the "
          f"{summary['scaler']} scaler)")
    return summary
