"""Typed params: the one place that turns params.yaml into validated objects.

Every stage reads its own section through :func:`load_params`. The whole file is checked first, so a typo in
any section stops the pipeline before work starts, with a message that names the key and what is allowed.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from mtt.core.errors import ParamsError

#: the feature sets prepare can write (mtt.core.dataset.FEATURE_SETS holds their columns; a test keeps the two equal)
FeatureSetName = Literal["seed", "lowlevel", "extended", "objects", "ellipse"]


def set_names(feature_set: str) -> list[str]:
    """The sets of a train.feature_set: one name, or several joined by '+' (e.g. `objects+ellipse`)."""
    names = [n.strip() for n in feature_set.split("+")]
    known = get_args(FeatureSetName)
    if not feature_set or any(n not in known for n in names):
        raise ValueError(f"unknown feature set {feature_set!r}; known: {', '.join(known)} (join sets with '+')")
    return names


def _whole(value: Any) -> bool:
    """A float that is exactly an integer (`1e6`): an integer param takes it as that integer."""
    return isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 2**53


class Section(BaseModel):
    """Base for params sections: unknown keys, NaN/inf and silent type coercions are errors (a whole number
    written as a float, `1e6`, is the only conversion: it is exact)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers(cls, data: Any) -> Any:
        """YAML 1.2 reads `1e6` as a float: an integer param takes it as 1000000 (1.5 stays an error)."""
        if not isinstance(data, dict):
            return data
        ints = {key for name, f in cls.model_fields.items() if f.annotation is int for key in (name, f.alias) if key}
        return {k: int(v) if k in ints and _whole(v) else v for k, v in data.items()}


def _increasing_quantiles(values: list[float]) -> list[float]:
    """Quantiles are probabilities in (0, 1), each above the one before (a repeat or an edge is a mistake)."""
    if any(not 0 < q < 1 for q in values) or any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError("quantiles must be strictly increasing and strictly between 0 and 1, e.g. [0.16, 0.5, "
                         "0.84]")
    return values


def _ordered(window: tuple[float, float], unit: str, off: str = "") -> tuple[float, float]:
    """A [low, high] window: 0 <= low < high (`off` says how to switch it off instead)."""
    low, high = window
    if not 0 <= low < high:
        raise ValueError(f"a [low, high] window in {unit} needs 0 <= low < high: low ({low:g}) must be below high "
                         f"({high:g}){off}")
    return window


def _list_or_null(value: Any, unit: str, what: str) -> Any:
    """The one spelling of a window or its off form: [low, high], or null (not `off`, `no`, `false` or text)."""
    if value is not None and not isinstance(value, list | tuple):
        raise ValueError(f"expected [low, high] in {unit}, or null to switch the {what} off")
    return value


#: a [low, high] pair of numbers, each strictly a number (a list from YAML is taken as the pair)
Window = tuple[Annotated[float, Strict()], Annotated[float, Strict()]]


#: the most events one simulate run generates, and the most ROOT files it writes: a larger sample is several runs
#: with different seeds (each its own run number); beyond these the stage would run for days with no output
MAX_EVENTS = 100_000_000
MAX_CHUNKS = 10_000
#: simulate's rate per core by level (events/s of the stage, benchmarks/RESULTS.md) and its ROOT output per event
#: (about 1.8 GB for 3.5 million parton-level events, README)
EVENTS_PER_CORE_SECOND = {"hard": 9_000, "parton": 900, "full": 100}
ROOT_BYTES_PER_EVENT = 520


def _size(n_bytes: float) -> str:
    """1.2 GB, 520 TB: a disk or memory size as people say it."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n_bytes < 1000:
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:,.0f} PB"


def generation_estimate(n_events: int, level: str = "parton") -> str:
    """What generating `n_events` costs: core-hours at the level's measured rate, and ROOT disk."""
    hours = n_events / EVENTS_PER_CORE_SECOND[level] / 3600
    return f"~{hours:,.0f} core-hours and ~{_size(n_events * ROOT_BYTES_PER_EVENT)} of ROOT files"


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


