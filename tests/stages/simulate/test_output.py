"""ROOT output: the NanoAOD-style schema and crash-safe writing."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from mtt.stages.simulate.output import TREE, event_ids, write_events

JET_FIELDS = ("pt", "eta", "phi", "mass", "btag", "hadronFlavour")
LEPTON_FIELDS = ("pt", "eta", "phi", "mass", "charge")
GEN_OBJECTS = ("Top", "Antitop", "LepPlus", "LepMinus", "Nu", "Antinu", "B", "Bbar")


def test_schema_of_simulated_files(small_sim):
    folder, _, _ = small_sim
    tree = uproot.open(folder / "events_00000.root")[TREE]
    names = set(tree.keys())
    expected = {"run", "luminosityBlock", "event", "nJet", "nElectron", "nMuon", "MET_pt", "MET_phi",
                "GenMET_pt", "GenMET_phi", "Gen_mtt", "genWeight"}
    expected |= {f"Jet_{f}" for f in JET_FIELDS}
    expected |= {f"{c}_{f}" for c in ("Electron", "Muon") for f in LEPTON_FIELDS}
    expected |= {f"Gen{o}_{f}" for o in GEN_OBJECTS for f in ("pt", "eta", "phi", "mass")}
    expected |= {f"Gen{o}_pdgId" for o in ("LepPlus", "LepMinus", "Nu", "Antinu")}
    assert expected == names
    types = {name: tree[name].typename for name in names}
    assert types["Jet_pt"] == "float[]" and types["Jet_btag"] == "bool[]"
    assert types["Jet_hadronFlavour"] == "int32_t[]" and types["Muon_charge"] == "int32_t[]"
    assert types["nJet"] == "int32_t" and types["MET_pt"] == "float" and types["event"] == "uint64_t"


def test_event_identity_is_unique_and_follows_chunks(small_sim):
    _, summary, events = small_sim
    assert ak.to_numpy(events.event).tolist() == list(range(600))
    assert set(np.asarray(events.luminosityBlock)) == {0, 1}
    assert set(np.asarray(events.run)) == {summary["params"]["seed"]}


def test_write_events_round_trip(tmp_path):
    branches = {**event_ids(7, 3, 100, 2),
                "Jet": ak.zip({"pt": ak.Array([[50.0, 30.0], []]), "eta": ak.Array([[0.1, -1.0], []])}),
                "MET_pt": np.array([10.0, 20.0], dtype=np.float32)}
    path = write_events(tmp_path / "x.root", branches, "test")
    back = uproot.open(path)[TREE].arrays()
    assert back.nJet.tolist() == [2, 0] and back.Jet_pt.tolist() == [[50.0, 30.0], []]
    assert back.event.tolist() == [100, 101] and back.luminosityBlock.tolist() == [3, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["x.root"]


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(ValueError):  # uproot refuses branches of different lengths
        write_events(tmp_path / "bad.root", {"a": np.zeros(2), "b": np.zeros(3)}, "test")
    assert list(tmp_path.iterdir()) == []
