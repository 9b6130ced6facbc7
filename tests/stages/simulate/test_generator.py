"""Generator: Pythia settings, seeds, and the vectorised truth and prompt-lepton extraction."""

from __future__ import annotations

import numpy as np
import pytest

from mtt.stages.simulate.generator import (
    TRUTH_OBJECTS,
    FlatRecord,
    GeneratorConfig,
    GeneratorError,
    bottom_copy,
    chunk_seeds,
    extract,
    generate,
    make_pythia,
    prompt_lepton_mask,
    pythia_settings,
)


def _record(ids, status, mother1, daughters=None) -> FlatRecord:
    """A one-event FlatRecord built by hand (momenta: px = index, to see which entry was picked)."""
    n = len(ids)
    d1, d2 = zip(*(daughters or [(-1, -1)] * n), strict=True)
    return FlatRecord(n_events=1, event_of=np.zeros(n, dtype=np.int64), ids=np.array(ids),
                      status=np.array(status), mother1=np.array(mother1), daughter1=np.array(d1),
                      daughter2=np.array(d2),
                      p4={"px": np.arange(n, dtype=float), "py": np.zeros(n), "pz": np.zeros(n),
                          "e": np.ones(n)})


def test_settings_per_level():
    hard = pythia_settings(GeneratorConfig(level="hard"), 7)
    parton = pythia_settings(GeneratorConfig(level="parton"), 7)
    full = pythia_settings(GeneratorConfig(level="full"), 7)
    assert "PartonLevel:ISR = off" in hard and "HadronLevel:all = off" in hard
    assert "PartonLevel:MPI = off" in parton and "HadronLevel:all = off" in parton
    assert not any("HadronLevel" in s or "MPI" in s for s in full)
    assert "24:onIfAny = 11 13" in parton and "Random:seed = 7" in parton
    assert "Beams:eCM = 13000.0" in parton and "Top:gg2ttbar = on" in parton


def test_settings_for_lhe_skip_events():
    settings = pythia_settings(GeneratorConfig(lhe_file="/x/events.lhe"), 3, skip_lhe_events=250)
    assert "Beams:frameType = 4" in settings and "Beams:LHEF = /x/events.lhe" in settings
    assert "Beams:nSkipLHEFatInit = 250" in settings
    assert not any(s.startswith("Top:") for s in settings)


def test_unknown_level_is_an_error():
    with pytest.raises(GeneratorError, match="unknown level 'detector'"):
        pythia_settings(GeneratorConfig(level="detector"), 1)


def test_chunk_seeds_are_deterministic_distinct_and_in_pythia_range():
    seeds = [chunk_seeds(12345, i)[0] for i in range(50)]
    assert seeds == [chunk_seeds(12345, i)[0] for i in range(50)]
    assert len(set(seeds)) == 50
    assert all(1 <= s <= 900_000_000 for s in seeds)
    assert chunk_seeds(1, 0)[0] != chunk_seeds(2, 0)[0]


def test_prompt_lepton_follows_copies_up_to_the_w():
    # 0 system, 1 W+, 2 e+ (from W, radiated), 3 e+ (final copy), 4 gamma, 5 B meson, 6 e- from the B
    rec = _record(ids=[90, 24, -11, -11, 22, 511, 11], status=[-11, -22, -51, 1, 1, -91, 91],
                  mother1=[0, 0, 1, 2, 2, 0, 5])
    prompt = prompt_lepton_mask(rec, rec.status > 0)
    assert prompt.tolist() == [False, False, False, True, False, False, False]


def test_bottom_copy_follows_same_id_daughters():
    # 1 b (daughters 2 g? no: 2=b copy, 3=g), 2 b copy -> 4 b final; a W at 5 has daughters of other ids
    rec = _record(ids=[90, 5, 5, 21, 5, 24, -11, 12], status=[-11, -23, -51, 51, 51, -22, 23, 23],
                  mother1=[0, 0, 1, 1, 2, 0, 5, 5],
                  daughters=[(-1, -1), (2, 3), (4, 4), (-1, -1), (-1, -1), (6, 7), (-1, -1), (-1, -1)])
    assert bottom_copy(rec, np.array([1, 5, 6])).tolist() == [4, 5, 6]


@pytest.fixture(scope="module")
def parton_batch():
    pythia = make_pythia(pythia_settings(GeneratorConfig(level="parton"), 4242))
    return pythia.nextBatch(200)


def test_truth_mtt_equals_mhat(parton_batch):
    columns = extract(parton_batch, scan_hadronization=False)
    p4 = columns["truth_p4"]
    tt = p4[:, 0] + p4[:, 1]
    m_tt = np.sqrt(tt[:, 3] ** 2 - (tt[:, :3] ** 2).sum(axis=1))
    np.testing.assert_allclose(m_tt, np.asarray(parton_batch.info.mHat), rtol=1e-6)


