"""Benchmark the validate checks on 1M rows x all features, next to reading those rows from Parquet.

    python benchmarks/bench_validate.py [--rows 1000000] [--source-events 100000] [--reference-rows 200000]

Input: real simulated events through prepare (reusing benchmarks/.work when present), bootstrapped to
`--rows` rows for the checked table and 200k rows for the train reference. Prints the seconds to read the
table from Parquet and to run every check on it (schema, physics, units, drift against the reference,
scaling) without and with the Data Docs site. Target: under 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mtt.core.dataset import read_metadata
from mtt.core.events.params import PrepareParams
from mtt.stages.prepare.stage import run_prepare
from mtt.stages.simulate.params import SimulateParams
from mtt.stages.simulate.stage import MANIFEST, run_simulation
from mtt.stages.validate.params import ValidateParams

#: cached inputs; MTT_BENCH_WORK moves them (the smoke tests keep theirs apart)
WORK = Path(os.environ.get("MTT_BENCH_WORK", Path(__file__).resolve().parent / ".work"))


#: simulated events behind the bootstrapped rows (bench_prepare's default input when present)
SOURCE_EVENTS = 100_000


def source_rows(n_events: int = SOURCE_EVENTS) -> tuple[pd.DataFrame, list[str]]:
    """Prepared rows of a real simulation, and the feature columns."""
    suffix = "" if n_events == SOURCE_EVENTS else f"_{n_events}"
    raw = WORK / "prepare_200000_50000" / "raw"
    if not (raw / MANIFEST).exists() or suffix:
        raw = WORK / f"validate_raw{suffix}"
        if not (raw / MANIFEST).exists():
            run_simulation(SimulateParams(n_events=n_events, progress=False), raw)
    prepared = WORK / f"validate_prepared{suffix}"
    if not (prepared / "train.parquet").exists():
        run_prepare(PrepareParams(), [raw], prepared)
    frame = pd.concat([pd.read_parquet(prepared / f"{s}.parquet") for s in ("train", "val", "test")],
                      ignore_index=True)
    return frame, read_metadata(prepared / "train.parquet")["features"]


def bootstrap(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    rows = frame.iloc[np.random.default_rng(seed).integers(0, len(frame), n)].reset_index(drop=True)
    rows["event"] = np.arange(n, dtype=np.uint64)
    return rows


def timed(run: Callable[[], object]) -> float:
    """Seconds of one validation: every check runs before a critical failure stops it, so a bootstrapped table
    whose tails trip a check (the rows repeat a small sample's rare events) is timed all the same."""
    from mtt.core.errors import ValidationFailed

    start = time.perf_counter()
    with contextlib.suppress(ValidationFailed):
        run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--source-events", type=int, default=SOURCE_EVENTS, help="simulated events behind the rows")
    parser.add_argument("--reference-rows", type=int, default=200_000, help="rows of the train reference")
    args = parser.parse_args()
    from mtt.stages.validate.reference import build_reference
    from mtt.stages.validate.stage import validate_new

    pool, features = source_rows(args.source_events)
    params = ValidateParams()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bootstrap(pool, args.rows, 1).to_parquet(tmp / "rows.parquet")
        build_reference(bootstrap(pool, args.reference_rows, 2), features, params, tmp / "reference")
        start = time.perf_counter()
        frame = pd.read_parquet(tmp / "rows.parquet")
        read = time.perf_counter() - start
        import great_expectations  # noqa: F401  (import time is not part of the checks)

        checks = timed(lambda: validate_new(params, frame, tmp / "reference", tmp / "summary.json"))
        summary = json.loads((tmp / "summary.json").read_text())
        with_docs = timed(lambda: validate_new(params, frame, tmp / "reference", docs_dir=tmp / "docs"))
    n_checks = sum(s["evaluated"] for s in summary["splits"].values())
    print(f"validate benchmark: {args.rows} rows x {len(features)} features, {n_checks} checks "
          f"({summary['critical_failures']} failed)")
    print(f"read from Parquet          {read:8.2f} s")
    print(f"all checks                 {checks:8.2f} s   ({checks / read:.1f}x the read)")
    print(f"all checks + Data Docs     {with_docs:8.2f} s")


if __name__ == "__main__":
    main()
