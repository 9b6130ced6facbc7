"""Resolution against the number of training events, for the dense stack and the set model.

    python benchmarks/learning_curve.py --prepared data/prepared --reference data/reference \
        --out benchmarks/.work/learning_curve --n-train 12000,40000,0 \
        --config dense:feature_set=extended \
        --config set:feature_set=objects+extended+ellipse,architecture=set

Each (config, n_train) is one `mtt train` run (logged to MLflow like any other; its run name says what
differs) followed by `mtt evaluate` on the test split; n_train = 0 is the whole train split. The subsets
are nested (`train.n_train`), the scaler is the one fitted on the whole train split, and every other param
is params.yaml's. Prints and writes `learning_curve.csv`: resolution, calibrated resolution, response slope,
fraction within 20%, width ratio, each over the ellipse method's on the same events, and the train time.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

FIGURES = ("resolution", "calibrated_resolution", "response_slope", "within_20pct", "width_ratio")


def parse_config(text: str) -> tuple[str, list[str]]:
    """'name:key=value,key=[a,b]' -> (name, ['-S', 'key=value', '-S', 'key=[a,b]']): commas in brackets stay."""
    name, _, overrides = text.partition(":")
    return name, [arg for item in re.split(r",(?![^\[]*\])", overrides) if item for arg in ("-S", item)]


def run_one(args: argparse.Namespace, name: str, overrides: list[str], n_train: int) -> dict[str, float | str]:
    """Train and evaluate one point of the curve; its figures."""
    out = Path(args.out) / f"{name}_{n_train}"
    mtt = [sys.executable, "-m", "mtt"]
    start = time.perf_counter()
    subprocess.run([*mtt, "train", "--params", args.params, *overrides, "-S", f"n_train={n_train}",
                    "--prepared", args.prepared, "--reference", args.reference, "--model", str(out / "models"),
                    "--metrics", str(out / "train.json"), "--history", str(out / "history.csv"),
                    "--checkpoints", str(out / "checkpoints")], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    subprocess.run([*mtt, "evaluate", "--params", args.params, "--prepared", args.prepared,
                    "--model", str(out / "models"), "--out", str(out / "eval")], check=True, capture_output=True)
    figures = json.loads((out / "eval" / "metrics.json").read_text())
    model, ellipse = figures["model"], figures["baseline_ellipse"]
    row: dict[str, float | str] = {"config": name, "n_train": n_train, "train_seconds": round(seconds, 1)}
    for key in FIGURES:
        row[key] = model[key]
        row[f"{key}_over_ellipse"] = model[key] / ellipse[key]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--reference", default="data/reference")
    parser.add_argument("--out", default="benchmarks/.work/learning_curve")
    parser.add_argument("--n-train", default="12000,40000,0", help="comma-separated; 0 = the whole train split")
    parser.add_argument("--config", action="append", required=True, help="name:key=value,... (train params)")
    args = parser.parse_args()
    rows = []
    for text in args.config:
        name, overrides = parse_config(text)
        for n_train in (int(float(v)) for v in args.n_train.split(",")):
            row = run_one(args, name, overrides, n_train)
            rows.append(row)
            print(f"{name:10s} n_train {n_train:>7d}: resolution {row['resolution']:.4f} "
                  f"({row['resolution_over_ellipse']:.3f}x ellipse), calibrated {row['calibrated_resolution']:.4f} "
                  f"({row['calibrated_resolution_over_ellipse']:.3f}x), within 20% {row['within_20pct']:.3f}, "
                  f"train {row['train_seconds']} s", flush=True)
    path = Path(args.out) / "learning_curve.csv"
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"learning curve: {path}")


if __name__ == "__main__":
    main()