#: a Dask scheduler address: [protocol://]host:port (tcp://node12:8786, tls://..., [::1]:8786)
SCHEDULER_ADDRESS = r"^$|^([a-z]+://)?[^\s/]+:\d+$"


class DaskParams(Section):
    """Where a stage's tasks run when its executor is `dask` (one task per chunk or read step)."""

    scheduler: str = Field(
        "", pattern=SCHEDULER_ADDRESS, description="address of a running Dask scheduler (tcp://host:8786, e.g. a "
        "dask-jobqueue cluster's scheduler_address); empty: start a LocalCluster of `workers` single-threaded worker "
        "processes for the run")
    connect_timeout: float = Field(
        10.0, gt=0, le=600, description="seconds to wait for the scheduler before failing (before any work)")


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
        return _list_or_null(value, "|eta|", "gap")

    @field_validator("z_window", mode="before")
    @classmethod
    def _window_or_null(cls, value: Any) -> Any:
        return _list_or_null(value, "GeV", "Z veto")

    @field_validator("electron_gap", "z_window")
    @classmethod
    def _low_below_high(cls, value: tuple[float, float] | None, info: ValidationInfo) -> tuple[float, float] | None:
        unit = "|eta|" if info.field_name == "electron_gap" else "GeV"
        return None if value is None else _ordered(value, unit, "; null switches it off")

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


class DriftParams(Section):
    """Bounds on how far val, test or new data may sit from the train reference (beyond statistical noise)."""

    action: Literal["fail", "warn"] = Field("fail", description="what a drift failure does")
    bins: int = Field(20, ge=2, le=1000, description="equal-population bins of the train distribution (KL "
                      "divergence)")
    kl_max: float = Field(0.02, ge=0, description="KL divergence to the train histogram")
    mean_shift_max: float = Field(0.05, ge=0, description="|mean - train mean| in train standard deviations")
    std_ratio_max: float = Field(0.1, ge=0, description="|std / train std - 1|")
    quantiles: list[float] = Field([0.05, 0.25, 0.5, 0.75, 0.95], min_length=1, description="checked quantiles: "
                                   "strictly increasing, each strictly between 0 and 1")
    quantile_shift_max: float = Field(
        0.02, ge=0, le=0.5, description="|F_train(val quantile q) - q|: a quantile's shift in probability")

    _quantiles = field_validator("quantiles")(_increasing_quantiles)


class ScalingParams(Section):
    """How much transformed val/test data may leave the range the scaler maps train into."""

    minmax_outside_max: float = Field(0.01, ge=0, le=1, description="fraction outside [0, 1] (minmax)")
    z_max: float = Field(5.0, gt=0, description="|z| bound (standard, robust)")
    z_outside_max: float = Field(0.001, ge=0, le=1, description="fraction beyond z_max (standard, robust)")


class ValidateParams(Section):
    """great-expectations checks: schema, physics ranges, units, drift, scaling."""

    top_mass: float = Field(173.0, gt=100, lt=250, description="m_tt must exceed 2 top_mass - mtt_margin")
    mtt_margin: float = Field(50.0, ge=0, description="GeV below the 2 m_t threshold still allowed (less than "
                              "2 top_mass)")
    eta_max: float = Field(2.5, gt=0, description="|eta| of leptons and b jets")
    # wide on purpose: the units check is for factor-1000 mistakes (MeV read as GeV), not for physics
    lepton_pt_median: Window = Field(
        (5.0, 500.0), strict=False, description="GeV range [low, high] of the lepton pT medians (units check), "
        "0 <= low < high; no off form: the units check is critical")
    jet_pt_median: Window = Field(
        (10.0, 1000.0), strict=False, description="GeV range [low, high] of the b-jet pT medians (units check), "
        "0 <= low < high; no off form: the units check is critical")
    drift: DriftParams = DriftParams()
    scaling: ScalingParams = ScalingParams()

    @field_validator("lepton_pt_median", "jet_pt_median")
    @classmethod
    def _low_below_high(cls, value: tuple[float, float]) -> tuple[float, float]:
        return _ordered(value, "GeV")

    @model_validator(mode="after")
    def _threshold_above_zero(self) -> ValidateParams:
        if self.mtt_margin >= 2 * self.top_mass:
            raise ValueError(f"mtt_margin: {self.mtt_margin:g} GeV is at least 2 x top_mass ({2 * self.top_mass:g} "
                             "GeV), which would switch the m_tt threshold check off; give less")
        return self


