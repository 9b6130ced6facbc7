"""The simulate section of params.yaml: generation, detector response, the Z' sample."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mtt.core.params import Section, size_text
from mtt.core.workers import DaskParams

#: the most events one simulate run generates, and the most ROOT files it writes: a larger sample is several runs
#: with different seeds (each its own run number); beyond these the stage would run for days with no output
MAX_EVENTS = 100_000_000
MAX_CHUNKS = 10_000
#: simulate's rate per core by level (events/s of the stage, benchmarks/RESULTS.md) and its ROOT output per event
#: (about 1.8 GB for 3.5 million parton-level events, README)
EVENTS_PER_CORE_SECOND = {"hard": 9_000, "parton": 900, "full": 100}
ROOT_BYTES_PER_EVENT = 520


def generation_estimate(n_events: int, level: str = "parton") -> str:
    """What generating `n_events` costs: core-hours at the level's measured rate, and ROOT disk."""
    hours = n_events / EVENTS_PER_CORE_SECOND[level] / 3600
    return f"~{hours:,.0f} core-hours and ~{size_text(n_events * ROOT_BYTES_PER_EVENT)} of ROOT files"


def _feasible_events(n_events: int) -> int:
    """Refuse a sample that cannot be generated in reasonable time and disk, with the estimate."""
    if n_events > MAX_EVENTS:
        raise ValueError(f"{n_events} events would take {generation_estimate(n_events)} at level parton (~"
                         f"{EVENTS_PER_CORE_SECOND['parton']} events/s per core); give at most {MAX_EVENTS} ("
                         f"{generation_estimate(MAX_EVENTS)}), or generate several samples with different seeds")
    return n_events


class ZprimeParams(Section):
    """A Z' -> tt resonance (physics.md section 3): the prior-robustness test sample."""

    mass: float = Field(750.0, gt=350, lt=10000, description="Z' pole mass in GeV (below simulate.sqrt_s)")
    width: float = Field(22.5, gt=0, description="Z' width in GeV, forced (Pythia would compute it from couplings)")
    n_events: int = Field(20_000, gt=0, description=f"events the Z' branch of dvc.yaml generates (at most "
                          f"{MAX_EVENTS:.0e}, as simulate.n_events)")
    seed: int = Field(54321, ge=0, lt=2**31, description="master seed of the Z' branch (its run number)")

    _n_events = field_validator("n_events")(_feasible_events)



class SimulateParams(Section):
    """Pythia 8 tt -> dilepton generation and detector response."""

    process: Literal["sm", "zprime"] = Field(
        "sm", description="sm: gg/qqbar -> tt; zprime: ffbar -> Z' -> tt (settings in `zprime`)")
    zprime: ZprimeParams = ZprimeParams()
    n_events: int = Field(200_000, gt=0, description=f"events to generate (or to shower from lhe_file); at most "
                          f"{MAX_EVENTS:.0e} ({generation_estimate(MAX_EVENTS)} at level parton): a larger sample is "
                          "several runs with different seeds")
    seed: int = Field(12345, ge=0, lt=2**31, description="master seed; chunk seeds derive from it")
    sqrt_s: float = Field(13000.0, gt=0, description="centre-of-mass energy in GeV, above the tt threshold "
                          "2 x top_mass (and above zprime.mass for process zprime); ignored with lhe_file")
    level: Literal["hard", "parton", "full"] = Field(
        "parton", description="hard: no shower; parton: ISR+FSR; full: + MPI and hadronization"
    )
    lhe_file: str | None = Field(None, description="LHE file to shower instead of Pythia's tt process")
    top_mass: float = Field(173.0, gt=100, lt=250, description="generator top mass in GeV")
    events_per_chunk: int = Field(50_000, gt=0, description=f"events per ROOT file; n_events / events_per_chunk "
                                  f"files, at most {MAX_CHUNKS}")
    workers: int = Field(0, ge=0, description="worker processes; 0 means all cores")
    executor: Literal["local", "dask"] = Field(
        "local", description="local: a process pool on this machine; dask: one Dask task per chunk (see `dask`); "
        "the events do not depend on it")
    dask: DaskParams = DaskParams()
    jet_radius: float = Field(0.4, gt=0, le=1.5, description="anti-kT distance parameter R")
    jet_pt_min: float = Field(20.0, ge=0, description="minimum reconstructed jet pT in GeV")
    progress: bool = Field(True, description="show a progress bar")

    _n_events = field_validator("n_events")(_feasible_events)

    @model_validator(mode="after")
    def _one_source(self) -> SimulateParams:
        if self.process == "zprime" and self.lhe_file:
            raise ValueError("process 'zprime' and lhe_file both choose the hard process: set one of them")
        return self

    @model_validator(mode="after")
    def _above_threshold(self) -> SimulateParams:
        """Pythia cannot make a top pair (or the Z') below its mass: it fails to start or never finishes."""
        if self.lhe_file is None and self.sqrt_s <= 2 * self.top_mass:
            raise ValueError(f"sqrt_s: {self.sqrt_s:g} GeV is at or below the tt threshold 2 x top_mass = "
                             f"{2 * self.top_mass:g} GeV, where no top pair can be made; give more, e.g. 13000")
        if self.lhe_file is None and self.process == "zprime" and self.zprime.mass >= self.sqrt_s:
            raise ValueError(f"sqrt_s: {self.sqrt_s:g} GeV cannot make a Z' of mass {self.zprime.mass:g} GeV "
                             "(zprime.mass): give sqrt_s above it")
        return self

    @model_validator(mode="after")
    def _files(self) -> SimulateParams:
        files = math.ceil(self.n_events / self.events_per_chunk)
        if files > MAX_CHUNKS:
            raise ValueError(f"events_per_chunk: {self.n_events} events in chunks of {self.events_per_chunk} would "
                             f"write {files} ROOT files (at most {MAX_CHUNKS}); give events_per_chunk >= "
                             f"{math.ceil(self.n_events / MAX_CHUNKS)}")
        return self


