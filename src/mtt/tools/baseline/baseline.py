"""`mtt baseline --check`: the working tree's DVC metrics against the ones committed at git HEAD.

A fresh clone's `dvc repro` (or anyone's after a change) must reproduce what the project committed. Figures
made from the events alone (cutflow, validation counts, the visible-mass and ellipse-method baselines) must
be equal to the last digit; figures of the trained model vary with the CPU type and thread count (see
docs/tools.md, "baseline"), so each has a relative tolerance measured from the spread over training seeds. The
rules live in baseline.yaml; the files are the metrics files dvc.yaml names and the outputs baseline.yaml's
`files` lists (the cutflows and the configurations' train and evaluate figures, which are not DVC metrics so
that `dvc exp show` stays readable).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from mtt.core import lineage
from mtt.core.errors import MttError, ValidationFailed
from mtt.core.params import load_yaml

RULES_FILE = "baseline.yaml"
#: what a rule is: a figure compared to the last digit, within a relative tolerance, or not compared
EXACT, TOLERANCE, IGNORED = "exact", "tolerance", "ignored"
#: figures the failure message names (the table shows every one)
MAX_NAMED = 20


class BaselineError(MttError):
    """A baseline.yaml, dvc.yaml or metrics file that the check cannot use, named with what to do."""


@dataclass(frozen=True)
class Rules:
    """baseline.yaml: patterns over `file:dotted.key` (fnmatch), first match wins: ignore, exact, tolerance."""

    exact: tuple[str, ...]
    tolerance: tuple[tuple[str, float], ...]
    ignore: tuple[str, ...]
    default: float | None  # relative tolerance of a figure no rule names; None: such a figure fails
    files: tuple[str, ...] = ()  # JSON outputs checked besides dvc.yaml's metrics (globs over the working tree)

    @classmethod
    def load(cls, path: Path) -> Rules:
        """Read and check baseline.yaml."""
        if not path.is_file():
            raise BaselineError(f"{path}: missing; run from the project's root or give --rules")
        try:
            raw = load_yaml(path.read_text())
        except MttError as exc:
            raise BaselineError(f"{path}: {exc}") from None
        if not isinstance(raw, dict) or not set(raw) <= {"files", "exact", "tolerance", "ignore", "default"}:
            raise BaselineError(f"{path}: expected a mapping with keys files, exact, tolerance, ignore, default")
        tolerance = raw.get("tolerance") or {}
        if not isinstance(tolerance, dict) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in tolerance.values()):
            raise BaselineError(f"{path}: tolerance must map patterns to relative tolerances >= 0")
        default = raw.get("default")
        if default is not None and (not isinstance(default, int | float) or default < 0):
            raise BaselineError(f"{path}: default must be a relative tolerance >= 0, or null (unnamed figures fail)")
        return cls(tuple(_patterns(raw, "exact", path)), tuple((str(k), float(v)) for k, v in tolerance.items()),
                   tuple(_patterns(raw, "ignore", path)), None if default is None else float(default),
                   tuple(_patterns(raw, "files", path)))

    def rule(self, figure: str) -> tuple[str, float | None]:
        """(kind, relative tolerance) of a figure: ignored, exact (0), a tolerance, or the default."""
        if any(fnmatchcase(figure, p) for p in self.ignore):
            return IGNORED, None
        if any(fnmatchcase(figure, p) for p in self.exact):
            return EXACT, 0.0
        for pattern, tolerance in self.tolerance:
            if fnmatchcase(figure, pattern):
                return TOLERANCE, tolerance
        return TOLERANCE, self.default


def _patterns(raw: dict[str, Any], key: str, path: Path) -> list[str]:
    values = raw.get(key) or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise BaselineError(f"{path}: {key} must be a list of patterns like 'reports/cutflow.json:*'")
    return values


def interpolate(text: str, params_file: Path) -> str:
    """dvc.yaml's `${paths.eval}/metrics.json` as DVC reads it: each `${dotted.key}` from params.yaml."""
    if "${" not in text:
        return text
    params = load_yaml(params_file.read_text()) if params_file.is_file() else {}

    def value(match: re.Match[str]) -> str:
        found: Any = params
        for key in match.group(1).split("."):
            if not isinstance(found, dict) or key not in found:
                raise BaselineError(f"{params_file}: no {match.group(1)} for dvc.yaml's {text}")
            found = found[key]
        return str(found)

    return re.sub(r"\$\{([^}]+)\}", value, text)


def metrics_files(dvc_yaml: Path) -> list[str]:
    """The metrics files dvc.yaml's stages name (relative to the project), in order."""
    if not dvc_yaml.is_file():
        raise BaselineError(f"{dvc_yaml}: missing; run from the project's root (the folder of dvc.yaml)")
    stages = (load_yaml(dvc_yaml.read_text()) or {}).get("stages") or {}
    files = [next(iter(entry)) if isinstance(entry, dict) else str(entry)
             for stage in stages.values() if isinstance(stage, dict) for entry in stage.get("metrics") or []]
    files = [interpolate(f, dvc_yaml.parent / "params.yaml") for f in files]
    if not files:
        raise BaselineError(f"{dvc_yaml}: no stage names metrics files; nothing to compare")
    return files


