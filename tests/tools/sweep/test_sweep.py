"""mtt sweep: the plan checked before any run, and real tiny sweeps (see conftest.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mtt.core.errors import ParamsError
from mtt.tools.sweep.sweep import plan_sweep, run_sweep

PARAMS = Path(__file__).resolve().parents[3] / "params.yaml"
#: a small, quick network for every child; sgd at batch 16 so that learning_rate=10 diverges in the first epoch
TINY = ["optimizer=sgd", "batch_size=16", "epochs=1", "width=16", "depth=2"]


def test_a_bad_plan_is_named_before_any_run():
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


# --- real runs -----------------------------------------------------------------------------------------------


@pytest.mark.slow  # three children: ~45 s on 2 cores
def test_a_sweep_with_a_failing_value(small_prepared, store, tmp_path, quick_params, stage_paths, child_runs, capsys):
    out = tmp_path / "sweep"
    rows = run_sweep(["learning_rate=1e-3,0.01,10", *TINY], stage_paths(quick_params, small_prepared, out))
    experiment = store.get_experiment_by_name("mtt").experiment_id
    (parent,) = store.search_runs([experiment], "tags.mtt.sweep.param = 'learning_rate'")
    assert parent.info.status == "FINISHED" and parent.info.run_name.startswith("sweep learning_rate=0.001,0.01,10.0")
    assert parent.data.tags["mtt.sweep.values"] == "0.001,0.01,10.0"
    assert parent.data.metrics["n_children"] == 3 and parent.data.metrics["n_failed"] == 1
    children = child_runs(store, parent)
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
def test_a_sweep_whose_children_all_fail_fails(small_prepared, store, tmp_path, quick_params, child_runs, capsys):
    from mtt.cli import main

    status = main(["sweep", "--params", str(quick_params), "-S", "n_train=100,200", "-S", "epochs=1",
                   "--prepared", str(tmp_path / "nowhere"), "--reference", str(small_prepared.parent / "reference"),
                   "--out", str(tmp_path / "out")])
    assert status != 0
    err = capsys.readouterr().err
    assert "prepared split missing" in err and "mtt sweep: error: every child run failed (2)" in err
    experiment = store.get_experiment_by_name("mtt").experiment_id
    (parent,) = store.search_runs([experiment], "tags.mtt.sweep.param = 'n_train'")
    assert parent.info.status == "FAILED" and parent.data.metrics["n_failed"] == 2
    # train failed before it opened the run: the sweep marked the children FAILED
    assert {run.info.status for run in child_runs(store, parent).values()} == {"FAILED"}
