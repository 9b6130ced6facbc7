"""Resolution against the number of training events, for the dense stack and the set model.

    python benchmarks/learning_curve.py --prepared data/prepared --reference data/reference \
        --out benchmarks/.work/learning_curve --n-train 12000,40000,0 \
        --config dense:feature_set=extended \
        --config set:feature_set=objects+extended+ellipse,architecture=set

Each (config, n_train) is one `mtt train` run (logged to MLflow like any other; its run name says what
differs) followed by `mtt evaluate` on the test split; n_train = 0 is the whole train split. The subsets
are nested (`train.n_train`), the scaler is the one fitted on the whole train split, and every other param
is params.yaml's. Prints and writes `learning_curve.csv`: resolution, calibrated resolution, response slope,
fraction within 20%, width ratio, each over the ellipse method's on the same events, and the train time
(an MDN's `mdn_window` resolution too).

With 3 or more sizes per config it fits resolution / ellipse = limit + scale (n / 1000)^-power
(`mtt.core.metrics.learning_curve`) and prints the limit with unlimited data and the n_train that reaches
`--target`: whether more data can reach it at all. `--rows a.csv,b.csv` refits earlier tables without
training (`learning_curve_fit.csv`).
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

import numpy as np
import pyarrow.parquet as pq

from mtt.core.metrics import learning_curve

FIGURES = ("resolution", "calibrated_resolution", "response_slope", "within_20pct", "width_ratio")
#: per-event estimators whose resolution / ellipse is fitted, as the table names them
FITTED = {"model": "resolution_over_ellipse", "mdn_window": "mdn_window_resolution_over_ellipse"}


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
    events = n_train or pq.ParquetFile(Path(args.prepared) / "train.parquet").metadata.num_rows
    row: dict[str, float | str] = {"config": name, "n_train": n_train, "train_events": events,
                                   "train_seconds": round(seconds, 1)}
    for key in FIGURES:
        row[key] = model[key]
        row[f"{key}_over_ellipse"] = model[key] / ellipse[key]
    if "mdn_window" in figures:
        row[FITTED["mdn_window"]] = figures["mdn_window"]["resolution"] / ellipse["resolution"]
    return row


def train_events(row: dict[str, str | float]) -> float:
    """The training events of a row: `train_events`, or `n_train` in tables written before that column."""
    events = float(row.get("train_events") or row["n_train"])
    if events <= 0:
        raise SystemExit(f"learning curve row {row['config']!r}: n_train=0 (the whole split) without a train_events "
                         "column: cannot place it on the curve; add train_events to the table")
    return events


def fits(rows: list[dict[str, str | float]], target: float) -> list[dict[str, float | str]]:
    """Per config and estimator with >= 3 sizes: the saturating power law, its limit and the n for the target."""
    out = []
    for config in dict.fromkeys(str(r["config"]) for r in rows):
        mine = [r for r in rows if r["config"] == config]
        for estimator, column in FITTED.items():
            points = [(train_events(r), float(r[column])) for r in mine if r.get(column) not in (None, "")]
            if len({n for n, _ in points}) < 3:
                continue
            curve = learning_curve(*(np.array(v) for v in zip(*points, strict=True)))
            out.append({"config": config, "estimator": estimator, "points": len(points), "limit": curve.limit,
                        "limit_error": curve.limit_error, "scale": curve.scale, "power": curve.power,
                        "target": target, "n_train_for_target": curve.n_train_for(target)})
            print(f"{config} {estimator}: resolution / ellipse -> {curve.limit:.3f} +- {curve.limit_error:.3f} with "
                  f"unlimited data (power {curve.power:.2f}, {len(points)} sizes); {target} needs "
                  f"{curve.n_train_for(target):.3g} train events", flush=True)
    return out


def write_csv(rows: list[dict[str, float | str]], path: Path) -> None:
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--reference", default="data/reference")
    parser.add_argument("--out", default="benchmarks/.work/learning_curve")
    parser.add_argument("--n-train", default="12000,40000,0", help="comma-separated; 0 = the whole train split")
    parser.add_argument("--config", action="append", default=[], help="name:key=value,... (train params)")
    parser.add_argument("--rows", default="", help="comma-separated learning_curve.csv files to refit, no training")
    parser.add_argument("--target", type=float, default=0.5, help="resolution / ellipse whose n_train is printed")
    args = parser.parse_args()
    rows: list[dict[str, float | str]] = []
    for path in filter(None, args.rows.split(",")):
        with open(path, newline="") as stream:
            rows += list(csv.DictReader(stream))
    if not rows and not args.config:
        parser.error("give --config to train, or --rows to refit")
    for text in args.config:
        name, overrides = parse_config(text)
        for n_train in (int(float(v)) for v in args.n_train.split(",")):
            row = run_one(args, name, overrides, n_train)
            rows.append(row)
            print(f"{name:10s} n_train {n_train:>7d}: resolution {row['resolution']:.4f} "
                  f"({row['resolution_over_ellipse']:.3f}x ellipse), calibrated {row['calibrated_resolution']:.4f} "
                  f"({row['calibrated_resolution_over_ellipse']:.3f}x), within 20% {row['within_20pct']:.3f}, "
                  f"train {row['train_seconds']} s", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    write_csv(rows, Path(args.out) / "learning_curve.csv")
    fitted = fits(rows, args.target)
    if fitted:
        write_csv(fitted, Path(args.out) / "learning_curve_fit.csv")
    print(f"learning curve: {Path(args.out) / 'learning_curve.csv'}")


if __name__ == "__main__":
    main()