class TrainParams(Section):
    """Keras regression of m_tt; every run logged to MLflow."""

    preset: str = Field("none", description="name of an overlay in `train_presets` applied on top of this section")
    feature_set: str = Field("extended", description="inputs, by name: seed, lowlevel, extended, objects, ellipse, "
                             "or sets joined by '+' (objects+ellipse)")
    architecture: Literal["dense", "set"] = Field(
        "dense", description="dense: the Dense stack on the flat features; set: a transformer over the objects "
        "(leptons, jets, MET as tokens) before the Dense stack (needs the objects set)")
    max_jets: int = Field(0, ge=0, description="jet slots of the objects set read, the leading ones by pT; 0 = all "
                          "that prepare wrote (prepare.max_jets)")
    set_dim: int = Field(64, ge=4, le=1024, description="set: width of a token (the attention model dimension)")
    set_layers: int = Field(2, ge=0, le=16, description="set: attention blocks; 0 = Deep Sets (per-object "
                            "embedding and masked mean only)")
    set_heads: int = Field(4, ge=1, le=64, description="set: attention heads; set_dim must be a multiple of it")
    scaler: Literal["minmax", "standard", "robust", "quantile"] = Field(
        "standard", description="fitted on train by validate (data/reference), checked there, built into the model")
    log_features: bool = Field(False, description="log1p of momentum-like features (pT, E, masses, HT, MET)")
    target_transform: Literal["none", "log", "standardize"] = Field("standardize", description="regress this")
    augment: list[Literal["phi_rotation", "z_reflection"]] = Field(
        [], description="training-time augmentation by the collision's symmetries: each event turned about the beam "
        "by a random angle (phi_rotation) and mirrored in z half the time (z_reflection); m_tt is unchanged")
    ensemble: int = Field(1, ge=1, le=32, description="independently initialised networks trained side by side and "
                          "combined (an MDN: the mixture of their mixtures; else their mean)")
    depth: int = Field(4, ge=1, le=64)
    width: int = Field(100, ge=1, le=8192)
    activation: Literal["relu", "elu", "gelu", "tanh", "swish"] = "relu"
    batch_norm: bool = False
    dropout: float = Field(0.0, ge=0, lt=1)
    residual: bool = False
    head: Literal["point", "mdn", "quantile"] = "point"
    loss: Literal["mse", "mae", "huber", "log_cosh"] = Field("mse", description="point head only")
    mdn_components: int = Field(5, ge=1, le=64)
    quantiles: list[float] = Field([0.16, 0.5, 0.84], min_length=1, description="quantile head: strictly "
                                   "increasing, each strictly between 0 and 1")
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = Field(1e-3, gt=0, le=10)
    schedule: Literal["constant", "reduce_on_plateau", "cosine", "exponential"] = "constant"
    warmup_epochs: int = Field(0, ge=0, description="linear warm-up before the cosine schedule (fewer than epochs)")
    batch_size: int = Field(256, ge=1, le=2**20)
    epochs: int = Field(20, ge=1, le=10_000)
    early_stopping: int = Field(0, ge=0, description="patience in epochs on val_loss; 0 = off")
    clipnorm: float = Field(0.0, ge=0, description="gradient clipping by global norm; 0 = off")
    sample_weights: Literal["none", "flat"] = Field("none", description="flat: inverse true m_tt density, clipped")
    flat_clip: float = Field(10.0, gt=1, description="largest flat weight relative to the median weight")
    n_train: int = Field(0, ge=0, description="deterministic subset of the train split; 0 = all (more than the "
                         "split holds is refused before training)")
    input: Literal["auto", "memory", "stream"] = Field(
        "auto", description="memory: numpy arrays; stream: tf.data from Parquet row groups; auto: stream if large")
    strategy: Literal["default", "mirrored", "multi_worker"] = Field(
        "default", description="tf.distribute: one device, all local GPUs, or the cluster in TF_CONFIG")
    resume: bool = Field(False, description="continue an interrupted run from its last epoch, in the same MLflow run")
    seed: int = Field(42, ge=0, lt=2**31)
    experiment: str = Field("mtt", min_length=1, description="MLflow experiment")
    registered_model: str = Field(
        "mtt-mtt", description="MLflow registered model: each run's model becomes a new version of it with alias "
        "`candidate` (`mtt promote` moves `champion`); empty = do not register")
    promote_metric: str = Field(
        "final/val_resolution", min_length=1, description="run metric `mtt promote` compares, lower is better "
        "(recorded on each registered version); the val resolution at the best epoch keeps the test split honest")

    @field_validator("feature_set")
    @classmethod
    def _known_sets(cls, value: str) -> str:
        set_names(value)  # a ValueError naming the known sets
        return value

    @field_validator("architecture")
    @classmethod
    def _set_reads_objects(cls, value: str, info: ValidationInfo) -> str:
        feature_set = info.data.get("feature_set")  # absent when it failed its own check
        if value == "set" and feature_set is not None and "objects" not in set_names(feature_set):
            raise ValueError(f"the set architecture reads leptons, jets and MET as objects, but feature_set "
                             f"{feature_set!r} has no `objects` set: use objects or objects+<other sets>")
        return value

    @field_validator("set_heads")
    @classmethod
    def _heads_divide_the_width(cls, value: int, info: ValidationInfo) -> int:
        set_dim = info.data.get("set_dim")
        if set_dim is not None and set_dim % value:
            raise ValueError(f"set_dim ({set_dim}) must be a multiple of set_heads ({value}): each head gets "
                             "set_dim / set_heads dimensions")
        return value

    _quantiles = field_validator("quantiles")(_increasing_quantiles)

    @model_validator(mode="after")
    def _warmup_before_the_end(self) -> TrainParams:
        if self.schedule == "cosine" and self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs: {self.warmup_epochs} must be below epochs ({self.epochs}): the cosine "
                             "schedule would never start its decay")
        return self


