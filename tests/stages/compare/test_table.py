"""The comparison's rows: figures carried over from evaluate, ratios to the ellipse method worked out by hand."""

from __future__ import annotations

import pytest
from stages.compare.study_files import ELLIPSE, figures

from mtt.stages.compare.params import StudyParams
from mtt.stages.compare.table import Outputs, headline, markdown, rounded, row, rows

PARAMS = StudyParams(configs={"seed_baseline": "seed_baseline", "hybrid_mdn": "hybrid_mdn"}, recommended="hybrid_mdn")


def study() -> list[Outputs]:
    return [Outputs("seed_baseline", figures(0.15), {"wall_time_s": 12.0}),
            Outputs("hybrid_mdn", figures(0.12, mdn=True), {"wall_time_s": 20.0})]


def test_a_row_carries_the_figures_and_its_ratio_to_the_ellipse_method() -> None:
    one = row("seed_baseline", "model", figures(0.15), ELLIPSE, {"wall_time_s": 12.0})
    assert one["resolution_ratio"] == pytest.approx(0.15 / 0.2)  # 0.75
    assert (one["bias"], one["width_ratio"], one["crps"], one["train_s"]) == (0.04, 0.75, 70.0, 12.0)
    assert (one["zprime_shift"], one["zprime_yield"]) == (-0.1, 0.75)
    assert one["coverage_68"] is None  # a point head has no distribution


def test_an_mdn_density_is_judged_on_its_median_row() -> None:
    """CRPS and coverage belong to the MDN's density: they sit on `model` (its median), not on mdn_window."""
    mdn = figures(0.12, mdn=True)
    median, window = row("m", "model", mdn, ELLIPSE, None), row("m", "mdn_window", mdn, ELLIPSE, None)
    assert (median["crps"], median["coverage_68"]) == (47.5, 0.63)
    assert window["coverage_68"] is None and window["resolution_ratio"] == pytest.approx(0.12 * 0.98 / 0.2)


def test_a_spectrum_estimator_has_no_per_event_figures() -> None:
    unfolded = row("m", "model_unfolded", figures(0.12), ELLIPSE, None)
    assert unfolded["resolution"] is None and unfolded["resolution_ratio"] is None
    assert unfolded["chi2_ndf"] == 1.5


def test_rows_follow_the_configurations_then_the_baselines_once() -> None:
    table = rows(study(), PARAMS)
    assert [(r["config"], r["estimator"]) for r in table] == [
        ("seed_baseline", "model"), ("seed_baseline", "model_unfolded"),
        ("hybrid_mdn", "model"), ("hybrid_mdn", "mdn_window"), ("hybrid_mdn", "mdn_expected"),
        ("hybrid_mdn", "model_unfolded"),
        ("", "baseline_ellipse"), ("", "ellipse_unfolded"), ("", "baseline_visible")]
    ellipse = table[6]
    assert ellipse["resolution_ratio"] == 1.0 and ellipse["train_s"] is None


def test_the_headline_is_small_and_leaves_out_what_an_estimator_lacks() -> None:
    top = headline(rows(study(), PARAMS), PARAMS)
    assert top == {"seed_baseline": {"model": {"resolution_ratio": 0.75, "width_ratio": 0.75}},
                   "hybrid_mdn": {"model": {"resolution_ratio": 0.6, "width_ratio": 0.75},
                                  "mdn_window": {"resolution_ratio": 0.588},  # its spectrum: mdn_expected
                                  "mdn_expected": {"width_ratio": 0.94}}}


def test_markdown_marks_the_recommended_configuration_and_leaves_missing_cells_blank() -> None:
    text = markdown(rows(study(), PARAMS), PARAMS, 600)
    assert text.startswith("Test split, 600 events")
    assert "| **hybrid_mdn** | `mdn_window` | 0.118 | 0.59 |" in text
    assert "| seed_baseline | `model_unfolded` |  |  |" in text
    assert "| (no model) | `baseline_ellipse` | 0.200 | 1.00 |" in text


def test_the_json_rows_are_rounded_to_ten_digits() -> None:
    assert rounded([{"config": "a", "resolution": 0.1 + 0.2}]) == [{"config": "a", "resolution": 0.3}]
