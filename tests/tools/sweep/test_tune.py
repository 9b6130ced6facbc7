"""mtt tune: the search space, reproducible trials, a refused trial, and a real tiny study (see conftest.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mtt.core.errors import ParamsError
from mtt.tools.params import load_params
from mtt.tools.sweep.tune import Study, run_tune, suggest
from mtt.tools.tune_params import SearchDimension, TuneParams

PARAMS = Path(__file__).resolve().parents[3] / "params.yaml"


def test_the_search_space_is_read_from_params_and_checked():
    tune = load_params(PARAMS, "tune")
    assert set(tune.space) == {"width", "depth", "learning_rate", "schedule"} and tune.n_trials >= 1
    assert (tune.space["width"].low, tune.space["width"].high, tune.space["width"].log) == (32, 512, True)
    assert tune.space["schedule"].choices == ["constant", "cosine", "exponential", "reduce_on_plateau"]
    with pytest.raises(ParamsError, match=r"tune\.space: .*'widht' is not a train param"):
        load_params(PARAMS, "tune", ["space.widht.low=1", "space.widht.high=2"])
    with pytest.raises(ParamsError, match=r"tune\.space\.learning_rate: .*low \(0\.1\) must be below high"):
        load_params(PARAMS, "tune", ["space.learning_rate.low=0.1"])
    with pytest.raises(ParamsError, match=r"'linear' is not a valid train\.schedule"):
        load_params(PARAMS, "tune", ["space.schedule.choices=[constant, linear]"])
    with pytest.raises(ParamsError, match=r"train\.depth is an integer"):
        load_params(PARAMS, "tune", ["space.depth.low=2.5"])


def test_trials_draw_from_the_space_reproducibly():
    import optuna

    space = TuneParams().space

    def draws(seed):
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        return [suggest(study.ask(), space) for _ in range(3)]

    first = draws(3)
    assert first == draws(3)
    for values in first:
        assert isinstance(values["width"], int) and 32 <= values["width"] <= 512
        assert isinstance(values["depth"], int) and 2 <= values["depth"] <= 8
        assert 1e-4 <= values["learning_rate"] <= 1e-2 and values["schedule"] in space["schedule"].choices


def test_a_trial_the_train_params_refuse_fails_without_a_run(tmp_path, stage_paths, capsys):
    import optuna

    tune = TuneParams(space={"architecture": SearchDimension(choices=["dense", "set"])})
    study = Study(tune, ("epochs=1",), stage_paths(PARAMS, tmp_path / "prepared", tmp_path), tmp_path)
    # the set architecture needs the objects feature set: no run is started (study.parent is not even set)
    assert math.isnan(study.objective(optuna.trial.FixedTrial({"architecture": "set"}, number=4)))
    assert study.rows == [{"trial": 4, "architecture": "set", "run_id": "", "status": "INVALID"}]
    assert "trial 4: architecture=set: not a valid train setup: " in capsys.readouterr().err


@pytest.mark.slow  # two trials: ~35 s on 2 cores
def test_a_tiny_study(small_prepared, store, tmp_path, quick_params, stage_paths, child_runs):
    out = tmp_path / "tune"
    tune = load_params(quick_params, "tune")
    rows = run_tune(tune, ["epochs=1", "depth=2", "batch_size=64"], stage_paths(quick_params, small_prepared, out))
    experiment = store.get_experiment_by_name("mtt").experiment_id
    (parent,) = store.search_runs([experiment], "tags.`mtt.tune.fixed` = 'epochs=1 depth=2 batch_size=64'")
    assert parent.info.status == "FINISHED" and parent.info.run_name.startswith("tune 2 trials: width, learning_rate")
    assert parent.data.metrics["n_children"] == 2 and parent.data.metrics["n_failed"] == 0
    children = child_runs(store, parent)
    assert len(children) == 2 and all(run.info.status == "FINISHED" for run in children.values())
    best = store.get_run(parent.data.tags["mtt.tune.best_run"])
    assert parent.data.metrics["best_value"] == pytest.approx(best.data.metrics["final/val_resolution"])
    assert parent.data.metrics["best_value"] == min(run.data.metrics["final/val_resolution"]
                                                    for run in children.values())
    for name in ("width", "learning_rate", "schedule"):  # the best trial's params, as the run used them
        assert parent.data.params[f"best.{name}"] == best.data.params[f"train.{name}"]
        assert best.data.params[f"tune.{name}"] == best.data.params[f"train.{name}"]
    assert {run.data.params["tune.trial"] for run in children.values()} == {"0", "1"}
    assert [row["trial"] for row in rows] == [0, 1] and (out / "tune.csv").is_file() and (out / "tune.png").is_file()
    assert {a.path for a in store.list_artifacts(parent.info.run_id)} == {"tune.csv", "tune.png"}
