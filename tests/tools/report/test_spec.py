"""The `mtt report` spec: every bad key is named when the spec is read, before the store is asked anything."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mtt.tools.report.spec import ReportError, formats, load_spec, row_keys

#: a valid spec, one entry of each kind, that each test changes
SPEC = {"experiment": "mtt", "label_header": "method",
        "columns": {"bias": {"header": "median bias", "format": "+.3f"}},
        "rows": [{"label": "MSE point", "run": "x"}],
        "figures": [{"run": "x", "artifact": "evaluate/plots/spectrum.png", "name": "spectrum.png"}]}


def write_spec(path: Path, **changes: object) -> Path:
    """SPEC with `changes`, written as YAML to `path`."""
    path.write_text(yaml.safe_dump({**SPEC, **changes}, sort_keys=False))
    return path


@pytest.mark.parametrize(("change", "message"), [
    ({"colums": {}}, r"colums: unknown key; allowed keys: experiment, label_header, columns"),
    ({"columns": {"bias": {"header": "b", "fromat": ".3f"}}}, r"columns.bias.fromat: unknown key; allowed keys: "
                                                              r"header, format, key"),
    ({"columns": {"bias": {"header": "b", "format": "q"}}}, r"columns.bias.format: not a format spec"),
    ({"columns": {"p": {"header": "p", "key": "zprime/{estimater}/peak"}}}, r"columns.p.key: unknown placeholder"),
    ({"rows": [{"label": "a", "run": "x", "keys": {"nope": "m"}}]}, r"rows\[0\] \('a'\).keys: unknown column"),
    ({"rows": [{"label": "a", "run": 123}]}, r"rows\[0\].run: Input should be a valid string"),
    ({"figures": [{"run": "x", "artifact": "a.png", "name": "../a.png"}]}, r"figures\[0\].name: a plain file name"),
])
def test_a_bad_spec_names_the_key(tmp_path, change, message):
    spec = write_spec(tmp_path / "spec.yaml", **change)
    with pytest.raises(ReportError, match=f"spec.yaml: invalid report spec:\n  {message}"):
        load_spec(spec)


def test_a_missing_or_duplicated_spec_is_named(tmp_path):
    with pytest.raises(ReportError, match="nowhere.yaml: report spec not found"):
        load_spec(tmp_path / "nowhere.yaml")
    (tmp_path / "twice.yaml").write_text("rows: []\nrows: []\n")
    with pytest.raises(ReportError, match="twice.yaml: key 'rows' appears twice"):
        load_spec(tmp_path / "twice.yaml")


def test_row_keys_fill_in_the_estimator_and_a_rows_own_keys(tmp_path):
    columns = {"bias": {"header": "b"}, "peak": {"header": "p", "key": "zprime/{estimator}/peak"}}
    extra = [{"key": "wall_time_s", "header": "t", "format": ".0f"}]
    rows = [{"label": "a", "run": "x", "estimator": "mdn_mode", "keys": {"bias": "model/bias"}},
            {"label": "b", "run": "y", "estimator": "baseline_ellipse"}]
    spec = load_spec(write_spec(tmp_path / "s.yaml", columns=columns, extra_columns=extra, rows=rows))
    assert row_keys(spec, spec.rows[0]) == ["model/bias", "zprime/mdn_mode/peak", "wall_time_s"]
    assert row_keys(spec, spec.rows[1]) == ["baseline_ellipse/bias", "zprime/baseline_ellipse/peak", "wall_time_s"]
    assert formats(spec) == [".4g", ".4g", ".0f"]
