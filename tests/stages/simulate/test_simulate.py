"""The simulate stage end to end: physics of a small real sample, reproducibility, LHE input, bad input."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import vector
from conftest import SMALL, read_events
from lhe_writer import write_lhe

import mtt.stages.simulate.stage as stage
from mtt.core.io import OUTPUT_RECORD, OutputError, file_sha256
from mtt.core.params import ParamsError
from mtt.stages.simulate.lhe import LHEError
from mtt.stages.simulate.stage import MANIFEST, plan_chunks, run_simulation
from mtt.tools.params import load_params

TOP_MASS, TOP_WIDTH = 173.0, 1.42


def _gen(events, name: str):
    return vector.zip({"pt": events[f"Gen{name}_pt"], "eta": events[f"Gen{name}_eta"],
                       "phi": events[f"Gen{name}_phi"], "mass": events[f"Gen{name}_mass"]})


def test_plan_chunks_covers_every_event_once():
    assert plan_chunks(25, 10) == [(0, 0, 10), (1, 10, 10), (2, 20, 5)]
    assert plan_chunks(10, 10) == [(0, 0, 10)]


def test_mtt_is_the_mass_of_the_stored_tops_and_above_threshold(small_sim):
    _, _, events = small_sim
    m_tt = ak.to_numpy(events.Gen_mtt)
    from_tops = ak.to_numpy((_gen(events, "Top") + _gen(events, "Antitop")).mass)
    np.testing.assert_allclose(m_tt, from_tops, rtol=2e-4)
    # tops are Breit-Wigner distributed within +-15 widths: m_tt > 2 (m_t - 15 Gamma) always,
    # and above 2 m_t - 6 Gamma for all but a per-mille tail
    assert m_tt.min() > 2 * (TOP_MASS - 15 * TOP_WIDTH)
    assert np.mean(m_tt > 2 * TOP_MASS - 6 * TOP_WIDTH) > 0.99
    # the LO 13 TeV spectrum: mean ~527 GeV, median ~475 GeV (physics.md section 3)
    assert 480 < m_tt.mean() < 580 and 440 < np.median(m_tt) < 510


def test_leptons_are_opposite_sign(small_sim):
    _, _, events = small_sim
    assert np.all(ak.to_numpy(events.GenLepPlus_pdgId) < 0) and np.all(ak.to_numpy(events.GenLepMinus_pdgId) > 0)
    charges = ak.concatenate([events.Electron_charge, events.Muon_charge], axis=1)
    two = charges[ak.num(charges) == 2]
    assert len(two) > 150
    assert ak.all(ak.sum(two, axis=1) == 0)


def test_neutrino_pt_sum_is_the_generator_met(small_sim):
    _, _, events = small_sim
    nu_sum = _gen(events, "Nu") + _gen(events, "Antinu")
    np.testing.assert_allclose(ak.to_numpy(events.GenMET_pt), ak.to_numpy(nu_sum.pt), rtol=1e-4, atol=1e-3)
    dphi = np.angle(np.exp(1j * (ak.to_numpy(events.GenMET_phi) - ak.to_numpy(nu_sum.phi))))
    assert np.max(np.abs(dphi)) < 1e-3


def test_reconstructed_met_follows_the_generator_met(small_sim):
    _, _, events = small_sim
    met = ak.to_numpy(events.MET_pt * np.exp(1j * events.MET_phi))
    gen = ak.to_numpy(events.GenMET_pt * np.exp(1j * events.GenMET_phi))
    diff = met - gen
    assert abs(diff.real.mean()) < 5 and abs(diff.imag.mean()) < 5
    assert 5 < diff.real.std() < 40


def test_lepton_and_btag_rates_follow_the_card(small_sim):
    _, _, events = small_sim
    from mtt.stages.simulate.detector import btag_efficiency

    flavour = ak.to_numpy(ak.flatten(events.Jet_hadronFlavour))
    tagged = ak.to_numpy(ak.flatten(events.Jet_btag))
    central = np.abs(ak.to_numpy(ak.flatten(events.Jet_eta))) <= 2.5
    expected = btag_efficiency(ak.to_numpy(ak.flatten(events.Jet_pt)), flavour) * central
    for value in (5, 0):
        sel = flavour == value
        p = expected[sel].mean()
        assert abs(tagged[sel].mean() - p) < 4 * np.sqrt(p * (1 - p) / sel.sum()) + 1e-3
    # about two b jets per event from the top decays
    assert 1.5 < np.sum(flavour == 5) / len(events) <= 2.3


def test_same_params_give_the_same_bytes_with_any_number_of_workers(small_sim, tmp_path):
    folder, _, reference = small_sim
    two_workers = run_simulation(SMALL.model_copy(update={"workers": 2}), tmp_path / "raw")
    assert two_workers["workers"] == 2
    again = read_events(tmp_path / "raw")
    assert reference.fields == again.fields
    for field in reference.fields:
        assert ak.array_equal(reference[field], again[field], equal_nan=True), field
    # a later run, on 2 workers: every file (ROOT headers' UUIDs and dates, the manifest) is byte-identical
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "raw").iterdir())
    for name in names:
        assert file_sha256(folder / name) == file_sha256(tmp_path / "raw" / name), name


def test_a_different_seed_gives_different_events(tmp_path):
    run_simulation(SMALL.model_copy(update={"seed": 1, "n_events": 50}), tmp_path / "a")
    run_simulation(SMALL.model_copy(update={"seed": 2, "n_events": 50}), tmp_path / "b")
    assert not np.array_equal(read_events(tmp_path / "a").Gen_mtt, read_events(tmp_path / "b").Gen_mtt)


def test_manifest_records_chunks_and_params(small_sim):
    folder, _, _ = small_sim
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["n_events"] == 600
    assert [c["file"] for c in manifest["chunks"]] == ["events_00000.root", "events_00001.root"]
    assert manifest["params"]["seed"] == SMALL.seed and manifest["detector"]["jet_radius"] == 0.4
    assert sorted(p.name for p in folder.iterdir()) == [OUTPUT_RECORD, "events_00000.root", "events_00001.root",
                                                        MANIFEST]


def test_shower_a_written_lhe_file(tmp_path, monkeypatch):
    masses = [360.0, 420.0, 500.0, 650.0, 800.0, 1200.0]
    lhe = write_lhe(tmp_path / "tt.lhe", masses)
    params = SMALL.model_copy(update={"lhe_file": str(lhe), "n_events": 100, "events_per_chunk": 4})
    monkeypatch.chdir(tmp_path)
    summary = run_simulation(params, tmp_path / "raw")
    assert json.loads((tmp_path / "raw" / MANIFEST).read_text())["lhe"]["path"] == "tt.lhe"  # no absolute path
    events = read_events(tmp_path / "raw")
    assert summary["n_events"] == len(masses) and summary["sqrt_s"] == pytest.approx(13000.0)
    # truth comes from the LHE tops: m_tt as written (float32 storage)
    np.testing.assert_allclose(ak.to_numpy(events.Gen_mtt), masses, rtol=1e-4)
    assert np.all(ak.to_numpy(events.GenLepPlus_pdgId) == -11) and np.all(ak.to_numpy(events.GenLepMinus_pdgId) == 13)
    assert len(summary["chunks"]) == 2  # 4 + 2 events, the second chunk skips the first 4


def test_shower_the_real_pythia6_tevatron_file(shared_data, tmp_path):
    params = SMALL.model_copy(update={"lhe_file": str(shared_data / "pythia6_ttbar_tevatron.lhe"),
                                      "n_events": 1000, "events_per_chunk": 60})
    summary = run_simulation(params, tmp_path / "raw")
    events = read_events(tmp_path / "raw")
    assert summary["n_events"] == 100 and summary["sqrt_s"] == pytest.approx(1960.0)
    assert np.all(ak.to_numpy(events.Gen_mtt) > 300)
    # W decays in this file are mostly hadronic: those events have no truth leptons (NaN, pdgId 0)
    no_lepton = ak.to_numpy(events.GenLepPlus_pdgId) == 0
    assert no_lepton.any() and np.all(np.isnan(ak.to_numpy(events.GenLepPlus_pt)[no_lepton]))


@pytest.mark.parametrize(("override", "message"), [
    ("n_events=0", "simulate.n_events: Input should be greater than 0"),
    ("n_events=-5", "simulate.n_events: Input should be greater than 0"),
    ("level=detector", "simulate.level: Input should be 'hard', 'parton' or 'full'"),
    ("jet_radius=2.0", "simulate.jet_radius: Input should be less than or equal to 1.5"),
    # the Dask executor's params (tests/simulate/test_dask.py runs it)
    ("executor=spark", "simulate.executor: Input should be 'local' or 'dask'"),
    ("dask.scheduler=node12", "simulate.dask.scheduler: String should match pattern"),
    ("dask.connect_timeout=0", "simulate.dask.connect_timeout: Input should be greater than 0"),
    ("dask.scheduler_address=tcp://node12:8786", "simulate.dask.scheduler_address: unknown key; allowed keys: "
                                                 "scheduler, connect_timeout"),
])
def test_bad_params_stop_before_work(tmp_path, override, message):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("simulate:\n  n_events: 10\n")
    with pytest.raises(ParamsError, match=message):
        load_params(params_file, "simulate", [override])


def test_missing_lhe_file(tmp_path):
    params = SMALL.model_copy(update={"lhe_file": str(tmp_path / "missing.lhe")})
    with pytest.raises(LHEError, match="missing.lhe: LHE file not found"):
        run_simulation(params, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_malformed_lhe_names_file_and_line(tmp_path):
    lhe = write_lhe(tmp_path / "tt.lhe", [400.0])
    lines = lhe.read_text().splitlines()
    lines[10] = " 21 -1 0 0"
    lhe.write_text("\n".join(lines) + "\n")
    with pytest.raises(LHEError, match=r"tt.lhe:11: particle line"):
        run_simulation(SMALL.model_copy(update={"lhe_file": str(lhe)}), tmp_path / "raw")


def test_unwritable_output_fails_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="cannot write in"):
        run_simulation(SMALL, blocker / "raw")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        run_simulation(SMALL, blocker)


def test_interrupted_run_leaves_the_previous_output_and_no_partial_files(tmp_path, monkeypatch):
    out = tmp_path / "raw"
    run_simulation(SMALL.model_copy(update={"n_events": 20, "events_per_chunk": 10}), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = stage.reconstruct
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second chunk is being made
        return real(*args, **kwargs)

    monkeypatch.setattr(stage, "reconstruct", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_simulation(SMALL.model_copy(update={"n_events": 40, "events_per_chunk": 10}), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no temporary folders left behind


def test_chunks_are_reconstructed_in_sub_batches(monkeypatch, tmp_path):
    monkeypatch.setattr(stage, "RECO_BATCH", 128)  # 300-event chunks: 128 + 128 + 44
    run_simulation(SMALL.model_copy(update={"n_events": 300, "workers": 2}), tmp_path / "a")
    run_simulation(SMALL.model_copy(update={"n_events": 300, "workers": 1}), tmp_path / "b")
    a, b = read_events(tmp_path / "a"), read_events(tmp_path / "b")
    assert len(a) == 300 and ak.to_numpy(a.event).tolist() == list(range(300))
    for field in a.fields:
        assert ak.array_equal(a[field], b[field], equal_nan=True), field


def test_lhe_file_ending_on_a_sub_batch_boundary(monkeypatch, tmp_path):
    monkeypatch.setattr(stage, "RECO_BATCH", 3)
    lhe = write_lhe(tmp_path / "tt.lhe", [400.0, 500.0, 600.0, 700.0, 800.0, 900.0])
    params = SMALL.model_copy(update={"lhe_file": str(lhe), "n_events": 100, "events_per_chunk": 100})
    assert run_simulation(params, tmp_path / "raw")["n_events"] == 6
