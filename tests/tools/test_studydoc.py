"""A document's generated blocks: filled from their sources, and a stale or broken one named."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtt.cli import main as cli
from mtt.tools.studydoc.include import StudyDocError, filled, main, stale

DOC = """# Study

Text by hand, 0.75 by hand.

<!-- include: out/table.md -->
| old | table |
<!-- end include -->

More text.
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "table.md").write_text("| a | b |\n|---|---|\n| 1 | 0.612 |\n")
    (tmp_path / "doc.md").write_text(DOC)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_block_gets_its_source_and_the_hand_written_text_stays(project: Path) -> None:
    text = filled(DOC, project, "doc.md")
    assert "| 1 | 0.612 |\n<!-- end include -->" in text and "| old |" not in text
    assert text.startswith("# Study\n\nText by hand, 0.75 by hand.") and text.endswith("More text.\n")
    assert stale(text, project, "doc.md") == []


def test_check_names_a_stale_block_and_changes_nothing(project: Path) -> None:
    with pytest.raises(StudyDocError, match=r"1 block\(s\) differ.*doc.md: out/table.md; run `mtt study-doc doc.md`"):
        main(["doc.md"], project, check=True)
    assert (project / "doc.md").read_text() == DOC
    assert cli(["study-doc", "--check", "doc.md"]) == 2
    assert cli(["study-doc", "doc.md"]) == 0 and cli(["study-doc", "--check", "doc.md"]) == 0


def test_a_number_changed_in_the_source_makes_the_document_stale(project: Path) -> None:
    main(["doc.md"], project)
    (project / "out" / "table.md").write_text("| a | b |\n|---|---|\n| 1 | 0.613 |\n")
    assert main(["doc.md"], project, check=False) == ["doc.md: out/table.md"]


def test_an_unclosed_block_and_a_missing_source_are_named(project: Path) -> None:
    with pytest.raises(StudyDocError, match=r"doc.md:3: `<!-- include: x.md -->` has no `<!-- end include -->`"):
        filled("a\n\n<!-- include: x.md -->\n", project, "doc.md")
    with pytest.raises(StudyDocError, match="source missing.md is missing; run `dvc repro`"):
        filled("<!-- include: missing.md -->\n<!-- end include -->\n", project, "doc.md")