class SearchDimension(Section):
    """One train param's search range for `mtt tune`: [low, high] (log-uniform with `log`), or `choices`."""

    low: float | None = Field(None, description="lower bound, inclusive (with high)")
    high: float | None = Field(None, description="upper bound, inclusive (with low)")
    log: bool = Field(False, description="sample log-uniformly (needs low > 0)")
    choices: list[bool | int | float | str] | None = Field(None, min_length=1, description="the values to pick from")

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchDimension:
        bounds = (self.low, self.high)
        if self.choices is not None and bounds != (None, None):
            raise ValueError("give either low and high, or choices, not both")
        if self.choices is None and None in bounds:
            raise ValueError("give low and high (a range), or choices")
        if self.choices is None and self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and (self.choices is not None or self.low <= 0):
            raise ValueError("log needs a range with low > 0")
        return self

    def values(self, name: str) -> list[Any]:
        """The values to check against TrainParams: the choices, or the bounds (as int for an int param)."""
        if self.choices is not None:
            return list(self.choices)
        if TrainParams.model_fields[name].annotation is int:
            if not (float(self.low).is_integer() and float(self.high).is_integer()):
                raise ValueError(f"train.{name} is an integer: low and high must be integers")
            return [int(self.low), int(self.high)]
        return [float(self.low), float(self.high)]


def _default_space() -> dict[str, SearchDimension]:
    return {"width": SearchDimension(low=32, high=512, log=True), "depth": SearchDimension(low=2, high=8),
            "learning_rate": SearchDimension(low=1e-4, high=1e-2, log=True),
            "schedule": SearchDimension(choices=["constant", "cosine", "exponential", "reduce_on_plateau"])}


