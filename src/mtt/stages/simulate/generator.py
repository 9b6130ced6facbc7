"""Pythia 8 generation of tt -> l+ nu b l- nubar b: settings, the event loop and columnar truth extraction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

NEUTRINOS = frozenset({12, 14, 16})
PROMPT_LEPTONS = frozenset({11, 13})
HEAVY_QUARKS = frozenset({4, 5})
PYTHIA_MAX_SEED = 900_000_000
MAX_FAILED_IN_A_ROW = 100
TOP_WIDTH = 1.42  # GeV, Pythia 8.317's top width at m_t = 173 GeV

FOUR_MOMENTUM = ("px", "py", "pz", "e")


class GeneratorError(RuntimeError):
    """Pythia could not be set up or stopped producing events."""


@dataclass(frozen=True)
class GeneratorConfig:
    """What Pythia needs to know; a chunk adds its seed and its first event."""

    level: str = "parton"
    sqrt_s: float = 13000.0
    top_mass: float = 173.0
    lhe_file: str | None = None
    process: str = "sm"
    zprime_mass: float = 750.0
    zprime_width: float = 22.5


def chunk_seeds(master_seed: int, chunk_index: int) -> tuple[int, np.random.SeedSequence]:
    """Pythia seed and detector seed sequence for one chunk: independent of how many workers run."""
    pythia_seed = int(np.random.SeedSequence([master_seed, chunk_index, 0]).generate_state(1)[0])
    return pythia_seed % PYTHIA_MAX_SEED + 1, np.random.SeedSequence([master_seed, chunk_index, 1])


def pythia_settings(cfg: GeneratorConfig, seed: int, skip_lhe_events: int = 0) -> list[str]:
    """Pythia settings strings for a chunk (physics.md section 3)."""
    settings = [
        "Print:quiet = on",
        "Next:numberCount = 0",
        "Random:setSeed = on",
        f"Random:seed = {seed}",
        f"6:m0 = {cfg.top_mass}",
        # Breit-Wigner window of +-15 widths, as MadGraph's default bwcutoff (Pythia's own range is wider)
        f"6:mMin = {cfg.top_mass - 15 * TOP_WIDTH}",
        f"6:mMax = {cfg.top_mass + 15 * TOP_WIDTH}",
        "24:onMode = off",
        "24:onIfAny = 11 13",
    ]
    if cfg.lhe_file:
        settings += ["Beams:frameType = 4", f"Beams:LHEF = {cfg.lhe_file}",
                     f"Beams:nSkipLHEFatInit = {skip_lhe_events}"]
    else:
        settings += [f"Beams:eCM = {cfg.sqrt_s}", *hard_process(cfg)]
    if cfg.level == "hard":
        settings += ["PartonLevel:ISR = off", "PartonLevel:FSR = off", "PartonLevel:MPI = off",
                     "BeamRemnants:primordialKT = off", "HadronLevel:all = off"]
    elif cfg.level == "parton":
        settings += ["PartonLevel:MPI = off", "HadronLevel:all = off"]
    elif cfg.level != "full":
        raise GeneratorError(f"simulate.level: unknown level {cfg.level!r}; allowed: hard, parton, full")
    return settings


def hard_process(cfg: GeneratorConfig) -> list[str]:
    """Pythia's own tt process, or a pure Z' decaying only to tt (its width forced, not computed)."""
    if cfg.process == "sm":
        return ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on"]
    if cfg.process != "zprime":
        raise GeneratorError(f"simulate.process: unknown process {cfg.process!r}; allowed: sm, zprime")
    return ["NewGaugeBoson:ffbar2gmZZprime = on", "Zprime:gmZmode = 3", f"32:m0 = {cfg.zprime_mass}",
            "32:doForceWidth = on", f"32:mWidth = {cfg.zprime_width}", "32:onMode = off", "32:onIfAny = 6"]


def make_pythia(settings: list[str]) -> Any:
    """An initialised, quiet Pythia instance."""
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in settings:
        if not pythia.readString(line):
            raise GeneratorError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise GeneratorError(f"Pythia failed to initialise with settings: {settings}")
    return pythia


# --- vectorised extraction from Pythia's awkward event batches ---------------------------------------

#: (object, pdgIds, mother pdgId or None): the first event-record entry that matches is the truth object.
#: Tops are their first (hard-process) copies, so m(t, tbar) = mHat. Decay products are followed to their
#: last copy (after shower recoil and their own radiation): the final neutrinos, the leptons the detector
#: sees, the b quarks before hadronization; then m(l nu) and m(l nu b) are each event's own W and top mass.
TRUTH_SELECTION = (
    ("Top", (6,), None),
    ("Antitop", (-6,), None),
    ("LepPlus", (-11, -13, -15), 24),
    ("LepMinus", (11, 13, 15), -24),
    ("Nu", (12, 14, 16), 24),
    ("Antinu", (-12, -14, -16), -24),
    ("B", (5,), 6),
    ("Bbar", (-5,), -6),
)
#: truth objects of the hard process, in the order `hard_process_truth` returns them
TRUTH_OBJECTS = tuple(name for name, _, _ in TRUTH_SELECTION)
MAX_COPIES = 50


def _isin(values: np.ndarray, choices: tuple[int, ...] | frozenset[int]) -> np.ndarray:
    return np.isin(values, np.fromiter(choices, dtype=values.dtype))


def _flat(array: ak.Array, dtype: type) -> np.ndarray:
    return ak.to_numpy(ak.flatten(array)).astype(dtype, copy=False)


def _global_or_none(local: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Event-local daughter index -> global index; 0 (no daughter) -> -1."""
    return np.where(local > 0, local + offset, -1)


