"""Metric names: physics curves, each split and the diagnostics in their own UI section (in that order); older
runs' names still found; the model-independent evaluation figures told apart."""

from __future__ import annotations

from mtt.core.metric_names import (
    epoch_metric,
    evaluation_metric,
    find_metric,
    flat_metrics,
    is_model_independent,
    is_model_independent_plot,
    model_figures,
    model_independent_figures,
)


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


#: an evaluate figures dict as metrics.json has it, cut down
FIGURES = {
    "n_events": 500, "head": "point", "ellipse_exact_fraction": 0.6,
    "model": {"resolution": 0.2, "n_events": 500}, "model_on_ellipse_exact": {"resolution": 0.18},
    "baseline_visible": {"resolution": 0.4}, "baseline_ellipse": {"resolution": 0.3},
    "baseline_ellipse_exact": {"resolution": 0.25}, "model_unfolded": {"chi2_ndf": 1.1},
    "ellipse_unfolded": {"chi2_ndf": 1.5}, "skipped": {"mdn_mode": "the point head"},
    "zprime": {"mass": 750.0, "n_sm": 500, "truth": {"position": 750.0}, "baseline_ellipse": {"position": 740.0},
               "model": {"position": 745.0}},
}


def test_baselines_truth_and_data_counts_are_model_independent():
    for name in ("baseline_ellipse/resolution", "test/baseline_ellipse.resolution", "ellipse_unfolded/chi2_ndf",
                 "ellipse_exact_fraction", "baseline_ellipse_exact/n_events", "n_events", "val/n_events",
                 "zprime/truth/position", "test/zprime.baseline_visible.width", "zprime/mass"):
        assert is_model_independent(name), name
    for name in ("model/resolution", "test/model.resolution_ratio", "model_on_ellipse_exact/resolution",
                 "model_unfolded/chi2_ndf", "model/n_events", "zprime/model/position", "mdn_window/resolution",
                 "unfolding_iterations", "head"):
        assert not is_model_independent(name), name
    assert is_model_independent_plot("plots/response_baseline_ellipse.png")
    assert not any(is_model_independent_plot(p) for p in ("plots/response_model.png", "plots/spectrum.png",
                                                           "plots/response_mdn_window.png", "metrics.json"))


def test_figures_split_into_the_model_independent_and_the_models():
    independent, model = model_independent_figures(FIGURES), model_figures(FIGURES)
    assert independent == {
        "n_events": 500, "ellipse_exact_fraction": 0.6, "baseline_visible": {"resolution": 0.4},
        "baseline_ellipse": {"resolution": 0.3}, "baseline_ellipse_exact": {"resolution": 0.25},
        "ellipse_unfolded": {"chi2_ndf": 1.5},
        "zprime": {"mass": 750.0, "n_sm": 500, "truth": {"position": 750.0}, "baseline_ellipse": {"position": 740.0}}}
    assert flat_metrics(independent, "test")["test/zprime.baseline_ellipse.position"] == 740.0
    assert set(flat_metrics(model, "val")) == {"val/model.resolution", "val/model.n_events",  # numbers only
                                               "val/model_on_ellipse_exact.resolution", "val/model_unfolded.chi2_ndf",
                                               "val/zprime.model.position"}
    assert model == {
        "head": "point", "model": {"resolution": 0.2, "n_events": 500}, "model_on_ellipse_exact": {"resolution": 0.18},
        "model_unfolded": {"chi2_ndf": 1.1}, "skipped": {"mdn_mode": "the point head"},
        "zprime": {"model": {"position": 745.0}}}
