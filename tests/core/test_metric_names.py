"""Metric names: physics curves, each split and the diagnostics in their own UI section (in that order); older
runs' names still found."""

from __future__ import annotations

from mtt.core.metric_names import epoch_metric, evaluation_metric, find_metric


def _section(name: str) -> str:
    """The UI's section of a metric: the name up to its last '/'."""
    return name.rsplit("/", 1)[0]


def test_metric_names_put_physics_first_then_each_split_then_the_diagnostics():
    assert epoch_metric("val_rmse_gev") == "epoch/val_rmse_gev"
    assert epoch_metric("grad_norm") == "watch/grad_norm" and epoch_metric("learning_rate") == "watch/learning_rate"
    assert evaluation_metric("test", "model/resolution") == "test/model.resolution"
    assert evaluation_metric("val", "zprime/model/position") == "val/zprime.model.position"
    # the UI sorts the prefixed sections by name (then the unprefixed ones, then system/)
    names = [epoch_metric("val_loss"), "final/val_resolution", evaluation_metric("test", "model/resolution"),
             evaluation_metric("val", "model/resolution"), epoch_metric("dead_relu_fraction")]
    sections = [_section(n) for n in names]
    assert sorted(sections) == sections == ["epoch", "final", "test", "val", "watch"]


def test_find_metric_reads_current_and_older_names():
    now = {"test/model.resolution": 0.15, "epoch/val_loss": 0.4, "wall_time_s": 9.0, "watch/grad_norm": 2.0}
    before = {"model/resolution": 0.16, "val_loss": 0.5, "epoch/grad_norm": 3.0}
    oldest = {"grad_norm": 4.0}
    assert find_metric(now, "model/resolution") == 0.15 and find_metric(now, "test/model.resolution") == 0.15
    assert find_metric(before, "test/model.resolution") == 0.16 and find_metric(before, "model/resolution") == 0.16
    assert find_metric(now, "val_loss") == 0.4 and find_metric(before, "epoch/val_loss") == 0.5
    assert find_metric(now, "wall_time_s") == 9.0 and find_metric(now, "model/crps") is None
    for key in ("grad_norm", "watch/grad_norm", "epoch/grad_norm"):  # diagnostics moved from epoch/ to watch/
        assert (find_metric(now, key), find_metric(before, key), find_metric(oldest, key)) == (2.0, 3.0, 4.0), key

