"""A failed validate keeps the old reference; checking new data never touches the pipeline's reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability.conftest import mev, rewrite

from mtt.cli import main
from mtt.core.errors import ValidationFailed
from mtt.stages.validate.params import DriftParams, ValidateParams
from mtt.stages.validate.stage import run_validate

PARAMS = ValidateParams(drift=DriftParams(action="warn"))


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow  # a full validate or train run: the slow tier
def test_a_failed_train_split_does_not_replace_the_reference(small_prepared, tmp_path):
    reference = tmp_path / "reference"
    run_validate(PARAMS, small_prepared, reference, tmp_path / "validation.json")
    before = _files(reference)
    bad = rewrite(small_prepared, tmp_path / "mev" / "prepared", mev)
    with pytest.raises(ValidationFailed, match=r"(?s)train: units: lplus_pt.*reference was not replaced"):
        run_validate(PARAMS, bad, reference, tmp_path / "validation.json")
    assert _files(reference) == before  # later drift checks still compare with the GeV train data
    assert '"reference_updated": false' in (tmp_path / "validation.json").read_text()  # the report is written


@pytest.mark.slow
def test_checking_new_data_leaves_the_pipeline_reports_alone(small_prepared, tmp_path, monkeypatch):
    run_validate(PARAMS, small_prepared, tmp_path / "data" / "reference")
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "validation.json").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    params = Path(__file__).resolve().parents[2] / "params.yaml"
    status = main(["validate", "--params", str(params), "--data", str(small_prepared / "test.parquet"),
                   "-S", "drift.action=warn"])
    assert status == 0
    assert (reports / "validation.json").read_text() == "{}\n" and not (reports / "data_docs").exists()
