"""Params read as users expect (YAML 1.2), every range and pair of params checked, and work that cannot
finish refused up front: each bad value is one line naming the param, before anything is written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import uproot
from root_events import event, good_emu, write_events

from mtt.cli import main
from mtt.core.errors import ParamsError, TrainError
from mtt.core.events.params import NanoAODParams, SelectionParams
from mtt.core.events.schemas import NATIVE, to_objects
from mtt.core.events.selection import CUTS, select
from mtt.core.params import load_yaml, parse_overrides
from mtt.tools.params import load_params
from mtt.tools.sweep.overrides import parse_value

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    """A copy of the repository's params.yaml (every section spelled out)."""
    return Path(shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml"))


def _tree(root: Path) -> dict[str, int]:
    """Every file and folder under root, with sizes: what a refused command must leave as it was."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")}


def _refused(args: list[str], root: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run `mtt <args>`; it must exit 2 with one line on stderr and leave the folder as it was."""
    before = _tree(root)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert _tree(root) == before
    return err


# --- one YAML dialect: YAML 1.2 -----------------------------------------------------------------------


def test_sexagesimal_looking_text_stays_text(params_file):
    assert load_yaml("1:30") == "1:30"  # YAML 1.1 reads 90
    assert parse_overrides(["experiment=1:30"], "train") == {"experiment": "1:30"}
    assert load_params(params_file, "train", ["experiment=1:30"]).experiment == "1:30"


def test_an_exponent_without_a_dot_is_a_number(params_file):
    assert load_yaml("1e-3") == 0.001  # YAML 1.1 reads the string '1e-3'
    assert load_params(params_file, "train", ["learning_rate=1e-3"]).learning_rate == 0.001
    params_file.write_text(params_file.read_text().replace("learning_rate: 0.001", "learning_rate: 2e-4"))
    assert load_params(params_file, "train").learning_rate == 0.0002
    # a whole number written with an exponent is that integer
    assert load_params(params_file, "simulate", ["n_events=1e4"]).n_events == 10_000


def test_yes_no_on_off_are_text_and_a_bool_asks_for_true_or_false(params_file):
    assert [load_yaml(t) for t in ("yes", "no", "on", "off")] == ["yes", "no", "on", "off"]
    assert load_params(params_file, "train", ["experiment=no"]).experiment == "no"  # YAML 1.1: False
    with pytest.raises(ParamsError, match=r"simulate.progress: Input should be a valid boolean: write true or "
                                          r"false \(got 'yes'"):
        load_params(params_file, "simulate", ["progress=yes"])


def test_dates_are_text(params_file):
    assert load_params(params_file, "train", ["experiment=2024-06-01"]).experiment == "2024-06-01"


def test_sweep_values_read_the_same_dialect():
    assert parse_value("experiment", "off") == "off"  # YAML 1.1: False
    assert parse_value("experiment", "1:30") == "1:30"
    assert parse_value("learning_rate", "1e-3") == 0.001


def test_a_lookalike_key_is_named_with_its_code_points(params_file, tmp_path, capsys):
    text = params_file.read_text().replace("  n_events: 200000", "  n_\u0435vents: 200000")
    params_file.write_text(text)
    with pytest.raises(ParamsError, match=r"simulate.n_\\u0435vents \(U\+0435 CYRILLIC SMALL LETTER IE at "
                                          r"position 2\): unknown key; allowed keys: .*; did you mean n_events\?"):
        load_params(params_file, "simulate")
    err = _refused(["simulate", "--params", str(params_file), "--out", str(tmp_path / "raw")], tmp_path, capsys)
    assert "n_\\u0435vents (U+0435 CYRILLIC SMALL LETTER IE at position 2)" in err


def test_a_lookalike_key_in_an_override_too(params_file):
    with pytest.raises(ParamsError, match=r"simulate.s\\u0435ed \(U\+0435 .*\): unknown key; .*; did you mean "
                                          r"seed\?"):
        load_params(params_file, "simulate", ["s\u0435ed=5"])


def test_yaml_errors_are_one_line(params_file):
    params_file.write_text("simulate: [\n")
    with pytest.raises(ParamsError, match=r"params.yaml: not valid YAML: line \d+, column \d+: ") as info:
        load_params(params_file)
    assert "\n" not in str(info.value)


# --- no NaN, no inf -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("section", "override", "named"), [
    ("evaluate", "m_tt_max=.inf", "evaluate.m_tt_max"),
    ("train", "learning_rate=.nan", "train.learning_rate"),
    ("simulate", "sqrt_s=.inf", "simulate.sqrt_s"),
    ("prepare", "selection.z_window=[.nan, 100]", "prepare.selection.z_window[0]"),
    ("validate", "drift.kl_max=.inf", "validate.drift.kl_max"),
    ("train", "quantiles=[0.1, .nan]", "train.quantiles[1]"),
    ("tune", "space={width: {low: 8, high: .inf}}", "tune.space.width.high"),
])
def test_no_nan_or_inf_in_any_float_param(params_file, section, override, named):
    with pytest.raises(ParamsError, match=re.escape(named) + r": Input should be a finite number"):
        load_params(params_file, section, [override])


