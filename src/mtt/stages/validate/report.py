"""The outcome of a validation: one `Check` per expectation, and the `Report` that counts and prints them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Check:
    """One expectation's outcome, flattened for reports."""

    split: str
    category: str
    expectation: str
    column: str
    success: bool
    critical: bool
    observed: Any
    why: str = ""

    def line(self) -> str:
        observed = self.observed
        if isinstance(observed, float):
            observed = f"{observed:.6g}"
        text = f"{self.split}: {self.category}: {self.column or '(table)'}: {self.expectation} observed {observed}"
        return f"{text} ({self.why})" if self.why else text


@dataclass
class Report:
    """All checks of a validation run, with counts per split."""

    checks: list[Check] = field(default_factory=list)

    def failures(self, critical: bool | None = None) -> list[Check]:
        return [c for c in self.checks if not c.success and (critical is None or c.critical == critical)]

    def summary(self) -> dict[str, Any]:
        splits: dict[str, Any] = {}
        for check in self.checks:
            entry = splits.setdefault(check.split, {"evaluated": 0, "passed": 0, "failed": 0})
            entry["evaluated"] += 1
            entry["passed" if check.success else "failed"] += 1
        by_category: dict[str, dict[str, int]] = {}
        for check in self.checks:
            entry = by_category.setdefault(check.category, {"evaluated": 0, "failed": 0})
            entry["evaluated"] += 1
            entry["failed"] += int(not check.success)
        return {"splits": splits, "categories": by_category,
                "critical_failures": len(self.failures(critical=True)),
                "warnings": len(self.failures(critical=False)),
                "failures": [c.line() for c in self.failures()]}

    def table(self) -> str:
        categories = sorted({c.category for c in self.checks})
        splits = list(dict.fromkeys(c.split for c in self.checks))
        lines = [f"{'split':12s}" + "".join(f"{c:>14s}" for c in categories)]
        for split in splits:
            cells = []
            for category in categories:
                mine = [c for c in self.checks if c.split == split and c.category == category]
                failed = sum(not c.success for c in mine)
                cells.append(f"{len(mine) - failed}/{len(mine)}" + (" FAIL" if failed else "") if mine else "-")
            lines.append(f"{split:12s}" + "".join(f"{cell:>14s}" for cell in cells))
        return "\n".join(lines)
