"""Typed params: the one place that turns params.yaml into validated objects.

Every stage reads its own section through :func:`load_params`. The whole file is checked first, so a typo in
any section stops the pipeline before work starts, with a message that names the key and what is allowed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ParamsError(ValueError):
    """A params.yaml problem, reported with the offending key."""


class Section(BaseModel):
    """Base for params sections: unknown keys and silent type coercions are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SimulateParams(Section):
    """Pythia 8 tt -> dilepton generation and detector response."""

    n_events: int = Field(200_000, gt=0, description="events to generate (or to shower from lhe_file)")
    seed: int = Field(12345, ge=0, lt=2**31, description="master seed; chunk seeds derive from it")
    sqrt_s: float = Field(13000.0, gt=0, description="centre-of-mass energy in GeV (ignored with lhe_file)")
    level: Literal["hard", "parton", "full"] = Field(
        "parton", description="hard: no shower; parton: ISR+FSR; full: + MPI and hadronization"
    )
    lhe_file: str | None = Field(None, description="LHE file to shower instead of Pythia's tt process")
    top_mass: float = Field(173.0, gt=100, lt=250, description="generator top mass in GeV")
    events_per_chunk: int = Field(10_000, gt=0, description="events per ROOT file")
    workers: int = Field(0, ge=0, description="worker processes; 0 means all cores")
    jet_radius: float = Field(0.4, gt=0, le=1.5, description="anti-kT distance parameter R")
    jet_pt_min: float = Field(20.0, ge=0, description="minimum reconstructed jet pT in GeV")
    progress: bool = Field(True, description="show a progress bar")


class Params(Section):
    """All sections of params.yaml."""

    simulate: SimulateParams = SimulateParams()


SECTIONS: dict[str, type[Section]] = {
    name: field.annotation for name, field in Params.model_fields.items()  # type: ignore[misc]
}


def _describe(error: dict[str, Any], section_name: str | None) -> str:
    """Turn one pydantic error into 'key: problem (got value)'."""
    loc = ".".join(str(part) for part in error["loc"])
    key = f"{section_name}.{loc}" if section_name else loc
    if error["type"] == "extra_forbidden":
        section_cls = SECTIONS.get(section_name or str(error["loc"][0]))
        allowed = ", ".join(section_cls.model_fields) if section_cls else ", ".join(SECTIONS)
        if section_name is None and len(error["loc"]) == 1:
            allowed = ", ".join(SECTIONS)
        return f"{key}: unknown key; allowed keys: {allowed}"
    return f"{key}: {error['msg']} (got {error.get('input')!r})"


def validate(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a params mapping; raise ParamsError naming every bad key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(err, None) for err in exc.errors())
        raise ParamsError(f"{source}: invalid params:\n  {problems}") from None


def parse_overrides(overrides: list[str] | None, section: str) -> dict[str, Any]:
    """Parse `key=value` (or `section.key=value`) overrides; an empty value keeps params.yaml."""
    result: dict[str, Any] = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParamsError(f"override {item!r}: expected KEY=VALUE, e.g. n_events=500")
        key = key.strip().removeprefix(f"{section}.")
        if "." in key:
            raise ParamsError(f"override {item!r}: key must belong to section {section!r}")
        if value.strip() == "":
            continue
        result[key] = yaml.safe_load(value)
    return result


def read_params_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read params.yaml as a mapping, with a clear error when it is missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    return raw


def load_params(
    path: str | os.PathLike[str] = "params.yaml", section: str | None = None, overrides: list[str] | None = None
) -> Any:
    """Load and validate the params file, apply overrides to `section`, return that section (or all)."""
    raw = read_params_file(path)
    if section is not None:
        if section not in SECTIONS:
            raise ParamsError(f"unknown section {section!r}; known: {', '.join(SECTIONS)}")
        if not isinstance(raw, dict):
            raise ParamsError(f"{path}: expected a mapping of sections")
        merged = dict(raw.get(section) or {})
        merged.update(parse_overrides(overrides, section))
        raw = {**raw, section: merged}
    params = validate(raw, str(path))
    return getattr(params, section) if section else params
