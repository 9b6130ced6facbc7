"""The parent run's results: a table with one row per child, a plot of its figures, the counts of children and
failures, and the parent failed when every child failed."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtt.core import plots
from mtt.core.errors import MttError
from mtt.core.io import atomic_file

#: the plot's panels: the table columns drawn in each (children.METRICS), and the axis label
PANELS = ((("best_val_loss",), "best val loss"), (("val_resolution", "test_resolution"), "resolution"),
          (("width_ratio",), "width ratio (test)"), (("crps",), "CRPS [GeV]"))


class SweepFailed(MttError):
    """Every child of a sweep or study failed: the parent run ends FAILED and `mtt` exits non-zero."""


def _cell(value: Any) -> Any:
    """A CSV cell: empty for a missing figure."""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return value


def write_table(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The rows as CSV, failed children included (their figures empty)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_file(path) as tmp, tmp.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows({key: _cell(row.get(key, math.nan)) for key in columns} for row in rows)


def log_scale(values: Sequence[Any]) -> bool:
    """A log x-axis for positive numbers that span a factor 10 or more (1e4, 3e4, 1e5: evenly spaced)."""
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return len(numbers) == len(values) > 1 and min(numbers) > 0 and max(numbers) >= 10 * min(numbers)


def plot_rows(rows: Sequence[dict[str, Any]], param: str, path: Path, x_column: str = "value") -> None:
    """Val loss, resolution, width ratio and CRPS against the swept value (numbers in order, else categories)."""
    values = [row[x_column] for row in rows]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    x = np.asarray(values, dtype=np.float64) if numeric else np.arange(len(values), dtype=np.float64)
    order = np.argsort(x, kind="stable")
    failed = [str(row[x_column]) for row in rows if row.get("status") != "FINISHED"]
    with plots.figure(path, nrows=2, ncols=2, figsize=(12, 9)) as (fig, axes):
        if failed:  # a failed child has no figures: say which, rather than leave a silent gap
            fig.suptitle(f"failed: {param} = {', '.join(failed)}", fontsize=16)
        for ax, (columns, label) in zip(axes.flat, PANELS, strict=True):
            for column in columns:
                y = np.asarray([row.get(column, math.nan) for row in rows], dtype=np.float64)
                ax.plot(x[order], y[order], "o-", label=column.replace("_", " "))
            ax.set_xlabel(param)
            ax.set_ylabel(label)
            if log_scale(values):
                ax.set_xscale("log")
            if not numeric:
                ax.set_xticks(x, [str(v) for v in values])
            if len(columns) > 1:
                ax.legend()


def finish_parent(rows: list[dict[str, Any]], out: Path, stem: str, x_label: str, x_column: str = "value") -> None:
    """Write and log the table and plot, log n_children and n_failed; fail the parent if every child failed."""
    import mlflow

    n_failed = sum(row["status"] != "FINISHED" for row in rows)
    write_table(rows, out / f"{stem}.csv")
    plot_rows(rows, x_label, out / f"{stem}.png", x_column)
    for name in (f"{stem}.csv", f"{stem}.png"):
        mlflow.log_artifact(str(out / name))
    mlflow.log_metrics({"n_children": len(rows), "n_failed": n_failed})
    print(f"{stem}: {len(rows) - n_failed} of {len(rows)} child runs finished; table {out / f'{stem}.csv'}, "
          f"plot {out / f'{stem}.png'}")
    if rows and n_failed == len(rows):
        raise SweepFailed(f"every child run failed ({len(rows)}); see the errors above and the runs' logs/")
