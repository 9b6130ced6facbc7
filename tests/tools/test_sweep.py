"""mtt sweep and mtt tune: value parsing, the table and plot, and real tiny sweeps and studies.

The slow tests run the real thing on the `small_prepared` sample: the sweep makes the parent run in this
process and every child runs `python -m mtt train` and `python -m mtt evaluate` in subprocesses, logging into
a temporary SQLite store (`store`).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import yaml

from mtt.core.errors import ParamsError
from mtt.core.params import load_yaml
from mtt.tools.params import load_params
from mtt.tools.sweep.sweep import (
    Child,
    StagePaths,
    log_scale,
    parse_value,
    plan_sweep,
    plot_rows,
    run_sweep,
    run_tune,
    stage_commands,
    suggest,
    write_table,
    yaml_text,
)
from mtt.tools.tune_params import TuneParams

REPO = Path(__file__).resolve().parents[2]
PARAMS = REPO / "params.yaml"
#: a small, quick network for every child; sgd at batch 16 so that learning_rate=10 diverges in the first epoch
TINY = ["optimizer=sgd", "batch_size=16", "epochs=1", "width=16", "depth=2"]


# --- values ------------------------------------------------------------------------------------------------


def test_values_take_the_type_of_their_train_param():
    assert parse_value("n_train", "1e4") == 10000 and isinstance(parse_value("n_train", "1e4"), int)
    assert parse_value("n_train", "1.5e3") == 1500 and parse_value("batch_size", "256") == 256
    assert parse_value("learning_rate", "1e-3") == 0.001 and isinstance(parse_value("learning_rate", "1"), float)
    assert parse_value("head", "mdn") == "mdn" and parse_value("log_features", "true") is True
    assert parse_value("preset", "none") == "none"
    # what a child's -S gets reads back (YAML 1.1 would read 1e-05 as a string)
    for value in (1e-05, 0.001, 10000, 2.5e20, "seed_baseline", True, "objects+ellipse", "yes", [0.16, 0.84]):
        assert load_yaml(yaml_text(value)) == value, value
    assert yaml_text(1e-05) == "1.0e-05" and yaml_text(10000) == "10000"


def test_bad_values_and_unknown_params_are_named():
    with pytest.raises(ParamsError, match=r"n_train=1\.5: train\.n_train takes an integer"):
        parse_value("n_train", "1.5")
    with pytest.raises(ParamsError, match=r"learning_rate=fast: train\.learning_rate takes a number"):
        parse_value("learning_rate", "fast")
    with pytest.raises(ParamsError, match=r"unknown train param 'n_trian'; known: preset, "):
        parse_value("n_trian", "1")
    with pytest.raises(ParamsError, match=r"(?s)learning_rate=-1\.0: .*train\.learning_rate: Input should be greater"):
        plan_sweep(PARAMS, ["learning_rate=0.01,-1"])
    with pytest.raises(ParamsError, match=r"(?s)head=bogus: .*train\.head: Input should be 'point', 'mdn'"):
        plan_sweep(PARAMS, ["head=point,bogus"])
    with pytest.raises(ParamsError, match=r"(?s)preset=nope: .*unknown preset 'nope'"):
        plan_sweep(PARAMS, ["preset=none,nope"])
    with pytest.raises(ParamsError, match=r"exactly one train param with comma-separated values, .* \(got 0: none\)"):
        plan_sweep(PARAMS, ["n_train=1000"])
    with pytest.raises(ParamsError, match=r"\(got 2: n_train=1,2, epochs=1,2\)"):
        plan_sweep(PARAMS, ["n_train=1,2", "epochs=1,2"])
    with pytest.raises(ParamsError, match=r"n_train: repeated value\(s\) 10000"):
        plan_sweep(PARAMS, ["n_train=1e4,10000"])
    with pytest.raises(ParamsError, match="n_train is both swept and fixed"):
        plan_sweep(PARAMS, ["n_train=1e4,3e4", "n_train=5"])
    with pytest.raises(ParamsError, match=r"train\.epochs: Input should be greater than or equal to 1"):
        plan_sweep(PARAMS, ["n_train=1e4,3e4", "epochs=0"])  # a bad fixed override: named too


def test_a_sweep_plan_keeps_the_fixed_overrides():
    sweep = plan_sweep(PARAMS, ["epochs=5", "train.n_train=1e4,3e4,1e5", "quantiles=[0.1,0.5,0.9]"])
    assert (sweep.param, sweep.values, sweep.texts) == ("n_train", (10000, 30000, 100000),
                                                        ("10000", "30000", "100000"))
    assert sweep.fixed == ("epochs=5", "quantiles=[0.1,0.5,0.9]")  # a YAML list is one value, not a sweep
    assert sweep.name == "sweep n_train=10000,30000,100000 epochs=5 quantiles=[0.1,0.5,0.9]"
    assert sweep.label("10000") == "n_train=10000"
    presets = plan_sweep(PARAMS, ["preset=none,seed_baseline", "batch_size=4096"])
    assert presets.values == ("none", "seed_baseline") and presets.fixed == ("batch_size=4096",)


def test_children_evaluate_with_the_zprime_sample_only_when_given(tmp_path):
    child = Child("n_train=10000", ("n_train=10000",), {"sweep.n_train": 10000}, tmp_path / "n_train=10000")
    paths = StagePaths(params=Path("params.yaml"), prepared=Path("data/prepared"), reference=Path("data/reference"))
    assert "--zprime" not in stage_commands(child, paths)["evaluate"]
    with_zprime = StagePaths(**{**paths.__dict__, "zprime": Path("data/prepared_zprime")})
    evaluate = stage_commands(child, with_zprime)["evaluate"]
    assert evaluate[evaluate.index("--zprime") + 1] == "data/prepared_zprime"
    assert "--zprime" not in stage_commands(child, with_zprime)["train"]


# --- table and plot -----------------------------------------------------------------------------------------


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


# --- tune ------------------------------------------------------------------------------------------------


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


def test_a_trial_the_train_params_refuse_fails_without_a_run(tmp_path, capsys):
    import optuna

    from mtt.tools.sweep.sweep import Study
    from mtt.tools.tune_params import SearchDimension

    tune = TuneParams(space={"architecture": SearchDimension(choices=["dense", "set"])})
    study = Study(tune, ("epochs=1",), _paths(PARAMS, tmp_path / "prepared", tmp_path), tmp_path)
    # the set architecture needs the objects feature set: no run is started (study.parent is not even set)
    assert math.isnan(study.objective(optuna.trial.FixedTrial({"architecture": "set"}, number=4)))
    assert study.rows == [{"trial": 4, "architecture": "set", "run_id": "", "status": "INVALID"}]
    assert "trial 4: architecture=set: not a valid train setup: " in capsys.readouterr().err


def test_the_command_line_has_sweep_and_tune():
    from mtt.cli import build_parser, discover

    parser = build_parser(discover())
    assert "sweep" in parser.format_help() and "tune" in parser.format_help()
    args = parser.parse_args(["sweep", "-S", "n_train=1e4,3e4", "-S", "epochs=2", "--out", "x"])
    assert args.overrides == ["n_train=1e4,3e4", "epochs=2"] and args.prepared is None  # paths.prepared
    args = parser.parse_args(["tune", "-S", "n_trials=3", "-T", "epochs=2"])
    assert args.overrides == ["n_trials=3"] and args.train_overrides == ["epochs=2"] and args.out is None


# --- real runs -----------------------------------------------------------------------------------------------


@pytest.fixture
def quick_params(tmp_path):
    """params.yaml with evaluate's unfolding off (seconds per child on this tiny sample) and a small search."""
    raw = yaml.safe_load(PARAMS.read_text())
    raw["evaluate"]["unfold"] = False
    raw["tune"] = {"n_trials": 2, "seed": 1, "timeout_s": 0.0,
                   "space": {"width": {"low": 8, "high": 32, "log": True},
                             "learning_rate": {"low": 0.001, "high": 0.01, "log": True},
                             "schedule": {"choices": ["constant", "cosine"]}}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _paths(params, prepared, out):
    return StagePaths(params=params, prepared=prepared, reference=prepared.parent / "reference", out=out)


def _children(store, parent):
    runs = store.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    return {run.info.run_name: run for run in runs}


@pytest.mark.slow  # three children: ~45 s on 2 cores
def test_a_sweep_with_a_failing_value(small_prepared, store, tmp_path, quick_params, capsys):
    out = tmp_path / "sweep"
    rows = run_sweep(["learning_rate=1e-3,0.01,10", *TINY], _paths(quick_params, small_prepared, out))
    experiment = store.get_experiment_by_name("mtt").experiment_id
    (parent,) = store.search_runs([experiment], "tags.mtt.tools.sweep.param = 'learning_rate'")
    assert parent.info.status == "FINISHED" and parent.info.run_name.startswith("sweep learning_rate=0.001,0.01,10.0")
    assert parent.data.tags["mtt.tools.sweep.values"] == "0.001,0.01,10.0"
    assert parent.data.metrics["n_children"] == 3 and parent.data.metrics["n_failed"] == 1
    children = _children(store, parent)
    assert set(children) == {"learning_rate=0.001", "learning_rate=0.01", "learning_rate=10.0"}
    assert len(store.search_runs([experiment])) == 4  # the parent and its three children, nothing else
    for name, run in children.items():
        assert run.data.params["sweep.learning_rate"] == name.partition("=")[2]
        assert run.info.status == ("FAILED" if name == "learning_rate=10.0" else "FINISHED")
    finished = children["learning_rate=0.01"]
    assert finished.data.params["train.learning_rate"] == "0.01" and finished.data.params["train.optimizer"] == "sgd"
    assert {"best_val_loss", "final/val_resolution", "test/model.resolution", "test/model.crps"} <= set(
        finished.data.metrics)
    assert "evaluate" in {a.path for a in store.list_artifacts(finished.info.run_id)}
    assert "the loss became nan at epoch 0" in capsys.readouterr().err  # the failed child's stderr tail
    # the table: in MLflow and in the out folder, one row per child
    assert {a.path for a in store.list_artifacts(parent.info.run_id)} == {"sweep.csv", "sweep.png"}
    with (out / "sweep.csv").open() as stream:
        table = list(csv.DictReader(stream))
    assert [(row["value"], row["status"]) for row in table] == [("0.001", "FINISHED"), ("0.01", "FINISHED"),
                                                                 ("10.0", "FAILED")]
    assert table[1]["run_id"] == finished.info.run_id
    assert float(table[1]["val_resolution"]) == pytest.approx(finished.data.metrics["final/val_resolution"])
    assert float(table[1]["test_resolution"]) == pytest.approx(finished.data.metrics["test/model.resolution"])
    assert table[2]["val_resolution"] == "" and rows[2]["status"] == "FAILED"
    assert (out / "learning_rate=0.01" / "models" / "model.keras").is_file()
    assert (out / "learning_rate=0.01" / "eval" / "metrics.json").is_file()


@pytest.mark.slow  # two children that fail at once: ~10 s
def test_a_sweep_whose_children_all_fail_fails(small_prepared, store, tmp_path, quick_params, capsys):
    from mtt.cli import main

    status = main(["sweep", "--params", str(quick_params), "-S", "n_train=100,200", "-S", "epochs=1",
                   "--prepared", str(tmp_path / "nowhere"), "--reference", str(small_prepared.parent / "reference"),
                   "--out", str(tmp_path / "out")])
    assert status != 0
    err = capsys.readouterr().err
    assert "prepared split missing" in err and "mtt sweep: error: every child run failed (2)" in err
    experiment = store.get_experiment_by_name("mtt").experiment_id
    (parent,) = store.search_runs([experiment], "tags.mtt.tools.sweep.param = 'n_train'")
    assert parent.info.status == "FAILED" and parent.data.metrics["n_failed"] == 2
    # train failed before it opened the run: the sweep marked the children FAILED
    assert {run.info.status for run in _children(store, parent).values()} == {"FAILED"}


@pytest.mark.slow  # two trials: ~35 s on 2 cores
def test_a_tiny_study(small_prepared, store, tmp_path, quick_params):
    out = tmp_path / "tune"
    tune = load_params(quick_params, "tune")
    rows = run_tune(tune, ["epochs=1", "depth=2", "batch_size=64"], _paths(quick_params, small_prepared, out))
    experiment = store.get_experiment_by_name("mtt").experiment_id
    (parent,) = store.search_runs([experiment], "tags.`mtt.tune.fixed` = 'epochs=1 depth=2 batch_size=64'")
    assert parent.info.status == "FINISHED" and parent.info.run_name.startswith("tune 2 trials: width, learning_rate")
    assert parent.data.metrics["n_children"] == 2 and parent.data.metrics["n_failed"] == 0
    children = _children(store, parent)
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
