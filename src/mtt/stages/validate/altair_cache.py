"""Altair's channel encoding with its schema-to-class table built once per process, not once per channel.

great-expectations draws an altair chart for each KL-divergence check in Data Docs (~680 a validate run). Altair
6.3 builds `_FromDict`'s table of every schema class by the hash of its JSON schema (~570 `json.dumps`) on every
encoded channel, 4,068 times a run: ~8 s of validate's ~40 s (upstream: vega/altair#3547, open). The table depends
only on the classes it is given, so it is kept per tuple of classes: the same lookups, the same Data Docs bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: the table of each tuple of wrapper classes seen in this process
_TABLES: dict[tuple[type, ...], Any] = {}


def install() -> bool:
    """Keep altair's class tables between calls (once per process); False where altair has no `_FromDict` (a
    release that changes its constructor fails `tests/stages/validate/test_altair_cache.py` instead)."""
    try:
        from altair.utils.schemapi import _FromDict
    except ImportError:
        return False
    if getattr(_FromDict.__init__, "_mtt_cached", False):
        return True
    build = _FromDict.__init__

    def cached_init(self: Any, wrapper_classes: Iterable[type], /) -> None:
        classes = tuple(wrapper_classes)
        if classes not in _TABLES:
            build(self, classes)
            _TABLES[classes] = self.class_dict
        self.class_dict = _TABLES[classes]

    cached_init._mtt_cached = True  # type: ignore[attr-defined]
    cached_init._mtt_original = build  # type: ignore[attr-defined]
    _FromDict.__init__ = cached_init  # type: ignore[method-assign]
    return True
