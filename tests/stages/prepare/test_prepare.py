"""The prepare stage end to end on tiny ROOT files, the real CMS NanoAOD file, and every bad input."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pandas as pd
import pytest
from root_events import branches, good_emu, write_events, write_root

from mtt.core.dataset import FEATURE_SETS, feature_columns, read_metadata
from mtt.core.dataset import NEUTRINOS as NEUTRINOS_COLUMNS
from mtt.core.errors import PrepareError
from mtt.core.events.params import PrepareParams, SelectionParams
from mtt.stages.prepare.stage import run_prepare

PARAMS = PrepareParams()
NANO = "nanoAOD_2015_CMS_Open_Data_ttbar.root"


def _variety(n: int) -> list[dict]:
    """n passing e mu events with different lepton momenta."""
    return [good_emu(electrons=[(30.0 + i % 50, 0.5, 0.01 * i, 1)]) for i in range(n)]


def _splits(folder) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(folder / f"{name}.parquet") for name in ("train", "val", "test")}


def test_outputs_metadata_and_cutflow(tmp_path):
    events = _variety(300) + [good_emu(muons=[])] * 20
    write_events(tmp_path / "a.root", events)
    metrics = run_prepare(PARAMS, [tmp_path / "a.root"], tmp_path / "out", tmp_path / "cutflow.json")
    splits = _splits(tmp_path / "out")
    assert sum(len(t) for t in splits.values()) == 300 == metrics["cutflow"]["btag"]["events"]
    assert metrics["cutflow"]["all"]["events"] == 320 and metrics["splits"]["train"] == len(splits["train"])
    assert json.loads((tmp_path / "cutflow.json").read_text())["cutflow"]["two_leptons"]["events"] == 300
    train = splits["train"]
    columns = feature_columns(PARAMS.feature_sets)  # seed, lowlevel, the rest of extended, objects, ellipse
    assert list(train.columns[: len(columns)]) == columns
    assert set(columns) == {*FEATURE_SETS["extended"], *FEATURE_SETS["objects"], *FEATURE_SETS["ellipse"]}
    assert {"m_tt", "top_pt", "top_y", "antitop_pt", "antitop_y", "run", "event", "weight", "channel"} <= set(train)
    assert set(train.channel) == {"emu"}
    meta = read_metadata(tmp_path / "out" / "train.parquet")
    assert meta["truth"] is True and meta["target"] == "m_tt" and meta["features"] == columns
    assert meta["units"]["m_ll"] == "GeV" and meta["units"]["lplus_eta"] == ""
    assert list(meta["sources"]) == [str(tmp_path / "a.root")] and len(next(iter(meta["sources"].values()))) == 64
    assert meta["selection"]["z_window"] == [76.0, 106.0]
    # m_tt from the stored tops (200, 0.5, 0, 173) and (150, -0.3, 2.5, 173), worked out with E, p by hand
    pt, eta, phi = np.array([200.0, 150.0]), np.array([0.5, -0.3]), np.array([0.0, 2.5])
    e = np.sqrt((pt * np.cosh(eta)) ** 2 + 173.0**2).sum()
    p = np.array([(pt * np.cos(phi)).sum(), (pt * np.sin(phi)).sum(), (pt * np.sinh(eta)).sum()])
    assert train.m_tt.iloc[0] == pytest.approx(np.sqrt(e**2 - p @ p), rel=1e-5)


#: a neutrino along x (pt 30, eta 0, phi 0) and an antineutrino with pz = pt (eta = asinh 1) at phi = pi/2
NEUTRINOS = ((30.0, 0.0, 0.0), (20.0, float(np.arcsinh(1.0)), float(np.pi / 2)))


def test_truth_neutrinos_are_written_in_gev_after_the_diagnostics(tmp_path):
    gev = write_events(tmp_path / "gev.root", [good_emu(neutrinos=NEUTRINOS)] * 40)
    mev = write_events(tmp_path / "mev.root", [good_emu(neutrinos=NEUTRINOS)] * 40, energy_scale=1000.0)
    run_prepare(PARAMS, [gev], tmp_path / "out")
    run_prepare(PARAMS.model_copy(update={"units": "MeV"}), [mev], tmp_path / "out_mev")
    for folder in ("out", "out_mev"):
        frame = pd.concat(_splits(tmp_path / folder).values())
        columns = list(frame.columns)
        assert columns.index("antitop_y") + 1 == columns.index("nu_px") and columns[columns.index("nu_px") + 6] == "run"
        worked = [30.0, 0.0, 0.0, 0.0, 20.0, 20.0]  # worked by hand from (pt, eta, phi)
        for column, value in zip(NEUTRINOS_COLUMNS, worked, strict=True):
            assert frame[column].to_numpy() == pytest.approx(value, abs=1e-4), column
        meta = read_metadata(tmp_path / folder / "train.parquet")
        assert meta["neutrinos"] == NEUTRINOS_COLUMNS and meta["units"]["antinu_pz"] == "GeV"


def test_files_without_neutrinos_write_no_neutrino_columns(tmp_path):
    run_prepare(PARAMS, [write_events(tmp_path / "a.root", _variety(30))], tmp_path / "out")
    assert not set(NEUTRINOS_COLUMNS) & set(pd.read_parquet(tmp_path / "out" / "train.parquet").columns)
    assert read_metadata(tmp_path / "out" / "train.parquet")["neutrinos"] == []


def test_a_mix_of_files_with_and_without_neutrinos_is_refused(tmp_path):
    with_nu = write_events(tmp_path / "a.root", [good_emu(neutrinos=NEUTRINOS)] * 10)
    without = write_events(tmp_path / "b.root", _variety(10), first_event=10)
    with pytest.raises(PrepareError, match=r"b\.root lacks the truth-neutrino branches .*GenNu_pt.*1 of 2 files"):
        run_prepare(PARAMS, [with_nu, without], tmp_path / "out")


def test_split_is_stable_when_events_are_appended(tmp_path):
    write_events(tmp_path / "a.root", _variety(400))
    run_prepare(PARAMS, [tmp_path / "a.root"], tmp_path / "first")
    write_events(tmp_path / "b.root", _variety(600), first_event=400)
    run_prepare(PARAMS, [tmp_path / "a.root", tmp_path / "b.root"], tmp_path / "second")
    first = {n: set(t.event) for n, t in _splits(tmp_path / "first").items()}
    second = {n: set(t.event) for n, t in _splits(tmp_path / "second").items()}
    for name in first:
        assert first[name] <= second[name]
    assert sum(len(s) for s in second.values()) == 1000


def test_mev_input_gives_the_same_features(tmp_path):
    write_events(tmp_path / "gev.root", _variety(50))
    write_events(tmp_path / "mev.root", _variety(50), energy_scale=1000.0)
    run_prepare(PARAMS, [tmp_path / "gev.root"], tmp_path / "gev")
    run_prepare(PARAMS.model_copy(update={"units": "MeV"}), [tmp_path / "mev.root"], tmp_path / "mev")
    gev, mev = _splits(tmp_path / "gev"), _splits(tmp_path / "mev")
    for name in gev:
        pd.testing.assert_frame_equal(gev[name], mev[name], rtol=1e-5)
    # and without the setting, MeV input shifts every energy by x1000
    run_prepare(PARAMS, [tmp_path / "mev.root"], tmp_path / "wrong")
    assert _splits(tmp_path / "wrong")["train"].m_ll.median() > 1000 * gev["train"].m_ll.median() * 0.99


def test_reads_in_steps_with_the_same_result(tmp_path):
    write_events(tmp_path / "a.root", _variety(200))
    run_prepare(PARAMS, [tmp_path / "a.root"], tmp_path / "one")
    run_prepare(PARAMS.model_copy(update={"step_size": 7}), [tmp_path / "a.root"], tmp_path / "many")
    for name, table in _splits(tmp_path / "one").items():
        pd.testing.assert_frame_equal(table, _splits(tmp_path / "many")[name])


def test_one_or_two_workers_give_the_same_bytes(tmp_path, monkeypatch):
    """Parquet (rows, row groups, metadata with relative sources) and the cutflow JSON: the same params in another
    clone, on another number of workers, write the same files."""
    (tmp_path / "raw").mkdir()
    write_events(tmp_path / "raw" / "a.root", _variety(200))
    monkeypatch.chdir(tmp_path)
    params = PARAMS.model_copy(update={"step_size": 30})
    run_prepare(params.model_copy(update={"workers": 1}), ["raw"], "one", "one.json")
    run_prepare(params.model_copy(update={"workers": 2}), [tmp_path / "raw"], tmp_path / "two", tmp_path / "two.json")
    for name in ("train.parquet", "val.parquet", "test.parquet", ".mtt-output.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()
    assert list(read_metadata(tmp_path / "two" / "train.parquet")["sources"]) == ["raw/a.root"]  # not absolute


def test_real_cms_nanoaod_runs_truthless(shared_data, tmp_path):
    """The 2015 CMS Open Data NanoAOD file: 200 events, no top quarks in GenPart (truth-less).

    Counted directly from its branches: 9 events have exactly two leptons (electrons + muons, any quality),
    4 of them are opposite-sign, and those 4 have at least two jets. The 2015 conversion carries no muon
    identification (Muon_tightId and Muon_looseId are False everywhere) and no DeepJet score
    (Jet_btagDeepFlavB = -3000), so a reading check relaxes quality and kinematic cuts: exactly those 4 pass.
    With the CMS selection (tight electrons, muon ID off as it is missing, isolation, b-tag off) no event keeps
    two good leptons: the stage stops and shows the cutflow.
    """
    nano = shared_data / NANO
    loose = PrepareParams.model_validate({
        "schema": "nanoaod",
        "nanoaod": {"electron_id_min": 0, "muon_id": "none", "muon_iso_max": 1000.0, "jet_id_min": 0},
        "selection": {"lepton_pt_lead": 0.0, "lepton_pt_min": 0.0, "lepton_eta_max": 10.0,
                      "electron_gap": None, "m_ll_min": 0.0, "z_window": None,
                      "met_min_same_flavour": 0.0, "jet_pt_min": 0.0, "jet_eta_max": 10.0,
                      "jet_lepton_dr_min": 0.0, "n_btag_min": 0},
    })
    metrics = run_prepare(loose, [nano], tmp_path / "loose")
    assert metrics["truth"] is False
    assert [metrics["cutflow"][c]["events"] for c in ("all", "two_leptons", "opposite_sign", "btag")] == [200, 9, 4, 4]
    table = pd.concat(_splits(tmp_path / "loose").values())
    assert len(table) == 4 and "m_tt" not in table and np.isfinite(table[FEATURE_SETS["extended"]]).all().all()
    assert read_metadata(tmp_path / "loose" / "train.parquet")["target"] is None

    nominal = PrepareParams.model_validate({"schema": "nanoaod", "nanoaod": {"muon_id": "none"},
                                            "selection": {"n_btag_min": 0}})
    with pytest.raises(PrepareError, match=r"no events pass the selection(.|\n)*all\s+200 (.|\n)*two_leptons\s+0 "):
        run_prepare(nominal, [nano], tmp_path / "nominal")
    assert not (tmp_path / "nominal").exists()


def test_native_file_with_nanoaod_schema_lists_missing_branches(tmp_path):
    write_events(tmp_path / "a.root", _variety(5))
    with pytest.raises(PrepareError, match=r"a.root: missing branches for schema 'nanoaod': Electron_cutBased, "
                                           r"Muon_tightId, Muon_looseId, Muon_pfRelIso04_all, Jet_btagDeepFlavB"):
        run_prepare(PARAMS.model_copy(update={"schema_name": "nanoaod"}), [tmp_path / "a.root"], tmp_path / "out")


def test_missing_branch(tmp_path):
    data = branches(_variety(5))
    del data["MET_phi"]
    write_root(tmp_path / "a.root", data)
    with pytest.raises(PrepareError, match=r"a.root: missing branches for schema 'native': MET_phi$"):
        run_prepare(PARAMS, [tmp_path / "a.root"], tmp_path / "out")


def test_missing_tree(tmp_path):
    write_events(tmp_path / "a.root", _variety(5), tree="Delphes")
    with pytest.raises(PrepareError, match=r"a.root: no tree 'Events' \(the file holds: Delphes\)"):
        run_prepare(PARAMS, [tmp_path / "a.root"], tmp_path / "out")


def test_not_a_root_file(tmp_path):
    (tmp_path / "a.root").write_text("this is not ROOT\n")
    with pytest.raises(PrepareError, match=r"a.root: not a readable ROOT file"):
        run_prepare(PARAMS, [tmp_path / "a.root"], tmp_path / "out")


def test_truncated_root_file(tmp_path):
    good = write_events(tmp_path / "good.root", _variety(2000))
    data = good.read_bytes()
    (tmp_path / "cut.root").write_bytes(data[: len(data) // 2])
    with pytest.raises(PrepareError, match=r"cut.root: (not a readable ROOT file|cannot read entries)"):
        run_prepare(PARAMS, [tmp_path / "cut.root"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_input(tmp_path):
    with pytest.raises(PrepareError, match="nowhere: input not found"):
        run_prepare(PARAMS, [tmp_path / "nowhere"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrepareError, match="folder holds no .root files"):
        run_prepare(PARAMS, [tmp_path / "empty"], tmp_path / "out")


def test_inconsistent_jagged_branches(tmp_path):
    data = branches(_variety(5))
    jets = data.pop("Jet")
    data["Jet_pt"] = jets.pt
    data["Jet_eta"] = jets.eta[:, :1]  # one jet fewer in every event
    for field in ("phi", "mass", "btag"):
        data[f"Jet_{field}"] = jets[field]
    write_root(tmp_path / "a.root", data)  # separate counters: nJet_pt, nJet_eta, ...
    with pytest.raises(PrepareError, match=r"a.root: branches Jet_pt and Jet_eta have different lengths in entry 0 "
                                           r"\(2 vs 1\); 5 such entries"):
        run_prepare(PARAMS, [tmp_path / "a.root"], tmp_path / "out")


def test_empty_selection_shows_the_cutflow(tmp_path):
    write_events(tmp_path / "a.root", [good_emu(muons=[])] * 10)
    with pytest.raises(PrepareError, match=r"no events pass the selection in 1 file\(s\):\ncut .*\nall\s+10"):
        run_prepare(PARAMS, [tmp_path / "a.root"], tmp_path / "out", tmp_path / "cutflow.json")
    assert not (tmp_path / "out").exists() and not (tmp_path / "cutflow.json").exists()


def test_nonfinite_values_are_dropped_and_counted_or_fail(tmp_path):
    """A NaN input (MET) sets the event aside before the selection, a NaN feature or target (from the tops)
    drops the selected row: each counted on its own, each bounded by prepare.max_nonfinite_fraction."""
    data = branches(_variety(1000))
    data["MET_pt"][:2] = np.nan
    data["GenTop_pt"][5] = np.inf
    write_root(tmp_path / "a.root", data)
    metrics = run_prepare(PARAMS.model_copy(update={"max_nonfinite_fraction": 0.01}), [tmp_path / "a.root"],
                          tmp_path / "out")
    assert metrics["nonfinite_inputs"] == 2 and metrics["nonfinite_inputs_by_branch"]["MET_pt"] == 2
    assert metrics["cutflow"]["finite_inputs"]["events"] == 998
    assert metrics["nonfinite_dropped"] == 1 and sum(metrics["splits"].values()) == 997
    assert metrics["nonfinite_by_column"]["m_tt"] == 1 and "met_pt" not in metrics["nonfinite_by_column"]
    with pytest.raises(PrepareError, match=r"2 of 1000 events read have NaN/inf inputs \(MET_pt 2\), more than "
                                           r"prepare.max_nonfinite_fraction = 0.001"):
        run_prepare(PARAMS, [tmp_path / "a.root"], tmp_path / "strict")
    assert not (tmp_path / "strict").exists()
    data["MET_pt"][:2] = 40.0
    data["GenTop_pt"][5:7] = np.inf
    write_root(tmp_path / "b.root", data)
    with pytest.raises(PrepareError, match=r"2 of 1000 selected events have NaN/inf values .* "
                                           r"prepare.max_nonfinite_fraction = 0.001"):
        run_prepare(PARAMS, [tmp_path / "b.root"], tmp_path / "strict")
    assert not (tmp_path / "strict").exists()


def test_selection_params_reach_the_metadata(tmp_path):
    write_events(tmp_path / "a.root", _variety(20))
    params = PARAMS.model_copy(update={"selection": SelectionParams(m_ll_min=10.0)})
    run_prepare(params, [tmp_path / "a.root"], tmp_path / "out")
    assert read_metadata(tmp_path / "out" / "test.parquet")["selection"]["m_ll_min"] == 10.0


def _nanoaod_branches(events: list[dict]) -> dict:
    """The same hand-built events in NanoAOD layout, with GenPart tops: first copies and different last copies."""
    data = branches(events)
    n = len(events)
    electron, muon, jet = data["Electron"], data["Muon"], data["Jet"]
    data["Electron"] = ak.with_field(electron, ak.values_astype(ak.ones_like(electron.charge) * 4, np.int32),
                                     "cutBased")
    for name, value in (("tightId", True), ("looseId", True)):
        muon = ak.with_field(muon, ak.values_astype(ak.ones_like(muon.charge), bool) & value, name)
    data["Muon"] = ak.with_field(muon, ak.values_astype(muon.pt * 0 + 0.05, np.float32), "pfRelIso04_all")
    jet = ak.with_field(jet, ak.where(jet.btag, np.float32(0.9), np.float32(0.01)), "btagDeepFlavB")
    data["Jet"] = ak.with_field(ak.without_field(jet, "btag"), ak.values_astype(jet.eta * 0 + 6, np.int32), "jetId")
    first, last = 1 << 7, (1 << 7) | (1 << 13)  # isHardProcess; isHardProcess + isLastCopy
    #                 pdgId  flags   pt     eta   phi   mass
    gen = [(6, first, 210.0, 0.4, 0.1, 173.0), (-6, first, 160.0, -0.2, 2.4, 173.0),
           (21, 0, 15.0, 1.0, 1.0, 0.0),
           (6, last, 200.0, 0.5, 0.0, 173.0), (-6, last, 150.0, -0.3, 2.5, 173.0)]
    data["GenPart"] = ak.zip({k: ak.values_astype(ak.Array([[g[i] for g in gen]] * n), t) for i, (k, t) in
                              enumerate((("pdgId", np.int32), ("statusFlags", np.int32), ("pt", np.float32),
                                         ("eta", np.float32), ("phi", np.float32), ("mass", np.float32)))})
    for key in [k for k in data if k.startswith(("GenTop", "GenAntitop"))] + ["genWeight"]:
        del data[key]  # genWeight is optional for NanoAOD (collision data has none)
    return data


def test_nanoaod_with_generator_tops_uses_the_last_copies(tmp_path):
    write_root(tmp_path / "nano.root", _nanoaod_branches(_variety(30)))
    params = PrepareParams.model_validate({"schema": "nanoaod"})
    metrics = run_prepare(params, [tmp_path / "nano.root"], tmp_path / "out")
    assert metrics["truth"] is True and metrics["cutflow"]["btag"]["events"] == 30
    table = pd.concat(_splits(tmp_path / "out").values())
    # the last copies (200, 0.5, 0, 173) and (150, -0.3, 2.5, 173): the same tops as the native test above
    reference = run_prepare(PARAMS, [write_events(tmp_path / "native.root", _variety(30))], tmp_path / "native")
    assert reference["truth"] is True
    native = pd.concat(_splits(tmp_path / "native").values())
    np.testing.assert_allclose(np.sort(table.m_tt), np.sort(native.m_tt), rtol=1e-6)
    assert table.weight.eq(1.0).all()
    np.testing.assert_allclose(np.sort(table.m_ll), np.sort(native.m_ll), rtol=1e-6)
