"""Sphinx configuration of mtt's documentation: MyST Markdown pages, furo, the CLI and params generated."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent / "src"))

project = "mtt"
author = "the mtt developers"
copyright = "2026, the mtt developers"  # noqa: A001 (Sphinx's name)

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinxarg.ext",
    "mtt_params",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
# the study's generated blocks, included in place
exclude_patterns = ["_build", "study-1M/*.md", "study-3.5M/*.md", "study-1M-flow/*.md"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = "mtt"
autodoc_member_order = "bysource"
default_role = "literal"  # `name` in a docstring is code, as in the Markdown pages
autodoc_typehints = "description"
nitpicky = True
# Annotations that name third-party or builtin types Sphinx has no inventory for (no network: no intersphinx)
nitpick_ignore_regex = [(r"py:class", r"(np|pd|ak|numpy|pandas|awkward|pydantic|argparse|collections|typing|"
                                      r"pathlib|os|datetime|enum|uuid|keras)\..*"),
                        (r"py:class", r"(Any|Path|Iterator|Callable|Literal|ndarray|DataFrame|optional|"
                                      r"default|Ellipsis)")]
suppress_warnings = ["myst.header"]
