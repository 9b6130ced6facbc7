"""The tune section of params.yaml: Optuna's search space over train params and its budget."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from mtt.core.params import Section
from mtt.stages.train.params import TrainParams


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


