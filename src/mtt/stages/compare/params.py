"""The study section of params.yaml: the configurations the pipeline trains side by side, and their comparison."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from mtt.core.params import Section

#: a configuration's name is a folder name and a DVC stage key (`train@hybrid_mdn`)
CONFIG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


class StudyParams(Section):
    """The configurations (name -> train preset) dvc.yaml trains and evaluates, and what the comparison shows."""

    configs: dict[str, str] = Field(
        {"default": "none"}, min_length=1,
        description="configuration name -> the train preset applied over the train section (none: the section as "
                    "it stands, train.preset included); dvc.yaml runs train@<name> and evaluate@<name> for each")
    reference: str = Field("baseline_ellipse", description="the estimator every ratio is taken to")
    estimators: list[str] = Field(
        ["model", "mdn_window", "mdn_expected", "model_unfolded"], min_length=1,
        description="the estimators of each configuration in the comparison (those its head provides)")
    baselines: list[str] = Field(
        ["baseline_ellipse", "ellipse_unfolded", "baseline_visible"],
        description="the estimators that do not depend on the model, shown once")
    headline: list[str] = Field(
        ["model", "mdn_window", "mdn_expected"],
        description="the estimators whose resolution and width ratios go into the headline metrics (dvc exp show)")
    recommended: str = Field("default", description="the configuration the study recommends (its table row is "
                             "marked; `mtt predict --model models/<name>`)")

    @field_validator("configs")
    @classmethod
    def _names(cls, configs: dict[str, str]) -> dict[str, str]:
        """A name becomes a folder and a DVC stage key: letters, digits, '_' and '-', starting with a letter."""
        bad = [name for name in configs if not CONFIG_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"configuration names must match {CONFIG_NAME.pattern} (a folder and a DVC stage "
                             f"key): {', '.join(map(repr, bad))}")
        return configs

    @model_validator(mode="after")
    def _recommended(self) -> StudyParams:
        """The recommended configuration is one the pipeline runs."""
        if self.recommended not in self.configs:
            raise ValueError(f"recommended: {self.recommended!r} is not in configs ({', '.join(self.configs)})")
        return self
