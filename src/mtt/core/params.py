"""The params base every section is built on: strict sections, YAML 1.2, `-S` overrides, one-line errors.

Each stage declares its own section (`mtt/stages/<stage>/params.py`), so a stage's DVC code deps are its
own params and this base. `mtt.tools.params` assembles the whole file, which the command line checks before
any stage starts: a typo in any section stops the pipeline before work starts, naming the key.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import BaseModel, ConfigDict, Strict, ValidationError, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from mtt.core.errors import ParamsError


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


def increasing_quantiles(values: list[float]) -> list[float]:
    """Quantiles are probabilities in (0, 1), each above the one before (a repeat or an edge is a mistake)."""
    if any(not 0 < q < 1 for q in values) or any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError("quantiles must be strictly increasing and strictly between 0 and 1, e.g. [0.16, 0.5, "
                         "0.84]")
    return values


def ordered(window: tuple[float, float], unit: str, off: str = "") -> tuple[float, float]:
    """A [low, high] window: 0 <= low < high (`off` says how to switch it off instead)."""
    low, high = window
    if not 0 <= low < high:
        raise ValueError(f"a [low, high] window in {unit} needs 0 <= low < high: low ({low:g}) must be below high "
                         f"({high:g}){off}")
    return window


def list_or_null(value: Any, unit: str, what: str) -> Any:
    """The one spelling of a window or its off form: [low, high], or null (not `off`, `no`, `false` or text)."""
    if value is not None and not isinstance(value, list | tuple):
        raise ValueError(f"expected [low, high] in {unit}, or null to switch the {what} off")
    return value


#: a [low, high] pair of numbers, each strictly a number (a list from YAML is taken as the pair)
Window = tuple[Annotated[float, Strict()], Annotated[float, Strict()]]


def size_text(n_bytes: float) -> str:
    """1.2 GB, 520 TB: a disk or memory size as people say it."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n_bytes < 1000:
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:,.0f} PB"



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


def _unknown_key(loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    """'simulate.n_event: unknown key; allowed keys: ...; did you mean n_events?'"""
    model = model_at(loc[:-1], root)
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


def _describe(error: dict[str, Any], root: type[BaseModel]) -> str:
    """Turn one pydantic error into 'key: problem (got value)'. A check across keys names the key it blames
    first ('n_bins: ...'): the message is put on that key, with its value."""
    loc, message, value = tuple(error["loc"]), str(error["msg"]), error.get("input")
    if error["type"] == "extra_forbidden":
        return _unknown_key(loc, root)
    if error["type"] == "value_error" and isinstance(value, dict):
        key, sep, rest = message.removeprefix("Value error, ").partition(": ")
        model = model_at(loc, root)
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



def validate_model(model: type[BaseModel], raw: Any, source: str) -> Any:
    """Validate `raw` as `model`; raise ParamsError naming every bad key and what it got, on one line."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(err, model) for err in exc.errors())
        raise ParamsError(f"{source}: invalid params: {problems}") from None


class PathsParams(Section):
    """Where the pipeline's stages read and write: the one default of every path option, which dvc.yaml reads too
    (`${paths.prepared}`) and the command line falls back to."""

    raw: str
    raw_zprime: str
    prepared: str
    prepared_zprime: str
    cutflow: str
    cutflow_zprime: str
    reference: str
    validation: str
    data_docs: str
    #: roots of the configurations' outputs: models/<config>, checkpoints/<config>, study/<config>/{train.json,
    #: history.csv, eval/}
    models: str
    checkpoints: str
    study: str
    #: the compare stage's table and figures, and its headline metrics (dvc exp show's first columns)
    comparison: str
    headline: str


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


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
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