def test_truth_decay_products_are_dileptonic_and_consistent(parton_batch):
    columns = extract(parton_batch, scan_hadronization=False)
    pdg = columns["truth_pdg"]
    order = {name: k for k, name in enumerate(TRUTH_OBJECTS)}
    assert set(pdg[:, order["LepPlus"]]) <= {-11, -13}
    assert set(pdg[:, order["LepMinus"]]) <= {11, 13}
    # the neutrino flavour matches its lepton partner: nu_e with e+, nubar_mu with mu-
    assert np.all(pdg[:, order["Nu"]] == -pdg[:, order["LepPlus"]] + 1)
    assert np.all(pdg[:, order["Antinu"]] == -pdg[:, order["LepMinus"]] - 1)
    # the final-state neutrinos are exactly the truth neutrinos at parton level
    p4 = columns["truth_p4"]
    nu_sum = p4[:, order["Nu"], :2] + p4[:, order["Antinu"], :2]
    np.testing.assert_allclose(columns["genmet"], nu_sum, atol=1e-6)
    # exactly two prompt leptons per event, none of them among the visible particles
    assert np.all(columns["lepton"]["n"] == 2)
    assert not np.isin(np.abs(columns["visible"]["pid"]), [12, 14, 16]).any()


def test_generate_ticks_progress_and_returns_columns():
    pythia = make_pythia(pythia_settings(GeneratorConfig(level="hard"), 5))
    ticks: list[int] = []
    columns = generate(pythia, 120, scan_hadronization=False, tick=ticks.append, batch_size=50)
    assert ticks == [50, 50, 20]
    assert columns["truth_p4"].shape == (120, 8, 4)
    assert columns["visible"]["n"].sum() == columns["visible"]["pid"].size
    # hard level: no shower, so each event's visible quarks are its two b quarks (t -> W s/d is ~0.2%)
    is_b = np.abs(columns["visible"]["pid"]) == 5
    n_b = np.bincount(np.repeat(np.arange(120), columns["visible"]["n"])[is_b], minlength=120)
    assert np.mean(n_b == 2) >= 0.97


def test_full_level_labels_heavy_quarks_before_hadronization():
    pythia = make_pythia(pythia_settings(GeneratorConfig(level="full"), 9))
    columns = generate(pythia, 20, scan_hadronization=True)
    assert columns["hf"]["n"].sum() >= 40  # at least the two b quarks of each event
    assert set(np.abs(columns["hf"]["pid"])) <= {4, 5}


def test_zprime_settings_replace_the_sm_process():
    settings = pythia_settings(GeneratorConfig(process="zprime", zprime_mass=1000.0, zprime_width=30.0), 3)
    assert "NewGaugeBoson:ffbar2gmZZprime = on" in settings and "Zprime:gmZmode = 3" in settings
    assert "32:m0 = 1000.0" in settings and "32:mWidth = 30.0" in settings and "32:onIfAny = 6" in settings
    assert not any(s.startswith("Top:") for s in settings)
    with pytest.raises(GeneratorError, match="unknown process 'wprime'"):
        pythia_settings(GeneratorConfig(process="wprime"), 1)


def test_zprime_truth_mtt_peaks_at_the_configured_mass_within_its_width():
    """A 750 GeV, 22.5 GeV wide Z': the true m_tt (the tops' mass) has its median within one width of 750.

    Pythia's Breit-Wigner is multiplied by the falling parton luminosity, so the distribution has a longer low
    tail: its median sits a little below the pole (measured 748.8 GeV on 2,000 events), its mode at the pole.
    """
    pythia = make_pythia(pythia_settings(GeneratorConfig(level="hard", process="zprime"), 11))
    columns = generate(pythia, 400, scan_hadronization=False)
    tt = columns["truth_p4"][:, 0] + columns["truth_p4"][:, 1]
    m_tt = np.sqrt(tt[:, 3] ** 2 - (tt[:, :3] ** 2).sum(axis=1))
    assert abs(np.median(m_tt) - 750.0) < 22.5
    # a Breit-Wigner holds (2/pi) atan(2) = 70.5% within +-1 full width; the falling PDFs take a little away
    assert np.mean(np.abs(m_tt - 750.0) < 22.5) > 0.6
    counts, edges = np.histogram(m_tt, bins=np.arange(600.0, 901.0, 15.0))
    assert abs(edges[np.argmax(counts)] + 7.5 - 750.0) <= 22.5
    assert set(np.abs(columns["truth_pdg"][:, 0])) == {6}
