"""The prepare section of params.yaml: reading ROOT inputs, selection, features and splits (predict reads
new data with the same section, so it lives with the events code both share)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from mtt.core.dataset import FeatureSetName
from mtt.core.params import Section, Window, list_or_null, ordered
from mtt.core.workers import DaskParams


class SelectionParams(Section):
    """CMS-style dilepton selection (physics.md section 5); every cut is a param."""

    lepton_pt_lead: float = Field(25.0, ge=0, description="leading lepton pT (GeV), at least lepton_pt_min")
    lepton_pt_min: float = Field(20.0, ge=0, description="pT of each lepton (GeV)")
    lepton_eta_max: float = Field(2.4, gt=0, description="lepton |eta|")
    electron_gap: Window | None = Field(
        (1.4442, 1.566), strict=False, description="excluded electron |eta| range [low, high], 0 <= low < high; "
        "null: no gap (no electron excluded)")
    m_ll_min: float = Field(20.0, ge=0, description="dilepton mass (GeV)")
    z_window: Window | None = Field(
        (76.0, 106.0), strict=False, description="ee/mumu events with m_ll inside [low, high] are vetoed (GeV), "
        "0 <= low < high; null: no Z veto")
    met_min_same_flavour: float = Field(40.0, ge=0, description="MET for ee and mumu (GeV)")
    jet_pt_min: float = Field(30.0, ge=0, description="jet pT (GeV)")
    jet_eta_max: float = Field(2.4, gt=0, description="jet |eta|")
    jet_lepton_dr_min: float = Field(0.4, ge=0, description="dR(jet, selected lepton)")
    n_jets_min: int = Field(2, ge=2, description="selected jets")
    n_btag_min: int = Field(1, ge=0, le=2, description="b-tagged selected jets")
    bjet_choice: Literal["btag_then_pt", "pt"] = Field(
        "btag_then_pt", description="how the two b-jet candidates are chosen among selected jets")

    @field_validator("electron_gap", mode="before")
    @classmethod
    def _gap_or_null(cls, value: Any) -> Any:
        return list_or_null(value, "|eta|", "gap")

    @field_validator("z_window", mode="before")
    @classmethod
    def _window_or_null(cls, value: Any) -> Any:
        return list_or_null(value, "GeV", "Z veto")

    @field_validator("electron_gap", "z_window")
    @classmethod
    def _low_below_high(cls, value: tuple[float, float] | None, info: ValidationInfo) -> tuple[float, float] | None:
        unit = "|eta|" if info.field_name == "electron_gap" else "GeV"
        return None if value is None else ordered(value, unit, "; null switches it off")

    @model_validator(mode="after")
    def _leading_above_each(self) -> SelectionParams:
        if self.lepton_pt_lead < self.lepton_pt_min:
            raise ValueError(f"lepton_pt_lead: {self.lepton_pt_lead:g} GeV must be at least lepton_pt_min "
                             f"({self.lepton_pt_min:g} GeV): every selected lepton already passes lepton_pt_min")
        return self


class NanoAODParams(Section):
    """Object quality for CMS NanoAOD inputs (branch names: physics.md section 7)."""

    electron_id_min: int = Field(4, ge=0, le=4, description="Electron_cutBased >= (1 veto .. 4 tight)")
    muon_id: Literal["tight", "loose", "none"] = Field("tight", description="Muon_tightId / Muon_looseId")
    muon_iso_max: float = Field(0.15, gt=0, description="Muon_pfRelIso04_all below")
    jet_id_min: int = Field(2, ge=0, le=7, description="Jet_jetId >= (2: tight; the branch holds 0-7)")
    btag_wp: float = Field(0.2770, ge=0, le=1, description="Jet_btagDeepFlavB above (DeepJet medium WP; a score "
                           "in [0, 1])")


class SplitParams(Section):
    """Train/val/test fractions; an event's split follows from a hash of its identity."""

    train: float = Field(0.7, gt=0, lt=1)
    val: float = Field(0.15, ge=0, lt=1, description="0 writes no val split (train and evaluate's unfolding need "
                       "one)")
    test: float = Field(0.15, ge=0, lt=1, description="0 writes no test split (evaluate needs one)")

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitParams:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"train + val + test must be 1, got {total:g}")
        return self


class PrepareParams(Section):
    """Reading ROOT inputs, selection, features and splits."""

    schema_name: Literal["native", "nanoaod"] = Field(
        "native", alias="schema", description="input branch layout: native (simulate output) or nanoaod")
    units: Literal["GeV", "MeV"] = Field("GeV", description="energy unit of the input (MeV is converted)")
    tree: str = Field("Events", min_length=1, description="TTree name")
    step_size: int = Field(100_000, gt=0, description="events read per step (bounds memory per worker)")
    workers: int = Field(0, ge=0, description="worker processes; 0 means all cores")
    executor: Literal["local", "dask"] = Field(
        "local", description="local: a process pool on this machine; dask: one Dask task per read step (see "
        "`dask`); the output does not depend on it")
    dask: DaskParams = DaskParams()
    feature_sets: list[FeatureSetName] = Field(
        ["seed", "lowlevel", "extended", "objects", "ellipse"], min_length=1, description="feature sets to write")
    max_jets: int = Field(10, ge=2, le=30, description="jet slots of the objects set (leading jets by pT, padded)")
    selection: SelectionParams = SelectionParams()
    nanoaod: NanoAODParams = NanoAODParams()
    split: SplitParams = SplitParams()
    max_nonfinite_fraction: float = Field(
        0.001, ge=0, le=1, description="fail if a larger fraction of the events read have NaN/inf inputs (set aside "
        "and counted per branch, cutflow line finite_inputs), or of the selected events NaN/inf features")

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


