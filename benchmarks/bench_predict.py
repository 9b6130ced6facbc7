"""Benchmark `mtt predict` (ROOT files -> selection -> features -> checks -> model -> written predictions).

    python benchmarks/bench_predict.py [--model models/default] [--input data/raw] [--workers 2] [--repeat 3]

Runs the stage in-process (best of `--repeat`, after one warm-up that loads TensorFlow and the model) on the
pipeline's simulated files, and next to it, in the same run, the model's raw predictions on the same selected
events held in memory (`model(x)` in batches of 65,536). Prints events/s over all input events for both, and
over the selected events for the model. Target: >= 50k input events/s end to end on 2 cores for the default
model.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mtt.core.artifact import load_model_dir
from mtt.core.events.params import PrepareParams
from mtt.stages.predict.stage import Request
from mtt.stages.predict.stage import main as predict_main

DRIFT = (0.05, 0.02)


def stage_rate(model: str, inputs: list[str], workers: int, reference: str) -> tuple[float, int, int]:
    """(input events/s, input events, selected events) of one run of the stage, output to Parquet."""
    with tempfile.TemporaryDirectory() as tmp:
        request = Request(model, inputs, Path(tmp) / "p.parquet", reference=Path(reference))
        start = time.perf_counter()
        result = predict_main(request, PrepareParams(workers=workers), {}, DRIFT)
        seconds = time.perf_counter() - start
    return len(result.table) / seconds, len(result.table), int(result.table["selected"].sum())


def model_rate(model: str, prepared: str, n_events: int) -> float:
    """Selected events/s of the bare model on in-memory float32 features (the prepared splits, repeated to n)."""
    artifact = load_model_dir(model)
    frame = pd.concat([pd.read_parquet(Path(prepared) / f"{s}.parquet", columns=artifact.features)
                       for s in ("train", "val", "test")], ignore_index=True)
    x = np.resize(frame.to_numpy(np.float32), (n_events, len(artifact.features)))
    artifact.model(x[:1024])  # trace once
    start = time.perf_counter()
    for first in range(0, len(x), 65_536):
        np.asarray(artifact.model(x[first:first + 65_536]))
    return len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/default",
                        help="a model folder (the pipeline writes one per configuration: models/<config>)")
    parser.add_argument("--input", default="data/raw")
    parser.add_argument("--prepared", default="data/prepared", help="the same events, prepared (for the model)")
    parser.add_argument("--reference", default="data/reference")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    stage_rate(args.model, [args.input], args.workers, args.reference)  # warm-up: TensorFlow, the model
    runs = [stage_rate(args.model, [args.input], args.workers, args.reference) for _ in range(args.repeat)]
    rate, n_input, n_selected = max(runs)
    bare = max(model_rate(args.model, args.prepared, n_selected) for _ in range(args.repeat))
    print(f"predict benchmark: {n_input} input events, {n_selected} selected, {args.workers} workers, "
          f"best of {args.repeat}")
    print(f"{'stage, ROOT to Parquet':32s}{rate:12.0f} input events/s   ({rate * n_selected / n_input:.0f} "
          f"selected events/s)")
    print(f"{'model alone, in memory':32s}{bare * n_input / n_selected:12.0f} input events/s   ({bare:.0f} selected "
          f"events/s)")
    print(f"stage / model alone: {rate * n_selected / n_input / bare:.3f}; target >= 50,000 input events/s: "
          f"{'reached' if rate >= 50_000 else 'NOT reached'}")


if __name__ == "__main__":
    main()
