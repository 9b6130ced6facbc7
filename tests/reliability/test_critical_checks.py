"""train and evaluate check the data they read before they start; evaluate never rewrites a finished
training run's figures with figures of other data."""

from __future__ import annotations

import pytest
from reliability.conftest import mev, rewrite

from mtt.core.errors import DataError
from mtt.stages.evaluate.params import EvaluateParams
from mtt.stages.evaluate.stage import run_evaluate
from mtt.stages.train.params import TrainParams
from mtt.stages.train.stage import TrainPaths, run_train

TINY = TrainParams(epochs=1, batch_size=64, width=8, depth=1)


def test_train_refuses_mev_inputs(small_prepared, store, tmp_path):
    bad = rewrite(small_prepared, tmp_path / "mev" / "prepared", mev)
    paths = TrainPaths(prepared=bad, reference=small_prepared.parent / "reference", model=tmp_path / "models")
    with pytest.raises(DataError, match=r"train refuses this data.*\n  units: lplus_pt: median .* x1e\+03 \(the "
                                        r"input is in MeV\?\)"):
        run_train(TINY, paths)
    assert not store.search_runs([e.experiment_id for e in store.search_experiments()])  # no run was started
    assert not (tmp_path / "models").exists()


def test_evaluate_refuses_mev_inputs(small_prepared, tiny_trained, tmp_path, monkeypatch):
    root, uri, _ = tiny_trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    bad = rewrite(small_prepared, tmp_path / "mev" / "prepared", mev, splits=("test",))
    with pytest.raises(DataError, match=r"(?s)test.parquet: evaluate refuses this data.*units: b1_pt"):
        run_evaluate(EvaluateParams(), bad, root / "models", tmp_path / "eval")
    assert not (tmp_path / "eval").exists()


@pytest.mark.slow
def test_other_data_never_overwrites_the_training_runs_figures(small_prepared, tiny_trained, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    root, uri, run_id = tiny_trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    other = rewrite(small_prepared, tmp_path / "other" / "prepared", lambda f: f.iloc[: len(f) // 2],
                    splits=("test",))
    run_evaluate(EvaluateParams(ellipse=False), other, root / "models", tmp_path / "eval")
    client = MlflowClient(tracking_uri=uri)
    assert "test/model.resolution" not in client.get_run(run_id).data.metrics  # the training run is untouched
    (evaluation,) = client.search_runs([client.get_run(run_id).info.experiment_id],
                                       filter_string=f"tags.`eval.model_run_id` = '{run_id}'")
    assert evaluation.info.run_id != run_id and evaluation.info.status == "FINISHED"
    assert evaluation.data.tags["eval.data_path"] == str((other / "test.parquet").resolve())
    assert "test/model.resolution" in evaluation.data.metrics
    # the model's own test split goes to the training run
    run_evaluate(EvaluateParams(ellipse=False), small_prepared, root / "models", tmp_path / "eval_own")
    assert "test/model.resolution" in client.get_run(run_id).data.metrics