class TuneParams(Section):
    """`mtt tune`: Optuna's TPE search over train params, each trial one train + evaluate child run."""

    n_trials: int = Field(20, ge=1, le=10_000, description="trials, each one `mtt train` + `mtt evaluate` run")
    seed: int = Field(0, ge=0, lt=2**31, description="seed of the TPE sampler: the same seed proposes the same trials")
    timeout_s: float = Field(0.0, ge=0, description="start no new trial after this many seconds; 0 = no limit")
    space: dict[str, SearchDimension] = Field(
        default_factory=_default_space, min_length=1, description="train param -> its range or choices")

    @field_validator("space")
    @classmethod
    def _train_params(cls, space: dict[str, SearchDimension]) -> dict[str, SearchDimension]:
        """Each bound and choice has the train param's type and range; the rules that tie a param to others
        (architecture=set needs the objects set) depend on the trial, which fails alone if it breaks them."""
        for name, dimension in space.items():
            if name not in TrainParams.model_fields:
                raise ValueError(f"{name!r} is not a train param; known: {', '.join(TrainParams.model_fields)}")
            for value in dimension.values(name):
                try:
                    TrainParams.model_validate({name: value})
                except ValidationError as exc:
                    own = [e for e in exc.errors() if e["type"] != "value_error" or name == "feature_set"]
                    if own:
                        raise ValueError(f"{name}: {value!r} is not a valid train.{name}: {own[0]['msg']}") from None
        return space


class InjectionParams(Section):
    """The injected set: the SM test split plus Z' events, and the fit of the Z' peak in it."""

    fraction: float = Field(0.05, gt=0, lt=0.5, description="Z' share of the injected set: signal / (signal + SM)")
    bin_width: float = Field(20.0, gt=0, description="bin width (GeV) of the histograms the peak is fitted in")


#: the unfolding's error propagation (pyunfold's Adye propagation) builds a (bins^2 x bins^2) covariance of the
#: response and multiplies through it in every iteration: memory ~8 bins^4 bytes, time ~bins^5, measured 0.23 s
#: per iteration at 96 bins (7 MB and ~2 ms at 24; 11 GB and 25 s at 192; 500 bins would need 500 GB)
UNFOLD_MAX_BINS = 64
UNFOLD_SECONDS_AT_96 = 0.23
#: iterations of a typical unfolding: the KS stopping rule stopped after 5 (model) and 15 (ellipse method)
UNFOLD_TYPICAL_ITERATIONS = 15


def unfolding_estimate(n_bins: int) -> str:
    """What evaluate's unfolding costs: memory of one iteration and the time of all of it (both methods: pyunfold's
    stopping rule and result with its error propagation, ~n_bins^5; the replicas run batched in numpy, ~n_bins^2,
    and are left out)."""
    unfoldings = 2 * 2
    seconds = unfoldings * UNFOLD_TYPICAL_ITERATIONS * UNFOLD_SECONDS_AT_96 * (n_bins / 96) ** 5
    time = f"{seconds / 3600:,.0f} hours" if seconds >= 7200 else f"{max(seconds / 60, 1):.0f} min"
    return (f"a {_size(8.0 * n_bins**4)} covariance per iteration and ~{time} ({unfoldings} unfoldings x "
            f"~{UNFOLD_TYPICAL_ITERATIONS} iterations, ~n_bins^5 each)")