def checked_files(root: Path, rules: Rules) -> list[str]:
    """dvc.yaml's metrics files, then baseline.yaml's `files` (a glob expanded in the working tree), once each."""
    listed = [m.relative_to(root).as_posix() for pattern in rules.files for m in sorted(root.glob(pattern))
              if m.is_file()]
    return list(dict.fromkeys([*metrics_files(root / "dvc.yaml"), *listed]))


def flatten(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(`prefix.dotted.key`, leaf) of nested JSON: mappings by key, lists by index."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from flatten(item, f"{prefix}.{index}")
    else:
        yield prefix, value


def figures(text: str | None, name: str) -> dict[str, Any]:
    """`file:key` -> leaf of one metrics file's JSON text (none for a missing file)."""
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{name}: not valid JSON ({exc}); run its DVC stage again") from None
    return {f"{name}:{key[1:]}": value for key, value in flatten(data, "")}


@dataclass(frozen=True)
class Row:
    """One figure: its values at HEAD and now, the tolerance applied (0: exact), and whether it holds."""

    figure: str
    committed: Any
    now: Any
    tolerance: float | None
    ok: bool
    note: str = ""

    @property
    def identical(self) -> bool:
        return _same(self.committed, self.now)


def _same(a: Any, b: Any) -> bool:
    """Equal to the last digit (NaN equals NaN: a figure that was undefined and still is has not moved)."""
    if _number(a) and _number(b):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compare_figure(figure: str, committed: Any, now: Any, kind: str, tolerance: float | None) -> Row:
    """A figure's row: missing now fails, new is fine, exact must be equal, else |now - HEAD| <= tol |HEAD|."""
    if now is None and committed is not None:
        return Row(figure, committed, now, tolerance, False, "missing now")
    if committed is None:
        return Row(figure, committed, now, tolerance, True, "new")
    if _same(committed, now):
        return Row(figure, committed, now, tolerance, True)
    if kind == EXACT or not (_number(committed) and _number(now)):
        return Row(figure, committed, now, tolerance, False, "changed")
    if tolerance is None:
        return Row(figure, committed, now, tolerance, False, "no rule in baseline.yaml")
    moved = abs(now - committed)
    ok = moved <= tolerance * abs(committed) if committed != 0 else moved <= tolerance
    return Row(figure, committed, now, tolerance, bool(ok), "" if ok else "beyond tolerance")


def compare(root: Path, rules: Rules) -> list[Row]:
    """Every figure of the checked files: the working tree's against git HEAD's."""
    rows: list[Row] = []
    committed_any = False
    for name in checked_files(root, rules):
        path = root / name
        committed_text = lineage.committed_text(path)
        committed_any |= committed_text is not None
        if committed_text is not None and not path.is_file():
            rows.append(Row(name, "(committed)", None, None, False, "file missing now: run `dvc repro`"))
            continue
        committed = figures(committed_text, name)
        now = figures(path.read_text() if path.is_file() else None, name)
        for figure in dict.fromkeys([*committed, *now]):
            kind, tolerance = rules.rule(figure)
            if kind != IGNORED:
                rows.append(compare_figure(figure, committed.get(figure), now.get(figure), kind, tolerance))
    if not committed_any:
        raise BaselineError(f"{root}: no metrics file is committed at git HEAD; run in a git clone of the project")
    return rows


def seed_spread(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Relative standard deviation (ddof 1, over |mean|) of each numeric figure of metrics that differ only by
    training seed: what baseline.yaml's tolerances are made from."""
    import numpy as np

    flat = [dict(flatten(run, "")) for run in runs]
    spread = {}
    for key in flat[0]:
        values = [f.get(key) for f in flat]
        if all(_number(v) for v in values):
            array = np.asarray(values, dtype=np.float64)
            mean = abs(float(np.mean(array)))
            spread[key[1:]] = float(np.std(array, ddof=1)) / mean if mean > 0 else float(np.std(array, ddof=1))
    return spread


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if _number(value):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 24 else text[:21] + "..."


def table(rows: list[Row]) -> str:
    """The rows as a fixed-width table: figure, committed, now, tolerance, ok."""
    head = ("figure", "committed", "now", "tolerance", "ok")
    cells = [head] + [(r.figure, _cell(r.committed), _cell(r.now),
                       "exact" if r.tolerance == 0 else "-" if r.tolerance is None else f"{r.tolerance:.3g}",
                       "ok" if r.ok else f"NO ({r.note})") for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells)


def main(rules_path: str | Path = RULES_FILE, show_all: bool = False) -> list[Row]:
    """Print the figures that differ from HEAD (every one with show_all) and a summary; raise ValidationFailed
    naming the figures that moved beyond their tolerance."""
    rules_path = Path(rules_path)
    rows = compare(rules_path.resolve().parent, Rules.load(rules_path))
    shown = rows if show_all else [r for r in rows if not r.identical]
    if shown:
        print(table(shown))
    failed = [r.figure for r in rows if not r.ok]
    identical = sum(r.identical for r in rows)
    print(f"mtt baseline: {len(rows)} figures against git HEAD: {identical} identical, "
          f"{len(rows) - identical - len(failed)} within tolerance, {len(failed)} beyond")
    if failed:
        more = len(failed) - MAX_NAMED
        named = ", ".join(failed[:MAX_NAMED]) + (f" and {more} more" if more > 0 else "")
        raise ValidationFailed(f"{len(failed)} figure(s) moved beyond their tolerance in {rules_path}: {named}")
    return rows