@dataclass(frozen=True)
class FlatRecord:
    """A batch of event records as flat numpy arrays; `mother1` holds global indices."""

    n_events: int
    event_of: np.ndarray
    ids: np.ndarray
    status: np.ndarray
    mother1: np.ndarray
    daughter1: np.ndarray
    daughter2: np.ndarray
    p4: dict[str, np.ndarray]

    @classmethod
    def from_batch(cls, prt: ak.Array) -> FlatRecord:
        counts = ak.to_numpy(ak.num(prt)).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        event_of = np.repeat(np.arange(counts.size), counts)
        return cls(
            n_events=counts.size,
            event_of=event_of,
            ids=_flat(prt.id, np.int32),
            status=_flat(prt.status, np.int32),
            mother1=_flat(prt.mother1, np.int64) + offsets[event_of],
            daughter1=_global_or_none(_flat(prt.daughter1, np.int64), offsets[event_of]),
            daughter2=_global_or_none(_flat(prt.daughter2, np.int64), offsets[event_of]),
            p4={k: _flat(prt.p[k], np.float64) for k in FOUR_MOMENTUM},
        )

    def particles(self, mask: np.ndarray) -> dict[str, np.ndarray]:
        """(counts per event, pid, px, py, pz, e) of the masked entries."""
        idx = np.flatnonzero(mask)
        return {"n": np.bincount(self.event_of[idx], minlength=self.n_events).astype(np.int64),
                "pid": self.ids[idx], **{k: v[idx] for k, v in self.p4.items()}}


def prompt_lepton_mask(rec: FlatRecord, final: np.ndarray) -> np.ndarray:
    """Final-state e/mu that descend from a W through copies of themselves (i.e. after their own FSR)."""
    candidates = np.flatnonzero(final & _isin(np.abs(rec.ids), PROMPT_LEPTONS))
    own_id = rec.ids[candidates]
    mother = rec.mother1[candidates]
    for _ in range(MAX_COPIES):
        same = rec.ids[mother] == own_id
        if not same.any():
            break
        mother = np.where(same, rec.mother1[mother], mother)
    prompt = np.zeros(rec.ids.size, dtype=bool)
    prompt[candidates] = np.abs(rec.ids[mother]) == 24
    return prompt


def bottom_copy(rec: FlatRecord, index: np.ndarray) -> np.ndarray:
    """Last copy of each particle: follow the daughter with the same id (shower recoil, own radiation)."""
    index = index.copy()
    own_id = rec.ids[index]
    for _ in range(MAX_COPIES):
        d1, d2 = rec.daughter1[index], rec.daughter2[index]
        next_copy = np.where((d1 >= 0) & (rec.ids[d1] == own_id), d1,
                             np.where((d2 >= 0) & (rec.ids[d2] == own_id), d2, -1))
        moved = next_copy >= 0
        if not moved.any():
            break
        index = np.where(moved, next_copy, index)
    return index


