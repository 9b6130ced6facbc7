"""The parent's table and plot: failed children kept, with empty figures."""

from __future__ import annotations

import csv
import math

from mtt.tools.sweep.results import log_scale, plot_rows, write_table


def _rows():
    nan = math.nan
    return [{"value": 30000, "run_id": "b", "status": "FINISHED", "best_val_loss": 0.3, "val_resolution": 0.16,
             "test_resolution": 0.17, "width_ratio": 0.8, "crps": 60.0, "train_seconds": 20.0},
            {"value": 10000, "run_id": "a", "status": "FINISHED", "best_val_loss": 0.4, "val_resolution": 0.2,
             "test_resolution": 0.21, "width_ratio": 0.7, "crps": 70.0, "train_seconds": 10.0},
            {"value": 100000, "run_id": "c", "status": "FAILED", "best_val_loss": nan, "val_resolution": nan,
             "test_resolution": nan, "width_ratio": nan, "crps": nan, "train_seconds": nan}]


def test_table_keeps_failed_rows_with_empty_figures(tmp_path):
    write_table(_rows(), tmp_path / "sweep.csv")
    with (tmp_path / "sweep.csv").open() as stream:
        table = list(csv.DictReader(stream))
    assert list(table[0]) == ["value", "run_id", "status", "best_val_loss", "val_resolution", "test_resolution",
                              "width_ratio", "crps", "train_seconds"]
    assert [row["value"] for row in table] == ["30000", "10000", "100000"]
    assert table[1]["val_resolution"] == "0.2" and table[2]["status"] == "FAILED"
    assert table[2]["val_resolution"] == "" and table[2]["crps"] == ""


def test_plot_of_numeric_and_of_named_values(tmp_path):
    assert log_scale([10000, 30000, 100000]) and not log_scale([256, 1024]) and not log_scale(["point", "mdn"])
    assert log_scale([1e-3, 1e-2]) and not log_scale([0, 100]) and not log_scale([True, False])
    plot_rows(_rows(), "n_train", tmp_path / "numeric.png")
    named = [{**row, "value": name} for row, name in zip(_rows(), ("point", "mdn", "quantile"), strict=True)]
    plot_rows(named, "head", tmp_path / "named.png")
    for name in ("numeric.png", "named.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
