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
from mtt.stages.compare.params import StudyParams
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
    #: the configurations dvc.yaml trains and evaluates side by side, and the comparison of them
    study: StudyParams = StudyParams()
    #: where the stages read and write (dvc.yaml's `${paths.*}`, the command line's defaults)
    paths: PathsParams | None = None

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


#: section name in params.yaml -> attribute of Params
SECTIONS: dict[str, str] = {field.alias or name: name for name, field in Params.model_fields.items()}


def validate(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a whole params mapping; raise ParamsError naming every bad key (on one line)."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    params = validate_model(Params, raw, source)
    unknown = {name: preset for name, preset in params.study.configs.items()
               if preset != "none" and preset not in params.train_presets}
    if unknown:
        raise ParamsError(f"{source}: study.configs: " + "; ".join(
            f"{name}: unknown preset {preset!r}" for name, preset in unknown.items())
            + f" (train_presets: {', '.join(params.train_presets) or 'none'}; none = the train section as it stands)")
    return params


def config_changes(raw: dict[str, Any], config: str | None, changes: dict[str, Any]) -> dict[str, Any]:
    """The train section's changes for a configuration of the study: its preset under the explicit -S changes
    (`--config hybrid_mdn` trains what `study.configs.hybrid_mdn` names); none for the default left out."""
    if not config:  # left out (or empty, as `mlflow run` passes a default)
        return changes
    configs = (raw.get("study") or {}).get("configs") or StudyParams().configs
    if not isinstance(configs, dict) or config not in configs:
        known = ", ".join(configs) if isinstance(configs, dict) else "none"
        raise ParamsError(f"--config: no configuration {config!r} in study.configs (there: {known})")
    preset = configs[config]
    return changes if preset == "none" or "preset" in changes else {"preset": preset, **changes}


def load_whole(path: str | os.PathLike[str], section: str | None, changes: dict[str, Any],
               config: str | None = None) -> Params:
    """The whole file, checked, with `changes` applied to `section` and the train preset (the configuration's,
    with `config`) to the train section: what a command runs with."""
    raw = read_params_file(path)
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    configured = config_changes(raw, config, changes)  # an unknown configuration is an error for any command
    if section == "train":
        changes = configured
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