class EvaluateParams(Section):
    """Resolution, bias and spectrum agreement on the test split, next to the classical baselines."""

    split: Literal["test", "val"] = Field("test", description="prepared split to evaluate on")
    m_tt_min: float = Field(300.0, ge=0, description="lower edge of the m_tt histograms (GeV)")
    m_tt_max: float = Field(1500.0, gt=0, description="upper edge of the m_tt histograms (GeV)")
    n_bins: int = Field(24, ge=2, le=500, description=f"m_tt bins for spectra, chi2 and per-bin figures; at most "
                        f"{UNFOLD_MAX_BINS} with unfold: true ({unfolding_estimate(UNFOLD_MAX_BINS)}; the cost "
                        "grows as n_bins^5)")
    ellipse: bool = Field(True, description="run the ellipse-method baseline")
    m_w: float = Field(80.4, gt=0, description="W mass of the ellipse method (GeV), below m_t")
    m_t: float = Field(172.5, gt=0, description="top mass of the ellipse method (GeV)")
    max_events: int = Field(0, ge=0, description="evaluate on the first n events only; 0 = all")
    estimators: list[str] = Field(["all"], min_length=1, description="'all' that the head provides, or names: "
                                  "mdn_mode, mdn_window, mdn_mean, mdn_sample, mdn_expected, quantile, "
                                  "model_unfolded, ellipse_unfolded")
    mdn_window: float = Field(0.1, gt=0, lt=1, description="mdn_window: per event, the m_tt most probably within "
                              "this relative tolerance of the truth (0.1 = +-10%)")
    unfold: bool = Field(True, description="unfold the model's and the ellipse method's spectra (response from val)")
    unfold_ts_stopping: float = Field(1e-3, gt=0, description="stop iterating when the KS distance between "
                                      "successive unfolded spectra is below this")
    unfold_prior: Literal["smooth", "flat", "truth"] = Field(
        "smooth", description="the unfolding's starting spectrum: smooth (the val truth with its bin-to-bin "
        "fluctuations fitted away: a local quadratic in the log density), flat, or truth (the val truth histogram, "
        "whose fluctuations pass into the result)")
    unfold_max_iter: int = Field(100, ge=1, le=1000, description="at most this many unfolding iterations")
    unfold_replicas: int = Field(1000, ge=2, le=10_000, description="Poisson replicas of the observed histogram, "
                                 "and as many of the response sample, for the unfolded errors and covariance")
    unfold_min_events: int = Field(20, ge=1, description="unfolding bins: the m_tt bins merged until each holds this "
                                   "many val events")
    seed: int = Field(7, ge=0, lt=2**31, description="MDN sampling, unfolding replicas, the Z' events injected")
    zprime: InjectionParams = InjectionParams()

    @model_validator(mode="after")
    def _range(self) -> EvaluateParams:
        if self.m_tt_max <= self.m_tt_min:
            raise ValueError(f"m_tt_max ({self.m_tt_max}) must exceed m_tt_min ({self.m_tt_min})")
        if self.m_w >= self.m_t:
            raise ValueError(f"m_w: {self.m_w:g} GeV must be below m_t ({self.m_t:g} GeV): the ellipse method "
                             "decays t -> W b")
        return self

    @model_validator(mode="after")
    def _unfolding_finishes(self) -> EvaluateParams:
        if self.unfold and self.n_bins > UNFOLD_MAX_BINS:
            raise ValueError(f"n_bins: unfolding {self.n_bins} bins needs "
                             f"{unfolding_estimate(self.n_bins)}; give at most "
                             f"{UNFOLD_MAX_BINS} bins or unfold: false")
        return self

    def edges(self) -> Any:
        """The m_tt bin edges (GeV)."""
        import numpy as np

        return np.linspace(self.m_tt_min, self.m_tt_max, self.n_bins + 1)


class Params(Section):
    """All sections of params.yaml."""

    simulate: SimulateParams = SimulateParams()
    prepare: PrepareParams = PrepareParams()
    validation: ValidateParams = Field(ValidateParams(), alias="validate")  # `validate` is a pydantic method
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    #: named overlays for the train section (e.g. seed_baseline), applied by `train.preset`
    train_presets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: `mtt tune`: the search space and budget of the hyper-parameter search
    tune: TuneParams = TuneParams()

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


#: section name in params.yaml -> attribute of Params
SECTIONS: dict[str, str] = {field.alias or name: name for name, field in Params.model_fields.items()}


