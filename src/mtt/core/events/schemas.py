"""Input schemas: which branch holds what, as a small table, and the mapping to canonical objects.

Two layouts are known: `native` (what `mtt simulate` writes) and `nanoaod` (CMS NanoAOD, physics.md
section 7). Everything downstream sees the same canonical objects, in GeV:

- leptons: identified electrons and muons (pt, eta, phi, mass, charge, flavour 11/13), pT-ordered;
- jets: identified jets (pt, eta, phi, mass, btag score, tagged decision);
- per event: met_pt, met_phi, run, luminosityBlock, event, weight, and the truth tops when available.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np
import vector

from mtt.core.events.params import NanoAODParams

vector.register_awkward()

KINEMATICS = ("pt", "eta", "phi", "mass")
#: canonical fields that carry energy units (converted from MeV when the input says so)
ENERGY_FIELDS = frozenset({"pt", "mass", "met_pt"})
#: the last-copy bit of NanoAOD's GenPart_statusFlags
IS_LAST_COPY = 13


@dataclass(frozen=True)
class Schema:
    """Branch names of one input layout: canonical name -> branch, per object kind."""

    name: str
    electron: dict[str, str]
    muon: dict[str, str]
    jet: dict[str, str]
    event: dict[str, str]
    #: branches that may be absent (their canonical value then has a default)
    optional: frozenset[str] = frozenset()
    #: truth branches; all must be present for truth mode
    truth: dict[str, str] = field(default_factory=dict)

    def branches(self, with_truth: bool) -> list[str]:
        """Every branch this schema reads."""
        names = [*self.electron.values(), *self.muon.values(), *self.jet.values(), *self.event.values()]
        if with_truth:
            names += list(self.truth.values())
        return names

    def object_branches(self) -> list[str]:
        """The branches of the objects and MET that the selection cuts on (a NaN there fails a cut unseen)."""
        return [*self.electron.values(), *self.muon.values(), *self.jet.values(), self.event["met_pt"],
                self.event["met_phi"]]

    def required(self) -> list[str]:
        """Branches that must be in every input file."""
        return [b for b in self.branches(with_truth=False) if b not in self.optional]


def _collection(prefix: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**{k: f"{prefix}_{k}" for k in KINEMATICS}, "charge": f"{prefix}_charge", **(extra or {})}


_EVENT = {"met_pt": "MET_pt", "met_phi": "MET_phi", "run": "run", "luminosityBlock": "luminosityBlock",
          "event": "event", "weight": "genWeight"}

NATIVE = Schema(
    name="native",
    electron=_collection("Electron"),
    muon=_collection("Muon"),
    jet={**{k: f"Jet_{k}" for k in KINEMATICS}, "btag": "Jet_btag"},
    event=_EVENT,
    truth={f"{obj.lower()}_{k}": f"Gen{obj}_{k}" for obj in ("Top", "Antitop") for k in KINEMATICS},
)

NANOAOD = Schema(
    name="nanoaod",
    electron=_collection("Electron", {"id": "Electron_cutBased"}),
    muon=_collection("Muon", {"tight_id": "Muon_tightId", "loose_id": "Muon_looseId",
                              "iso": "Muon_pfRelIso04_all"}),
    jet={**{k: f"Jet_{k}" for k in KINEMATICS}, "btag": "Jet_btagDeepFlavB", "id": "Jet_jetId"},
    event=_EVENT,
    optional=frozenset({"genWeight"}),  # collision data has no generator weight
    truth={"pdg_id": "GenPart_pdgId", "status_flags": "GenPart_statusFlags",
           **{k: f"GenPart_{k}" for k in KINEMATICS}},
)

SCHEMAS = {schema.name: schema for schema in (NATIVE, NANOAOD)}


@dataclass
class Objects:
    """Canonical objects of a batch of events, in GeV."""

    leptons: ak.Array
    jets: ak.Array
    met_pt: np.ndarray
    met_phi: np.ndarray
    ids: dict[str, np.ndarray]
    weight: np.ndarray
    #: (n, 2, 4) pt, eta, phi, mass of top and antitop, or None in truth-less mode
    tops: np.ndarray | None

    def __len__(self) -> int:
        return len(self.met_pt)


def _scale(name: str, values: Any, energy_scale: float) -> Any:
    return values * energy_scale if name in ENERGY_FIELDS and energy_scale != 1.0 else values


def _record(arrays: ak.Array, mapping: dict[str, str], energy_scale: float) -> ak.Array:
    fields = {name: _scale(name, arrays[branch], energy_scale) for name, branch in mapping.items()}
    return ak.zip(fields, with_name="Momentum4D")


def _nanoaod_quality(electrons: ak.Array, muons: ak.Array, jets: ak.Array,
                     quality: NanoAODParams) -> tuple[ak.Array, ak.Array, ak.Array]:
    """Apply NanoAOD identification/isolation to leptons and jet ID; score -> tagged with the working point."""
    electrons = electrons[electrons.id >= quality.electron_id_min]
    if quality.muon_id != "none":
        muons = muons[muons[f"{quality.muon_id}_id"]]
    muons = muons[muons.iso < quality.muon_iso_max]
    jets = jets[jets.id >= quality.jet_id_min]
    jets = ak.with_field(jets, jets.btag > quality.btag_wp, "tagged")
    return electrons, muons, jets


def _native_quality(electrons: ak.Array, muons: ak.Array, jets: ak.Array) -> tuple[ak.Array, ak.Array, ak.Array]:
    """Simulated objects are already identified; the b-tag decision becomes a 0/1 score."""
    jets = ak.with_field(jets, jets.btag, "tagged")
    jets = ak.with_field(jets, ak.values_astype(jets.btag, np.float32), "btag")
    return electrons, muons, jets


def _leptons(electrons: ak.Array, muons: ak.Array) -> ak.Array:
    keep = (*KINEMATICS, "charge")

    def canonical(objects: ak.Array, flavour: int) -> ak.Array:
        fields = {k: objects[k] for k in keep}
        fields["flavour"] = ak.values_astype(ak.zeros_like(objects.charge) + flavour, np.int8)
        return ak.zip(fields, with_name="Momentum4D")

    leptons = ak.concatenate([canonical(electrons, 11), canonical(muons, 13)], axis=1)
    return leptons[ak.argsort(leptons.pt, ascending=False)]


def _native_tops(arrays: ak.Array, schema: Schema, energy_scale: float) -> np.ndarray:
    out = np.empty((len(arrays), 2, 4))
    for i, obj in enumerate(("top", "antitop")):
        for j, k in enumerate(KINEMATICS):
            out[:, i, j] = ak.to_numpy(_scale(k, arrays[schema.truth[f"{obj}_{k}"]], energy_scale))
    return out


def _nanoaod_tops(arrays: ak.Array, schema: Schema, energy_scale: float) -> np.ndarray:
    """Last copies of the top and antitop in GenPart (statusFlags bit 13); NaN where absent."""
    pdg = arrays[schema.truth["pdg_id"]]
    last = (arrays[schema.truth["status_flags"]] >> IS_LAST_COPY) & 1 == 1
    out = np.full((len(arrays), 2, 4), np.nan)
    for i, wanted in enumerate((6, -6)):
        mask = (pdg == wanted) & last
        for j, k in enumerate(KINEMATICS):
            first = ak.fill_none(ak.firsts(arrays[schema.truth[k]][mask]), np.nan)
            out[:, i, j] = _scale(k, ak.to_numpy(first).astype(np.float64), energy_scale)
    return out


def to_objects(arrays: ak.Array, schema: Schema, units: str, quality: NanoAODParams, with_truth: bool) -> Objects:
    """Map one batch of input branches to canonical objects in GeV."""
    energy_scale = 1e-3 if units == "MeV" else 1.0
    electrons = _record(arrays, schema.electron, energy_scale)
    muons = _record(arrays, schema.muon, energy_scale)
    jets = _record(arrays, schema.jet, energy_scale)
    if schema is NANOAOD:
        electrons, muons, jets = _nanoaod_quality(electrons, muons, jets, quality)
    else:
        electrons, muons, jets = _native_quality(electrons, muons, jets)
    jets = ak.zip({**{k: jets[k] for k in KINEMATICS}, "btag": jets.btag, "tagged": jets.tagged},
                  with_name="Momentum4D")
    fields = set(arrays.fields)
    weight_branch = schema.event["weight"]
    weight = ak.to_numpy(arrays[weight_branch]) if weight_branch in fields else np.ones(len(arrays))
    tops = None
    if with_truth:
        tops = (_nanoaod_tops if schema is NANOAOD else _native_tops)(arrays, schema, energy_scale)
    return Objects(
        leptons=_leptons(electrons, muons),
        jets=jets,
        met_pt=ak.to_numpy(_scale("met_pt", arrays[schema.event["met_pt"]], energy_scale)).astype(np.float64),
        met_phi=ak.to_numpy(arrays[schema.event["met_phi"]]).astype(np.float64),
        ids={k: ak.to_numpy(arrays[schema.event[k]]) for k in ("run", "luminosityBlock", "event")},
        weight=weight.astype(np.float64),
        tops=tops,
    )