def hard_process_truth(rec: FlatRecord) -> tuple[np.ndarray, np.ndarray]:
    """(n, 8, 4) four-momenta and (n, 8) pdgIds of t, tbar, l+, l-, nu, nubar, b, bbar.

    Objects absent from an event (a hadronic W from an LHE file) are NaN with pdgId 0.
    """
    mother_id = rec.ids[rec.mother1]
    p4 = np.full((rec.n_events, len(TRUTH_SELECTION), 4), np.nan)
    pdg = np.zeros((rec.n_events, len(TRUTH_SELECTION)), dtype=np.int32)
    for k, (_, choices, mother) in enumerate(TRUTH_SELECTION):
        mask = _isin(rec.ids, choices)
        if mother is not None:
            mask &= mother_id == mother
        idx = np.flatnonzero(mask)
        events, first = np.unique(rec.event_of[idx], return_index=True)
        chosen = idx[first] if mother is None else bottom_copy(rec, idx[first])
        for j, comp in enumerate(FOUR_MOMENTUM):
            p4[events, k, j] = rec.p4[comp][chosen]
        pdg[events, k] = rec.ids[chosen]
    return p4, pdg


def extract(batch: ak.Array, scan_hadronization: bool) -> dict[str, Any]:
    """Columns of one batch: truth, generator MET, visible final state, prompt leptons, heavy quarks."""
    rec = FlatRecord.from_batch(batch.prt)
    abs_id = np.abs(rec.ids)
    final = rec.status > 0
    is_nu = final & _isin(abs_id, NEUTRINOS)
    prompt = prompt_lepton_mask(rec, final)
    truth_p4, truth_pdg = hard_process_truth(rec)
    genmet = np.stack([np.bincount(rec.event_of[is_nu], weights=rec.p4[c][is_nu], minlength=rec.n_events)
                       for c in ("px", "py")], axis=1)
    if scan_hadronization:
        # last heavy-quark copies before string fragmentation (status -71..-79) label jet flavour
        hf_mask = _isin(abs_id, HEAVY_QUARKS) & (rec.status <= -71) & (rec.status >= -79)
    else:
        hf_mask = np.zeros(rec.ids.size, dtype=bool)
    return {
        "weight": ak.to_numpy(batch.info.weights[:, 0]).astype(np.float64),
        "truth_p4": truth_p4,
        "truth_pdg": truth_pdg,
        "genmet": genmet,
        "visible": rec.particles(final & ~is_nu & ~prompt),
        "lepton": rec.particles(prompt),
        "hf": rec.particles(hf_mask),
    }


def concatenate(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Join the columns of several batches."""
    out: dict[str, Any] = {}
    for key, value in parts[0].items():
        if isinstance(value, dict):
            out[key] = {k: np.concatenate([p[key][k] for p in parts]) for k in value}
        else:
            out[key] = np.concatenate([p[key] for p in parts])
    return out


def generate(
    pythia: Any, n_events: int, scan_hadronization: bool, tick: Callable[[int], None] | None = None,
    batch_size: int = 500,
) -> dict[str, Any] | None:
    """Run `n_events` events in batches (fewer if an LHE file ends); their columns, None if it had ended."""
    parts: list[dict[str, Any]] = []
    done = empty_in_a_row = 0
    info = pythia.infoPython()
    while done < n_events:
        batch = pythia.nextBatch(min(batch_size, n_events - done))
        if len(batch) == 0:
            if info.atEndOfFile():
                break
            empty_in_a_row += 1
            if empty_in_a_row >= MAX_FAILED_IN_A_ROW:
                raise GeneratorError(f"Pythia failed {MAX_FAILED_IN_A_ROW} batches in a row; giving up")
            continue
        empty_in_a_row = 0
        parts.append(extract(batch, scan_hadronization))
        done += len(batch)
        if tick is not None:
            tick(len(batch))
        if info.atEndOfFile():
            break
    return concatenate(parts) if parts else None