def model_at(path: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model reached from `root` by following an error location: field names or aliases, and
    list indices or dict keys into a container's element type (None where the path leaves the models)."""
    annotation: Any = root
    for part in path:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found = annotation.model_fields.get(part) or next(
                (f for f in annotation.model_fields.values() if f.alias == part), None)
            if found is None:
                return None
            annotation = found.annotation
        else:  # list[Row], dict[str, Column]: the element type
            args = get_args(annotation)
            if not args:
                return None
            annotation = args[-1]
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def error_location(loc: tuple[Any, ...]) -> str:
    """'rows[1].run' from ('rows', 1, 'run'); 'simulate.n_events' from ('simulate', 'n_events')."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text or "(top level)"


def allowed_keys(loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    """The keys the model at `loc` takes (by alias where it has one): what a typo is told."""
    model = model_at(loc, root)
    return ", ".join(f.alias or name for name, f in model.model_fields.items()) if model else "?"


def _code_points(text: str) -> str:
    """'U+0435 CYRILLIC SMALL LETTER IE at position 2' for each non-ASCII character of text."""
    return ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed character')} at position {i}"
                     for i, c in enumerate(text) if not c.isascii())


def spell(text: str) -> str:
    """A key as typed, with every non-ASCII character named: `n_\\u0435vents (U+0435 CYRILLIC SMALL LETTER IE at
    position 2)`, so that a lookalike letter is seen, not guessed."""
    return text if text.isascii() else f"{text.encode('ascii', 'backslashreplace').decode()} ({_code_points(text)})"


def _unknown_key(loc: tuple[Any, ...]) -> str:
    """'simulate.n_event: unknown key; allowed keys: ...; did you mean n_events?'"""
    model = model_at(loc[:-1], Params)
    known = [f.alias or name for name, f in model.model_fields.items()] if model else []
    key = str(loc[-1])
    where = f"{error_location(loc[:-1])}." if loc[:-1] else ""
    near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]}?" if near else ""
    return f"{where}{spell(key)}: unknown key; allowed keys: {', '.join(known) or '?'}{hint}"


def _got(value: Any) -> str:
    """The value a key was given, as typed (a lookalike letter named, as in keys)."""
    if isinstance(value, str) and not value.isascii():
        return f"{ascii(value)} ({_code_points(value)})"
    return repr(value)


def _describe(error: dict[str, Any]) -> str:
    """Turn one pydantic error into 'key: problem (got value)'. A check across keys names the key it blames
    first ('n_bins: ...'): the message is put on that key, with its value."""
    loc, message, value = tuple(error["loc"]), str(error["msg"]), error.get("input")
    if error["type"] == "extra_forbidden":
        return _unknown_key(loc)
    if error["type"] == "value_error" and isinstance(value, dict):
        key, sep, rest = message.removeprefix("Value error, ").partition(": ")
        model = model_at(loc, Params)
        if not (sep and model and key in {f.alias or n for n, f in model.model_fields.items()}):
            return f"{error_location(loc)}: {message}"
        loc, message = (*loc, key), f"Value error, {rest}"
        if key not in value:
            return f"{error_location(loc)}: {message}"
        value = value[key]
    if error["type"] == "bool_type" and isinstance(value, str):
        return (f"{error_location(loc)}: {message}: write true or false (got {_got(value)}; YAML 1.2 reads yes, no, "
                "on and off as text)")
    return f"{error_location(loc)}: {message} (got {_got(value)})"


def validate(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a params mapping; raise ParamsError naming every bad key (on one line)."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise ParamsError(f"{source}: invalid params: {problems}") from None


class YAMLSyntaxError(ParamsError):
    """Text that is not YAML, with the line and column of the problem."""


class StrictConstructor(SafeConstructor):
    """YAML 1.2 (ruamel.yaml's safe loader: `1:30` and `yes` are text, `1e-3` a number) without its silent
    surprises: a repeated key, or an integer with a leading zero (octal in YAML 1.1: 010 is 8), is an error
    naming the key or value and its line; a date stays text."""

    def check_mapping_key(self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any) -> bool:
        """A repeated key is an error naming both lines (YAML would keep the last one)."""
        if key in mapping:
            first = next(k for k, _ in node.value if k is not key_node and self.construct_object(k, deep=True) == key)
            raise ParamsError(f"key {key!r} appears twice (lines {first.start_mark.line + 1} and "
                              f"{key_node.start_mark.line + 1}); YAML would silently keep the last one")
        return True

    def construct_strict_int(self, node: Any) -> int:
        """An integer, but not one with a leading zero: other YAML readers (dvc -S, PyYAML) read 010 as 8."""
        text = str(node.value).replace("_", "")
        if re.fullmatch(r"[-+]?0[0-9]+", text):
            octal = f"octal ({int(text, 8)})" if re.fullmatch(r"[-+]?[0-7]+", text) else "octal or as text"
            raise ParamsError(f"{node.value!r} (line {node.start_mark.line + 1}) has a leading zero, which YAML reads "
                              f"as {octal}; write {int(text)} or quote it")
        return self.construct_yaml_int(node)


StrictConstructor.add_constructor("tag:yaml.org,2002:int", StrictConstructor.construct_strict_int)
StrictConstructor.add_constructor("tag:yaml.org,2002:timestamp", StrictConstructor.construct_yaml_str)


def _yaml_problem(exc: YAMLError) -> str:
    """One line: 'line 3, column 7: could not find expected ':''."""
    if isinstance(exc, MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return " ".join(str(exc).split())


def load_yaml(text: str) -> Any:
    """Parse YAML 1.2 with `StrictConstructor`: params.yaml, `-S` values, sweep values and report specs alike."""
    yaml = YAML(typ="safe", pure=True)
    yaml.Constructor = StrictConstructor
    try:
        return yaml.load(text)
    except YAMLError as exc:
        raise YAMLSyntaxError(f"not valid YAML: {_yaml_problem(exc)}") from None


def parse_overrides(overrides: list[str] | None, section: str) -> dict[str, Any]:
    """Parse `key=value`, `section.key=value` or `nested.key=value` overrides into a nested mapping.

    Values are read as YAML (so `5` is an int, `[1, 2]` a list); an empty value keeps params.yaml.
    """
    result: dict[str, Any] = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParamsError(f"override {item!r}: expected KEY=VALUE, e.g. n_events=500")
        if value.strip() == "":
            continue
        path = key.strip().removeprefix(f"{section}.").split(".")
        target = result
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ParamsError(f"override {item!r}: {part!r} is set both as a value and as a mapping")
        try:
            target[path[-1]] = load_yaml(value)
        except YAMLSyntaxError:
            raise ParamsError(f"override {item!r}: {key.strip()}: the value is not valid YAML (quote text: "
                              f"-S '{key.strip()}=\"...\"')") from None
        except ParamsError as exc:
            raise ParamsError(f"override {item!r}: {key.strip()}: {exc}") from None
    return result


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_params_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read params.yaml as a mapping, with a clear error when it is missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{path}: not a text file (byte {exc.start} is not UTF-8): give the params YAML file, e.g. "
                          "params.yaml") from None
    try:
        raw = load_yaml(text)
    except ParamsError as exc:  # not YAML, a repeated key, a leading zero
        raise ParamsError(f"{path}: {exc}") from None
    if raw is None:
        raise ParamsError(f"{path}: the params file is empty; every stage reads its section from it (see the "
                          "repository's params.yaml)")
    return raw


def apply_preset(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overlay `train_presets[train.preset]` on the train section (explicit -S overrides still win)."""
    train = dict(raw.get("train") or {})
    name = overrides.get("preset", train.get("preset", "none"))
    if name in (None, "none"):
        return raw
    presets = raw.get("train_presets") or {}
    if name not in presets:
        raise ParamsError(f"train.preset: unknown preset {name!r}; defined in train_presets: "
                          f"{', '.join(presets) or 'none'}")
    return {**raw, "train": {**train, **presets[name], "preset": name}}


def load_params(
    path: str | os.PathLike[str] = "params.yaml", section: str | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> Any:
    """Load and validate the params file, apply overrides to `section`, return that section (or all).

    `overrides` are `KEY=VALUE` strings, or the mapping `parse_overrides` made of them (parsed once).
    """
    raw = read_params_file(path)
    changes = overrides if isinstance(overrides, dict) else parse_overrides(overrides, section or "")
    if section == "train" and isinstance(raw, dict):
        raw = apply_preset(raw, changes)
    if section is not None:
        if section not in SECTIONS:
            raise ParamsError(f"unknown section {section!r}; known: {', '.join(SECTIONS)}")
        if not isinstance(raw, dict):
            raise ParamsError(f"{path}: expected a mapping of sections")
        raw = {**raw, section: _deep_merge(raw.get(section) or {}, changes)}
    params = validate(raw, str(path))
    return getattr(params, SECTIONS[section]) if section else params