# --- ranges and pairs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("quantiles", ["[0.5, 0.16]", "[0.16, 0.16, 0.84]", "[0.0, 0.5]", "[0.5, 1.0]"])
@pytest.mark.parametrize(("section", "key"), [("train", "quantiles"), ("validate", "drift.quantiles")])
def test_quantiles_strictly_inside_0_1_and_increasing(params_file, section, key, quantiles):
    with pytest.raises(ParamsError, match=rf"{section}\.{key}: .*quantiles must be strictly increasing and strictly "
                                          r"between 0 and 1"):
        load_params(params_file, section, [f"{key}={quantiles}"])


@pytest.mark.parametrize(("section", "key", "window"), [
    ("prepare", "selection.z_window", "[106, 76]"),
    ("prepare", "selection.electron_gap", "[1.566, 1.4442]"),
    ("prepare", "selection.z_window", "[91, 91]"),
    ("validate", "lepton_pt_median", "[500, 5]"),
    ("validate", "jet_pt_median", "[1000, 1000]"),
])
def test_a_window_needs_low_below_high(params_file, section, key, window):
    with pytest.raises(ParamsError, match=rf"{section}\.{key}: .*low .* must be below high"):
        load_params(params_file, section, [f"{key}={window}"])


def test_a_selection_window_is_switched_off_by_null_and_the_selection_honours_it(params_file, tmp_path):
    with pytest.raises(ParamsError, match=r"prepare.selection.z_window: .*\[low, high\] in GeV, or null to switch "
                                          r"the Z veto off \(got 'off'\)"):
        load_params(params_file, "prepare", ["selection.z_window=off"])
    sel = load_params(params_file, "prepare", ["selection.z_window=null", "selection.electron_gap=null"]).selection
    assert sel.z_window is None and sel.electron_gap is None
    in_z = good_emu(electrons=[(45.5, 0.0, 0.0, 1), (45.5, 0.0, np.pi, -1)], muons=[])
    in_gap = good_emu(electrons=[(50.0, 1.5, 0.0, 1)])
    outside = event(electrons=[(60.0, 0.0, 0.0, 1), (60.0, 0.0, np.pi, -1)],
                    jets=[(60.0, 1.0, -2.0, 10.0, True), (45.0, -1.2, 1.5, 8.0, False)], met=(50.0, 1.0))
    path = write_events(tmp_path / "events.root", [in_z, in_gap, outside])
    objects = to_objects(uproot.open(path)["Events"].arrays(NATIVE.branches(with_truth=True)), NATIVE, "GeV",
                         NanoAODParams(), with_truth=True)
    assert select(objects, SelectionParams())[0].tolist() == [False, False, True]
    passed, cutflow, _ = select(objects, sel)
    assert passed.tolist() == [True, True, True] and cutflow[CUTS[-1]] == 3


def test_sqrt_s_below_the_tt_threshold_is_refused_before_any_work(params_file, tmp_path, capsys):
    out = tmp_path / "raw"
    err = _refused(["simulate", "--params", str(params_file), "-S", "sqrt_s=300", "--out", str(out)], tmp_path,
                   capsys)
    assert "simulate.sqrt_s" in err and "346" in err and not out.exists()
    with pytest.raises(ParamsError, match=r"simulate.sqrt_s: .* 2 x top_mass = 400 GeV.* \(got 390\)"):
        load_params(params_file, "simulate", ["top_mass=200", "sqrt_s=390"])


