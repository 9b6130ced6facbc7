"""The documentation: a short README, and a Sphinx build in which any broken reference is an error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SPHINX = [sys.executable, "-m", "sphinx", "-n", "-W", "--keep-going", "-q", "-b", "html"]


def build(source: Path, out: Path) -> subprocess.CompletedProcess:
    """sphinx-build as `make docs` runs it (warnings are errors)."""
    return subprocess.run([*SPHINX, str(source), str(out)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO / "src"), "PATH": str(Path(sys.executable).parent)})


def test_the_readme_reads_in_five_minutes() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move the detail into docs/"


def _site(folder: Path, page: str) -> Path:
    """A two-page MyST site with the project's extensions."""
    folder.mkdir()
    (folder / "conf.py").write_text((REPO / "docs" / "conf.py").read_text().replace(
        'DOCS = Path(__file__).resolve().parent', f'DOCS = Path({str(REPO / "docs")!r})'))
    (folder / "index.md").write_text("# Index\n\n```{toctree}\npage\n```\n")
    (folder / "page.md").write_text(page)
    return folder


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """The check fails on a deliberate break: a link to a page that does not exist."""
    good = build(_site(tmp_path / "good", "# Page\n\nSee [the index](index.md).\n\n```{mtt-params} study\n```\n"),
                 tmp_path / "good_out")
    assert good.returncode == 0, good.stderr
    broken = build(_site(tmp_path / "broken", "# Page\n\nSee [the stages](stages/nowhere.md).\n"),
                   tmp_path / "broken_out")
    assert broken.returncode != 0 and "nowhere" in broken.stderr


def test_an_unknown_params_section_fails_the_build(tmp_path: Path) -> None:
    broken = build(_site(tmp_path / "site", "# Page\n\n```{mtt-params} trian\n```\n"), tmp_path / "out")
    assert broken.returncode != 0 and "no section 'trian'" in broken.stderr


@pytest.mark.slow
def test_the_site_builds_without_a_warning(tmp_path: Path) -> None:
    done = build(REPO / "docs", tmp_path / "html")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "html" / "stages" / "train.html").is_file()
