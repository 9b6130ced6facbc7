"""The flow head end to end on the tiny simulated sample: trained on the truth neutrinos, read by evaluate (its
estimators, distributional figures and observables), by predict, and through MLflow's pyfunc without the package."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtt.core.artifact import load_model_dir
from mtt.core.dataset import open_split, split_path
from mtt.core.errors import DataError
from mtt.core.inference import head_output
from mtt.stages.evaluate.params import EvaluateParams
from mtt.stages.evaluate.stage import run_evaluate
from mtt.stages.predict.stage import head_columns
from mtt.stages.train.params import TrainParams
from mtt.stages.train.stage import TrainPaths, run_train

FLOW = TrainParams(epochs=2, batch_size=64, width=16, depth=2, head="flow", flow_context=8, flow_layers=2,
                   flow_hidden=16, flow_samples=8, feature_set="extended", optimizer="adamw")


@pytest.fixture(scope="module")
def flow(small_prepared, tmp_path_factory):
    """A 2-epoch flow head on the tiny sample, in its own store: (folder, run id)."""
    root = tmp_path_factory.mktemp("flow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        patch.chdir(root)
        paths = TrainPaths(prepared=small_prepared, reference=small_prepared.parent / "reference",
                           model=root / "models")
        run_id = run_train(FLOW, paths)["run_id"]
    mlflow.set_tracking_uri(None)
    return root, run_id


def test_the_flow_trains_on_the_neutrinos_and_logs_a_model_that_loads_without_the_package(small_prepared, flow,
                                                                                         monkeypatch):
    root, run_id = flow
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    history = mlflow.get_run(run_id).data.metrics
    assert np.isfinite(history["epoch/val_rmse_gev"]) and np.isfinite(history["epoch/val_loss"])
    features = load_model_dir(root / "models").features
    x = open_split(split_path(small_prepared, "val")).read(features).to_numpy(np.float32)[:20]
    logged = np.asarray(mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(x))
    assert logged.shape == (20, 1 + FLOW.flow_samples) and np.all(logged[:, 0] > 2 * 170)  # above the tt threshold
    assert np.all(np.diff(logged[:, 1:], axis=1) >= 0)  # the draws, sorted; column 0 is their median


def test_evaluate_reads_the_posterior_draws(small_prepared, flow, monkeypatch):
    root, _ = flow
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    params = EvaluateParams(split="val", ellipse=False, unfold_replicas=5, unfold_min_events=5, flow_samples=16)
    figures = run_evaluate(params, small_prepared, root / "models", root / "eval")
    assert figures["head"] == "flow"
    for name in ("model", "flow_window", "flow_mean", "flow_sample", "flow_expected", "model_unfolded"):
        assert np.isfinite(figures[name]["width_ratio"]), name
    assert 0 < figures["flow"]["coverage_68"] < figures["flow"]["coverage_95"] <= 1 and figures["flow"]["crps"] > 0
    observables = figures["flow_observables"]
    assert observables["posterior_fraction"] == 1.0  # every event gets a posterior
    assert set(observables) >= {"top_pt", "top_y", "met_residual_drawn_gev", "met_residual_true_gev"}
    assert 0 <= observables["top_pt"]["coverage_68"] <= 1 and observables["met_residual_true_gev"] > 0
    assert 0 < observables["true_neutrinos_resolution"] < 0.3  # the floor: visible objects plus the true neutrinos


def test_the_draws_are_seeded_and_predict_reads_them(small_prepared, flow):
    root, _ = flow
    artifact = load_model_dir(root / "models")
    x = open_split(split_path(small_prepared, "test")).read(artifact.features).to_numpy(np.float32)
    one, again = (head_output(artifact.model, x, artifact.meta, 16, seed=3) for _ in range(2))
    assert np.array_equal(one.draws.values, again.draws.values) and one.neutrinos.shape == (len(x), 16, 6)
    other = head_output(artifact.model, x, artifact.meta, 16, seed=4)
    assert not np.array_equal(one.draws.values, other.draws.values)
    columns = head_columns(artifact, x, 0.1)
    assert set(columns) == {"m_tt", "m_tt_window", "m_tt_q16", "m_tt_q84"}
    assert np.all(columns["m_tt_q16"] <= columns["m_tt_q84"])


def test_the_flow_needs_the_truth_neutrinos(small_prepared, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    for split in ("train", "val", "test"):  # the same events without the neutrino columns
        source = split_path(small_prepared, split)
        frame = pd.read_parquet(source)
        table = pa.Table.from_pandas(frame.drop(columns=[c for c in frame if c.startswith(("nu_", "antinu_"))]),
                                     preserve_index=False)
        pq.write_table(table.replace_schema_metadata(pq.read_schema(source).metadata), split_path(prepared, split))
    paths = TrainPaths(prepared=prepared, reference=small_prepared.parent / "reference", model=tmp_path / "models")
    with pytest.raises(DataError, match=r"no truth-neutrino columns .*nu_px.*mtt simulate"):
        run_train(FLOW, paths)


def test_the_flow_refuses_an_ensemble_augmentation_or_streaming():
    for change in ({"ensemble": 2}, {"augment": ["phi_rotation"]}, {"input": "stream"}):
        with pytest.raises(ValueError, match="head: flow trains one network"):
            TrainParams(**{**FLOW.model_dump(), **change})


def test_the_posterior_top_takes_the_pairing_nearer_the_top_mass():
    """A hand event: l+ (30, 0, 0) and its neutrino (-30, 0, 0) with a b jet at rest (m 112.5 GeV) make a top of
    172.5 GeV at rest; l- and its antineutrino along y with the other b jet (pT 50) make the antitop. Whichever
    slot holds the resting b jet, the top drawn is the one at rest: pT 0, rapidity 0."""
    from mtt.stages.evaluate.estimators import posterior_top

    b_rest, b_moving = [0.0, 0.0, 0.0, 112.5], [50.0, 0.0, 0.0, float(np.hypot(50.0, 4.8))]
    e_pair = (float(np.hypot(172.5, 50.0)) - b_moving[3]) / 2  # l- + antineutrino energy for an antitop of 172.5
    lplus, lminus = [30.0, 0.0, 0.0, 30.0], [0.0, e_pair, 0.0, e_pair]
    neutrinos = np.array([[[-30.0, 0.0, 0.0, 0.0, -e_pair, 0.0]]])
    for b1, b2 in ((b_rest, b_moving), (b_moving, b_rest)):
        pt, rapidity = posterior_top(np.array([lplus + lminus + b1 + b2]), neutrinos, 172.5)
        assert pt[0, 0] == pytest.approx(0.0, abs=1e-9) and rapidity[0, 0] == pytest.approx(0.0, abs=1e-9)
