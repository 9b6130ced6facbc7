"""The study document says what the pipeline measured: every generated block equals its tracked source."""

from __future__ import annotations

from pathlib import Path

from mtt.tools.studydoc.include import blocks, stale

REPO = Path(__file__).resolve().parents[1]
DOCUMENT = "docs/bias-study.md"


def test_the_study_document_holds_the_pipelines_tables_digit_for_digit() -> None:
    text = (REPO / DOCUMENT).read_text()
    assert {b.source for b in blocks(text, DOCUMENT)} >= {"reports/comparison/comparison.md"}
    assert stale(text, REPO, DOCUMENT) == [], "run `mtt study-doc docs/bias-study.md` after `dvc repro`"


def test_a_changed_figure_is_caught(tmp_path: Path) -> None:
    """The check fails on a deliberate difference: one digit of the comparison changed in a copy."""
    text = (REPO / DOCUMENT).read_text()
    table = (REPO / "reports" / "comparison" / "comparison.md").read_text()
    line = next(row for row in table.splitlines() if row.startswith("| seed_baseline | `model` |"))
    changed = text.replace(line, line.replace("| 0.", "| 9.", 1))
    assert changed != text
    assert stale(changed, REPO, DOCUMENT) == ["reports/comparison/comparison.md"]
