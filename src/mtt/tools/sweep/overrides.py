"""The `-S key=value` train overrides of sweeps and trials: which one is swept, which are fixed, and each value
typed like its train param and written back as `-S` text a child's `mtt train` reads as that same value."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from mtt.core.errors import ParamsError
from mtt.core.params import load_yaml
from mtt.stages.train.params import TrainParams


def split_overrides(overrides: Sequence[str]) -> tuple[str, list[str], list[str]]:
    """(param, its value texts, the fixed overrides): exactly one `-S key=a,b,...` may list several values."""
    swept = [item for item in overrides if _lists_values(item)]
    if len(swept) != 1:
        raise ParamsError("mtt sweep: give exactly one train param with comma-separated values, e.g. "
                          f"-S n_train=1e4,3e4,1e5 (got {len(swept)}: {', '.join(swept) or 'none'})")
    key, _, values = swept[0].partition("=")
    return key.strip().removeprefix("train."), values.split(","), fixed_overrides(o for o in overrides if o != swept[0])


def fixed_overrides(overrides: Iterable[str]) -> list[str]:
    """The overrides that set something: `-S epochs=` (an empty MLproject parameter) keeps params.yaml."""
    return [item for item in overrides if item.partition("=")[2].strip()]


def _lists_values(override: str) -> bool:
    """`key=a,b` lists values; a YAML list or mapping (`quantiles=[0.1,0.9]`) is one value."""
    value = override.partition("=")[2].strip()
    return "," in value and not value.startswith(("[", "{"))


def _number(value: Any) -> float | None:
    """The finite number `value` spells, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_value(param: str, text: str) -> Any:
    """A swept value typed like its train param, read as params.yaml is (YAML 1.2): `1e4` is 10000 for an integer
    param and `1e-4` is 0.0001 for a float one."""
    known = TrainParams.model_fields
    if param not in known:
        raise ParamsError(f"mtt sweep: unknown train param {param!r}; known: {', '.join(known)}")
    text = text.strip()
    if not text:
        raise ParamsError(f"mtt sweep: {param}: an empty value in the list (comma-separated, e.g. {param}=a,b)")
    try:
        value = load_yaml(text)
    except Exception:  # a YAML error or load_yaml's ParamsError: both mean "not one value"
        raise ParamsError(f"mtt sweep: {param}={text}: not a valid value") from None
    kind = known[param].annotation
    if kind not in (int, float) or isinstance(value, bool):
        return value
    number = _number(value)
    if number is None:
        raise ParamsError(f"mtt sweep: {param}={text}: train.{param} takes a number")
    if kind is float:
        return number
    if not number.is_integer():
        raise ParamsError(f"mtt sweep: {param}={text}: train.{param} takes an integer")
    return int(number)


def yaml_text(value: Any) -> str:
    """Text that `-S` (YAML) reads back as `value`: floats always with a dot (`1.0e-05`, not `1e-05`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text:
            mantissa, _, exponent = text.partition("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, str) and _reads_back(value):
        return value
    return json.dumps(value)


def _reads_back(text: str) -> bool:
    """Whether YAML reads `text` as that same string (not a number, a bool, null or a YAML error)."""
    try:
        return load_yaml(text) == text
    except Exception:  # a YAML error or load_yaml's ParamsError
        return False
