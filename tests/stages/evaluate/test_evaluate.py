"""The evaluate stage: hand-computed visible mass, a real tiny train -> evaluate run, and its bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtt.core.dataset import TARGET
from mtt.core.errors import ArtifactError, DataError, EvaluateError
from mtt.core.metric_names import is_model_independent
from mtt.stages.evaluate.estimators import Evaluation, likelihood_prior, momenta, visible_mass, visible_scale
from mtt.stages.evaluate.params import EvaluateParams
from mtt.stages.evaluate.stage import read_split, rounded_floats, run_evaluate, write_metrics, write_table
from mtt.stages.evaluate.tables import ellipse_ratios, run_figures
from mtt.stages.train.params import TrainParams
from mtt.stages.train.stage import TrainPaths, run_train

FLOW_ESTIMATORS = ("flow_window", "flow_mean", "flow_sample", "flow_expected")  # skipped for any other head
HAND = pd.DataFrame({  # l+ and l- back to back along x, b1 and b2 back to back along y (m_b = 15 GeV)
    "lplus_pt": [10.0], "lplus_eta": [0.0], "lplus_phi": [0.0], "lplus_e": [10.0],
    "lminus_pt": [10.0], "lminus_eta": [0.0], "lminus_phi": [np.pi], "lminus_e": [10.0],
    "b1_pt": [20.0], "b1_eta": [0.0], "b1_phi": [np.pi / 2], "b1_e": [25.0],
    "b2_pt": [20.0], "b2_eta": [0.0], "b2_phi": [-np.pi / 2], "b2_e": [25.0],
})


def test_visible_mass_of_a_hand_event():
    p4 = momenta(HAND)
    assert p4["b1"][0] == pytest.approx([0.0, 20.0, 0.0, 25.0], abs=1e-12)
    assert visible_mass(p4)[0] == pytest.approx(70.0)  # all momenta cancel: m = E_total = 10 + 10 + 25 + 25


def test_visible_scale_is_the_mean_ratio_to_the_truth():
    train = pd.concat([HAND] * 3, ignore_index=True).assign(m_tt=[140.0, 140.0, 280.0])  # ratios 2, 2, 4
    assert visible_scale(train) == pytest.approx(8.0 / 3)


@pytest.fixture(scope="module")
def trained(small_prepared, tmp_path_factory):
    """A 2-epoch model on the tiny prepared sample, logged into its own SQLite store."""
    root = tmp_path_factory.mktemp("evaluate")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(root)
        paths = TrainPaths(prepared=small_prepared, reference=small_prepared.parent / "reference",
                           model=root / "models", history=root / "history.csv")
        summary = run_train(TrainParams(epochs=2, batch_size=64, width=32, depth=2), paths)
    return root, uri, summary["run_id"]


def test_evaluate_writes_figures_plots_and_logs_them_to_the_training_run(small_prepared, trained, monkeypatch,
                                                                         tmp_path):
    from mlflow.tracking import MlflowClient

    root, uri, run_id = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(root)
    params = EvaluateParams(split="val", unfold_min_events=5)  # a tiny val split: unfold in coarse bins
    figures = run_evaluate(params, small_prepared, root / "models", root / "eval", root / "history.csv")

    stored = json.loads((root / "eval" / "metrics.json").read_text())
    assert stored == rounded_floats(json.loads(json.dumps(figures)))  # to DIGITS significant digits
    n = len(pd.read_parquet(small_prepared / "val.parquet"))
    assert stored["n_events"] == n and 0 < stored["ellipse_exact_fraction"] <= 1
    for name in ("model", "baseline_visible", "baseline_ellipse", "baseline_ellipse_exact", "model_on_ellipse_exact"):
        for key in ("resolution", "bias", "rmse", "mae", "within_10pct", "within_20pct", "width_ratio",
                    "wasserstein", "chi2_ndf"):
            assert np.isfinite(stored[name][key]), (name, key)
    assert stored["model"]["n_events"] == n  # the model predicts every event
    assert stored["model_on_ellipse_exact"]["n_events"] == stored["baseline_ellipse_exact"]["n_events"]
    spectrum = pd.read_csv(root / "eval" / "spectrum.csv")
    assert list(spectrum.columns) == ["m_tt", "truth", "model", "baseline_visible", "baseline_ellipse"]
    assert len(spectrum) == params.n_bins and spectrum.truth.sum() <= n
    per_bin = pd.read_csv(root / "eval" / "per_bin.csv")
    assert {"m_tt", "model_bias", "baseline_ellipse_resolution"} <= set(per_bin.columns)
    pngs = sorted(p.name for p in (root / "eval" / "plots").glob("*.png"))
    assert pngs == ["bias_resolution.png", "loss_curve.png", "residuals.png", "response_baseline_ellipse.png",
                    "response_baseline_visible.png", "response_model.png", "spectrum.png", "spectrum_others.png",
                    "unfolded.png"]
    assert all((root / "eval" / "plots" / p).stat().st_size > 5000 for p in pngs)
    assert "smallest m_tt" in (root / "eval" / "ellipse_rule.txt").read_text()
    # the point head: unfolded model and ellipse spectra (response from val), the MDN estimators skipped
    assert stored["head"] == "point" and "model_unfolded" in stored and "ellipse_unfolded" in stored
    assert set(stored["skipped"]) == {"mdn_mode", "mdn_window", "mdn_mean", "mdn_sample", "mdn_expected",
                                      "mdn_likelihood", "quantile", *FLOW_ESTIMATORS}
    unfolded = pd.read_csv(root / "eval" / "unfolded.csv")
    assert {"truth", "model_unfolded", "model_unfolded_pull", "ellipse_unfolded_relative_uncertainty"} <= set(
        unfolded.columns) and unfolded.truth.sum() <= n
    assert stored["model"]["crps"] == pytest.approx(stored["model"]["mae"])  # a point forecast's CRPS

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"  # logged into, not reopened
    metrics, tags = run.data.metrics, run.data.tags
    # one UI section per split (here val): <split>/<estimator>.<figure>, the model's figures only
    assert metrics["val/model.width_ratio"] == pytest.approx(stored["model"]["width_ratio"])
    assert metrics["val/model_on_ellipse_exact.resolution"] == pytest.approx(
        stored["model_on_ellipse_exact"]["resolution"])
    assert not any(k.startswith(("model/", "baseline_")) for k in metrics)
    # the baselines, the truth and the data counts are the same in every configuration: not in its run
    assert not [k for k in metrics if k.startswith("val/") and is_model_independent(k)]
    assert not {"val/baseline_ellipse.resolution", "val/ellipse_unfolded.chi2_ndf", "val/n_events"} & set(metrics)
    # instead, the model's ratios to the ellipse method (the unfolded spectrum's to the unfolded ellipse spectrum)
    assert metrics["val/model.resolution_ratio"] == pytest.approx(
        stored["model"]["resolution"] / stored["baseline_ellipse"]["resolution"], rel=1e-6)
    assert metrics["val/model_unfolded.chi2_ndf_ratio"] == pytest.approx(
        stored["model_unfolded"]["chi2_ndf"] / stored["ellipse_unfolded"]["chi2_ndf"], rel=1e-6)
    assert {"val/model.wasserstein_ratio", "val/model.chi2_ndf_ratio"} <= set(metrics)
    # the settings as tags, the rule as an artifact (not a paragraph-long tag), a sentence in the description
    assert tags["evaluate.split"] == "val" and tags["evaluate.n_bins"] == "24" and "eval.ellipse_rule" not in tags
    assert f"Evaluated on the val split ({n:,} events): resolution {stored['model']['resolution']:.3f}" in tags[
        "mlflow.note.content"]
    assert "smallest m_tt" in Path(client.download_artifacts(run_id, "evaluate/ellipse_rule.txt", tmp_path)).read_text()
    logged = {f.path for f in client.list_artifacts(run_id, "evaluate/plots")}
    assert {f"evaluate/plots/{p}" for p in pngs} - logged == {"evaluate/plots/response_baseline_ellipse.png",
                                                             "evaluate/plots/response_baseline_visible.png"}
    assert "evaluate/plots/response_model.png" in logged and "evaluate/metrics.json" in {
        f.path for f in client.list_artifacts(run_id, "evaluate")}


def test_a_configuration_run_gets_the_models_figures_and_its_ratios_to_the_ellipse_method():
    figures = {"n_events": 400, "model": {"resolution": 0.2, "wasserstein": 30.0, "chi2_ndf": 4.0, "bias": 0.01},
               "mdn_window": {"resolution": 0.15, "wasserstein": float("nan"), "chi2_ndf": 2.0},
               "baseline_ellipse": {"resolution": 0.25, "wasserstein": 20.0, "chi2_ndf": 0.0},
               "baseline_visible": {"resolution": 0.4}, "model_unfolded": {"wasserstein": 9.0, "chi2_ndf": 1.2},
               "ellipse_unfolded": {"wasserstein": 12.0, "chi2_ndf": 1.5},
               "zprime": {"truth": {"position": 750.0}, "model": {"position": 745.0}}}
    ratios = ellipse_ratios(figures)
    assert ratios == {"model": {"resolution_ratio": pytest.approx(0.8), "wasserstein_ratio": pytest.approx(1.5)},
                      "mdn_window": {"resolution_ratio": pytest.approx(0.6)},  # no ratio of a NaN or over zero
                      "model_unfolded": {"wasserstein_ratio": pytest.approx(0.75),
                                         "chi2_ndf_ratio": pytest.approx(0.8)}}
    assert ellipse_ratios({k: v for k, v in figures.items() if k != "baseline_ellipse"}) == {
        "model_unfolded": ratios["model_unfolded"]}  # without the ellipse method, only the unfolded pair
    logged = run_figures(figures)
    assert set(logged) == {"model", "mdn_window", "model_unfolded", "zprime"} and logged["zprime"] == {
        "model": {"position": 745.0}}
    assert logged["model"] == {**figures["model"], **ratios["model"]}


def test_bad_inputs_are_named(small_prepared, tmp_path):
    import pyarrow.parquet as pq

    with pytest.raises(ArtifactError, match="model.json: missing; .* not a trained model folder"):
        run_evaluate(EvaluateParams(), small_prepared, tmp_path / "nothing", tmp_path / "eval")
    seed_only = tmp_path / "seed_only"
    seed_only.mkdir()
    table = pq.read_table(small_prepared / "test.parquet")
    pq.write_table(table.drop_columns(["b1_pt", "met_px"]), seed_only / "test.parquet")
    with pytest.raises(DataError, match=r"missing columns \['b1_pt', 'met_px'\] .* prepare.feature_sets"):
        read_split(seed_only, "test", ["b1_pt", "met_px", "m_tt"])
    with pytest.raises(DataError, match="prepared split missing"):
        read_split(tmp_path, "test", ["m_tt"])
    with pytest.raises(ValueError, match="m_tt_max"):
        EvaluateParams(m_tt_min=800.0, m_tt_max=500.0)
    assert not (tmp_path / "eval").exists()


@pytest.fixture(scope="module")
def mdn(small_prepared, tmp_path_factory):
    """A 2-epoch mixture density network on the tiny sample."""
    root = tmp_path_factory.mktemp("mdn")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        paths = TrainPaths(prepared=small_prepared, reference=small_prepared.parent / "reference",
                           model=root / "models")
        run_train(TrainParams(epochs=2, batch_size=64, width=16, depth=2, head="mdn", mdn_components=3), paths)
    return root


def test_an_mdn_gives_mode_mean_sample_expected_spectrum_and_calibration(small_prepared, mdn, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{mdn}/mlflow.db")
    params = EvaluateParams(split="val", ellipse=False, unfold_replicas=5, unfold_min_events=5)
    figures = run_evaluate(params, small_prepared, mdn / "models", mdn / "eval")
    assert figures["head"] == "mdn" and set(figures["skipped"]) == {"quantile", "ellipse_unfolded", *FLOW_ESTIMATORS}
    for name in ("mdn_mode", "mdn_window", "mdn_mean", "mdn_sample", "mdn_expected", "mdn_likelihood",
                 "model_unfolded"):
        assert np.isfinite(figures[name]["width_ratio"]), name
    assert 0 < figures["mdn"]["coverage_68"] < figures["mdn"]["coverage_95"] <= 1 and figures["mdn"]["crps"] > 0
    assert (mdn / "eval" / "plots" / "pit_mdn.png").is_file() and (mdn / "eval" / "plots" / "coverage.png").is_file()
    per_bin = pd.read_csv(mdn / "eval" / "per_bin.csv")
    assert "mdn_coverage_68" in per_bin.columns and "mdn_mode_resolution" in per_bin.columns


def test_an_estimator_the_head_cannot_give_is_named(small_prepared, trained, tmp_path, monkeypatch):
    root, uri, _ = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(EvaluateError, match=r"\['mdn_mode'\] not available: the model's head is 'point', which "
                                            r"provides model_unfolded, ellipse_unfolded"):
        run_evaluate(EvaluateParams(estimators=["mdn_mode"]), small_prepared, root / "models", tmp_path / "eval")


def test_too_few_val_events_skip_the_unfolding_and_say_why(small_prepared, trained, tmp_path, monkeypatch):
    root, uri, _ = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    figures = run_evaluate(EvaluateParams(ellipse=False, unfold_min_events=10_000), small_prepared, root / "models",
                           tmp_path / "eval")
    assert "too few to unfold" in figures["skipped"]["model_unfolded"] and "model_unfolded" not in figures
    assert list(pd.read_csv(tmp_path / "eval" / "unfolded.csv").columns) == ["m_tt_low", "m_tt_high", "truth"]


def test_the_likelihood_needs_the_prior_the_mdn_was_trained_under():
    """The train split's spectrum is the prior only for unweighted training: flat weights skip the estimator."""
    train = pd.DataFrame({TARGET: np.random.default_rng(1).gamma(1.6, 115.0, 2000) + 345.0})
    names = ["mdn_mode", "mdn_likelihood"]
    result = Evaluation({"skipped": {}}, {}, {})
    grid, log_prior = likelihood_prior(names, result, train, {"params": {"sample_weights": "none"}})
    assert grid[0] >= train[TARGET].min() and grid[-1] <= train[TARGET].max() and np.all(np.diff(grid) == 2.0)
    density = np.exp(log_prior)
    assert np.sum(density) * 2.0 == pytest.approx(1.0, abs=0.02)  # a normalised density in GeV^-1 on the grid
    assert likelihood_prior(names, result, train, {"params": {"sample_weights": "flat"}}) is None
    assert names == ["mdn_mode"] and "sample_weights='flat'" in result.figures["skipped"]["mdn_likelihood"]


def test_tables_and_metrics_keep_their_bytes_under_last_bit_noise(tmp_path):
    """Sums added in another order (another CPU's vector units) differ in the last bits: the files do not."""
    exact, noisy = 0.1 + 0.2 + 0.3, 0.3 + 0.2 + 0.1  # 0.6000000000000001 and 0.6
    assert exact != noisy
    for name, value in (("a", exact), ("b", noisy)):
        table = pd.DataFrame({"m_tt": [325.0, 375.0], "x": [value, np.nan], "n": [28, 887]})
        write_table(table, tmp_path / f"{name}.csv")
        write_metrics({"x": value, "per_bin": [value, float("nan")], "n": 3}, tmp_path / f"{name}.json")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_text() == "m_tt,x,n\n325.0,0.6,28\n375.0,,887\n"
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert json.loads((tmp_path / "a.json").read_text())["x"] == 0.6