@pytest.mark.parametrize(("section", "overrides", "message"), [
    ("prepare", ["selection.lepton_pt_lead=15"], r"prepare.selection.lepton_pt_lead: Value error, 15 GeV must be at "
                                                 r"least lepton_pt_min \(20 GeV\)"),
    ("prepare", ["split.val=0.2"], r"prepare.split: Value error, train \+ val \+ test must be 1, got 1.05"),
    ("simulate", ["process=zprime", "zprime.mass=5000", "sqrt_s=4000"],
     r"simulate.sqrt_s: Value error, 4000 GeV cannot make a Z' of mass 5000 GeV"),
    ("evaluate", ["m_w=180"], r"evaluate.m_w: Value error, 180 GeV must be below m_t \(172.5 GeV\)"),
    ("validate", ["mtt_margin=400"], r"validate.mtt_margin: Value error, 400 GeV is at least 2 x top_mass"),
    ("evaluate", ["m_tt_min=1500", "m_tt_max=300"], r"evaluate: Value error, m_tt_max \(300.0\) must exceed m_tt_min"),
    ("tune", ["space={width: {low: 512, high: 32}}"], r"tune.space.width: .*low \(512.0\) must be below high"),
    ("train", ["schedule=cosine", "warmup_epochs=30", "epochs=20"],
     r"train.warmup_epochs: Value error, 30 must be below epochs \(20\)"),
])
def test_pairs_of_params_are_checked(params_file, section, overrides, message):
    with pytest.raises(ParamsError, match=message):
        load_params(params_file, section, overrides)


def test_n_train_above_the_train_split_is_refused_before_a_run_starts(small_prepared, store, tmp_path):
    from mtt.stages.train.params import TrainParams
    from mtt.stages.train.stage import TrainPaths, run_train

    paths = TrainPaths(prepared=small_prepared, reference=small_prepared.parent / "reference",
                       model=tmp_path / "models")
    with pytest.raises(TrainError, match=r"train.n_train=50000 but the train split \(.*train.parquet\) holds \d+ "
                                         r"events; give at most \d+ or 0 for all"):
        run_train(TrainParams(epochs=1, batch_size=64, width=8, depth=1, n_train=50_000), paths)
    assert not store.search_runs([e.experiment_id for e in store.search_experiments()])  # no run was started
    assert not (tmp_path / "models").exists()


# --- work that cannot finish --------------------------------------------------------------------------


def test_a_sample_too_large_to_generate_is_refused_with_the_estimate(params_file, tmp_path, capsys):
    out = tmp_path / "raw"
    err = _refused(["simulate", "--params", str(params_file), "-S", "n_events=1e12", "--out", str(out)], tmp_path,
                   capsys)
    assert "simulate.n_events" in err and "core-hours" in err and "TB" in err and "at most 100000000" in err
    assert not out.exists()
    with pytest.raises(ParamsError, match=r"simulate.zprime.n_events: .*at most 100000000"):
        load_params(params_file, "simulate", ["zprime.n_events=200000000"])
    with pytest.raises(ParamsError, match=r"simulate.events_per_chunk: .*2000000 ROOT files .*give events_per_chunk "
                                          r">= 200 \(got 1\)"):
        load_params(params_file, "simulate", ["n_events=2000000", "events_per_chunk=1"])


def test_unfolding_too_many_bins_is_refused_with_the_estimate(params_file):
    with pytest.raises(ParamsError, match=r"evaluate.n_bins: .*500 bins .*GB.*give at most 64 bins or unfold: false"):
        load_params(params_file, "evaluate", ["n_bins=500"])
    assert load_params(params_file, "evaluate", ["n_bins=500", "unfold=false"]).n_bins == 500
    assert load_params(params_file, "evaluate", ["n_bins=64"]).n_bins == 64


def test_an_integer_param_given_a_huge_float_gets_a_clear_message(params_file):
    with pytest.raises(ParamsError, match=r"simulate.seed: Input should be a valid integer \(got 1e\+20\)"):
        load_params(params_file, "simulate", ["seed=1e20"])
    with pytest.raises(ParamsError, match=r"simulate.n_events: Input should be a valid integer \(got 1.5\)"):
        load_params(params_file, "simulate", ["n_events=1.5"])
