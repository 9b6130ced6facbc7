"""altair_cache: the class table is built once per tuple of classes, and charts encode to the same spec."""

from __future__ import annotations

import json

import altair as alt
import pandas as pd
from altair.utils import schemapi

from mtt.stages.validate import altair_cache


def _chart_spec() -> str:
    """A chart like great-expectations' KL-divergence bars, as JSON."""
    frame = pd.DataFrame({"bin": [0.5, 1.5, 2.5], "fraction": [0.2, 0.5, 0.3]})
    chart = alt.Chart(frame).mark_bar().encode(x=alt.X("bin:Q", title="value"), y="fraction:Q",
                                                tooltip=["bin", "fraction"])
    return json.dumps(chart.to_dict(), sort_keys=True)


def _uninstalled(monkeypatch) -> None:
    """altair's own `_FromDict.__init__` for this test (another test in this process may have installed the cache)."""
    init = schemapi._FromDict.__init__
    monkeypatch.setattr(schemapi._FromDict, "__init__", getattr(init, "_mtt_original", init))


def test_charts_encode_to_the_same_spec_with_the_cache(monkeypatch):
    _uninstalled(monkeypatch)
    plain = _chart_spec()
    assert altair_cache.install()
    assert _chart_spec() == plain


def test_the_table_is_built_once_per_set_of_classes(monkeypatch):
    _uninstalled(monkeypatch)
    monkeypatch.setattr(altair_cache, "_TABLES", {})
    hashed = []
    hash_schema = schemapi._FromDict.hash_schema.__func__
    monkeypatch.setattr(schemapi._FromDict, "hash_schema",
                        classmethod(lambda cls, schema, use_json=True: hashed.append(1) or hash_schema(cls, schema,
                                                                                                       use_json)))
    altair_cache.install()
    altair_cache.install()  # a second install keeps the first wrapper
    _chart_spec()
    built = len(hashed)
    _chart_spec()
    assert built > 0 and len(hashed) - built < built / 10  # the second chart hashes only the schemas it looks up
    assert len(altair_cache._TABLES) >= 1
