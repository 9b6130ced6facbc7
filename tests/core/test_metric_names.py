"""Metric names: per-epoch curves and each split in their own UI section; older runs' names still found."""

from __future__ import annotations

from mtt.core.metric_names import epoch_metric, evaluation_metric, find_metric


def test_metric_names_put_epoch_curves_and_each_split_in_one_section():
    assert epoch_metric("val_rmse_gev") == "epoch/val_rmse_gev"
    assert evaluation_metric("test", "model/resolution") == "test/model.resolution"
    assert evaluation_metric("val", "zprime/model/position") == "val/zprime.model.position"


def test_find_metric_reads_current_and_older_names():
    now = {"test/model.resolution": 0.15, "epoch/val_loss": 0.4, "wall_time_s": 9.0}
    before = {"model/resolution": 0.16, "val_loss": 0.5}
    assert find_metric(now, "model/resolution") == 0.15 and find_metric(now, "test/model.resolution") == 0.15
    assert find_metric(before, "test/model.resolution") == 0.16 and find_metric(before, "model/resolution") == 0.16
    assert find_metric(now, "val_loss") == 0.4 and find_metric(before, "epoch/val_loss") == 0.5
    assert find_metric(now, "wall_time_s") == 9.0 and find_metric(now, "model/crps") is None
