"""What MLflow records describes the data actually read, not the working directory's pipeline outputs."""

from __future__ import annotations

import hashlib
import json

import pytest
from reliability.conftest import rewrite

from mtt.stages.train.params import TrainParams
from mtt.stages.train.stage import TrainPaths, run_train

TINY = TrainParams(epochs=1, batch_size=64, width=8, depth=1)


def file_sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _summary(path, prepared):
    """A validate summary of exactly these train and val files and the reference next to them."""
    inputs = {s: {"path": str(prepared / f"{s}.parquet"), "sha256": file_sha256(prepared / f"{s}.parquet")}
              for s in ("train", "val", "test")}
    reference = file_sha256(prepared.parent / "reference" / "scalers.npz")
    path.write_text(json.dumps({"critical_failures": 0, "warnings": 0, "inputs": inputs, "reference_sha256": reference,
                                "splits": {s: {"evaluated": 10, "passed": 10, "failed": 0} for s in inputs}}))
    return path


def _train(prepared, reference, tmp_path, summary):
    paths = TrainPaths(prepared=prepared, reference=reference, model=tmp_path / "models", validation=summary)
    return run_train(TINY, paths)


@pytest.mark.slow  # a full validate or train run: the slow tier
def test_tags_hash_the_files_read_and_checks_attach_only_to_their_data(small_prepared, store, tmp_path):
    reference = small_prepared.parent / "reference"
    summary = _summary(tmp_path / "validation.json", small_prepared)  # describes the pipeline's splits

    own = store.get_run(_train(small_prepared, reference, tmp_path, summary)["run_id"])
    assert own.data.tags["data.train_sha256"] == file_sha256(small_prepared / "train.parquet")
    assert own.data.tags["data_checks.critical_failures"] == "0"

    other = rewrite(small_prepared, tmp_path / "other" / "prepared", lambda f: f.iloc[::-1])  # same events, reordered
    run = store.get_run(_train(other, reference, tmp_path, summary)["run_id"])
    assert run.data.tags["data.train_sha256"] == file_sha256(other / "train.parquet")
    assert run.data.tags["data.train_sha256"] != own.data.tags["data.train_sha256"]
    assert run.data.tags["data.prepared"] == str(other.resolve())
    assert "data_checks.critical_failures" not in run.data.tags  # the summary was not run on these files
    assert "does not describe these files" in run.data.tags["data_checks"]
    assert not any(key.startswith("dvc.") for key in run.data.tags)  # nothing read from ./dvc.lock


@pytest.mark.slow
def test_a_summary_of_another_reference_is_not_attached(small_prepared, store, tmp_path):
    """An interrupted validate can leave a new summary next to the old reference: not attached either."""
    summary = _summary(tmp_path / "validation.json", small_prepared)
    stored = json.loads(summary.read_text())
    summary.write_text(json.dumps({**stored, "reference_sha256": "0" * 64}))
    run = store.get_run(_train(small_prepared, small_prepared.parent / "reference", tmp_path, summary)["run_id"])
    assert "data_checks.critical_failures" not in run.data.tags
