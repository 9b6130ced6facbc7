"""The whole params file: every section checked before any stage starts (`mtt params` shows one)."""

from __future__ import annotations

import os
from typing import Any

from pydantic import ConfigDict, Field

from mtt.core.errors import ParamsError
from mtt.core.events.params import PrepareParams
from mtt.core.params import (
    PathsParams,
    Section,
    apply_preset,
    deep_merge,
    parse_overrides,
    read_params_file,
    validate_model,
)
from mtt.stages.evaluate.params import EvaluateParams
from mtt.stages.simulate.params import SimulateParams
from mtt.stages.train.params import TrainParams
from mtt.stages.validate.params import ValidateParams
from mtt.tools.tune_params import TuneParams


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
    #: where the stages read and write (dvc.yaml's `${paths.*}`, the command line's defaults)
    paths: PathsParams | None = None

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


#: section name in params.yaml -> attribute of Params
SECTIONS: dict[str, str] = {field.alias or name: name for name, field in Params.model_fields.items()}


def validate(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a whole params mapping; raise ParamsError naming every bad key (on one line)."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    return validate_model(Params, raw, source)


def load_whole(path: str | os.PathLike[str], section: str | None, changes: dict[str, Any]) -> Params:
    """The whole file, checked, with `changes` applied to `section` and the train preset to the train section:
    what a command runs with."""
    raw = read_params_file(path)
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    raw = apply_preset(raw, changes if section == "train" else {})
    if section is not None:
        if section not in SECTIONS:
            raise ParamsError(f"unknown section {section!r}; known: {', '.join(SECTIONS)}")
        raw = {**raw, section: deep_merge(raw.get(section) or {}, changes)}
    return validate(raw, str(path))


def load_params(path: str | os.PathLike[str] = "params.yaml", section: str | None = None,
                overrides: list[str] | dict[str, Any] | None = None) -> Any:
    """Load and check the whole params file, apply overrides to `section`, return that section (or all).

    `overrides` are `KEY=VALUE` strings, or the mapping `parse_overrides` made of them (parsed once).
    """
    changes = overrides if isinstance(overrides, dict) else parse_overrides(overrides, section or "")
    params = load_whole(path, section, changes)
    return getattr(params, SECTIONS[section]) if section else params
