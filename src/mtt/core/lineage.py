"""What an MLflow run records of where it came from: the code's git commit, the data checks, the datasets.

Two runs' numbers compare only if they came from the same code and data: the run says which (`git_state`, the
committed params file via `committed_text`, `log_data_checks`, `log_split_inputs`), so the UI alone can tell.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mtt.core.tracking import repo_root


def git_state(root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Git commit and dirty flag for run tags (`mlflow.source.git.commit` too, the UI's Version column); empty
    strings outside a git checkout. Changes to the pipeline's own outputs (dvc.lock, the committed metrics and
    CSVs that every `dvc repro` rewrites) do not make the code dirty."""
    cwd = Path(root or repo_root())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": "", "git_dirty": ""}
    outputs = pipeline_outputs(cwd)
    dirty = any(line[3:].strip('"') not in outputs for line in changed)
    return {"git_commit": commit, "git_dirty": str(dirty).lower(), "mlflow.source.git.commit": commit}


def pipeline_outputs(root: str | os.PathLike[str]) -> set[str]:
    """dvc.lock and every out, metric and plot file that dvc.yaml declares (paths relative to the root)."""
    import yaml

    try:
        stages = (yaml.safe_load((Path(root) / "dvc.yaml").read_text()) or {}).get("stages", {})
    except (OSError, yaml.YAMLError):
        return set()
    outputs = {"dvc.lock"}
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []) if isinstance(stage, dict) else []:
                outputs.update([entry] if isinstance(entry, str) else entry if isinstance(entry, dict) else [])
    return outputs


def committed_text(path: str | os.PathLike[str]) -> str | None:
    """The file's text at git HEAD (what `dvc exp run -S` and an edit are compared with); None if not tracked."""
    path = Path(path).resolve()
    try:
        return subprocess.run(["git", "show", f"HEAD:./{path.name}"], cwd=path.parent, capture_output=True,
                              text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def log_stage_to_active_run(
    stage: str, params: dict, metrics: dict[str, float], artifact: str | os.PathLike[str] | None = None
) -> None:
    """Log a stage's params, headline metrics and manifest into the run that `mlflow run` started."""
    import mlflow

    with mlflow.start_run():  # resumes MLFLOW_RUN_ID
        mlflow.log_params({f"{stage}.{k}": v for k, v in params.items()})
        mlflow.log_metrics({f"{stage}/{k}": float(v) for k, v in metrics.items()})
        mlflow.set_tags(git_state())
        if artifact is not None and Path(artifact).exists():
            mlflow.log_artifact(str(artifact), artifact_path=stage)


def log_data_checks(summary_path: str | os.PathLike[str], docs_dir: str | os.PathLike[str] | None = None) -> None:
    """Attach the validate stage's summary (and Data Docs site) to the active MLflow run.

    Every training run then records which data checks its inputs passed: the counts as tags
    (`data_checks.critical_failures`, ...: one-point metrics would fill the UI's charts with bars of zero), the
    JSON and the HTML site as artifacts under `data_checks/`.
    """
    import json

    import mlflow

    summary = json.loads(Path(summary_path).read_text())
    mlflow.set_tags({"data_checks.critical_failures": summary["critical_failures"],
                     "data_checks.warnings": summary["warnings"],
                     **{f"data_checks.{split}_failed": s["failed"] for split, s in summary["splits"].items()}})
    mlflow.log_artifact(str(summary_path), artifact_path="data_checks")
    if docs_dir is not None and Path(docs_dir).is_dir():
        mlflow.log_artifacts(str(docs_dir), artifact_path="data_checks/data_docs")


#: MLflow's dataset-input context of each prepared split
SPLIT_CONTEXTS = {"train": "training", "val": "validation", "test": "testing"}
#: hex digits of the content SHA-256 kept as a dataset's digest (MLflow stores at most 36 characters)
DIGEST_LENGTH = 16


def split_dataset(path: str | os.PathLike[str], sha256: str) -> object:
    """A prepared Parquet split as an MLflow dataset, without reading its rows: source the file's path, digest
    the first DIGEST_LENGTH hex digits of its content SHA-256 (the hash the run's lineage already computed),
    schema and row count from the Parquet footer; named <folder>/<file stem>, e.g. prepared/train."""
    import json

    import pyarrow.parquet as pq
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.types import ColSpec, Schema

    class ParquetDataset(MetaDataset):
        """A MetaDataset with the row count as its profile."""

        def __init__(self, rows: int, **kwargs: object) -> None:
            self.rows = rows
            super().__init__(**kwargs)

        @property
        def profile(self) -> dict[str, int]:
            return {"num_rows": self.rows}

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(self.profile)}

    path = Path(path).resolve()
    footer = pq.read_metadata(path)
    schema = Schema([ColSpec(_mlflow_type(field.type), field.name) for field in footer.schema.to_arrow_schema()])
    return ParquetDataset(footer.num_rows, source=LocalArtifactDatasetSource(str(path)), name=f"{path.parent.name}/"
                          f"{path.stem}", digest=sha256[:DIGEST_LENGTH], schema=schema)


def _mlflow_type(arrow_type: object) -> str:
    """MLflow's column type for a Parquet column type (unsigned integers as long, categories as string)."""
    import pyarrow as pa

    if pa.types.is_float32(arrow_type) or pa.types.is_float16(arrow_type):
        return "float"
    if pa.types.is_floating(arrow_type):
        return "double"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        small = arrow_type.bit_width < 32 or (arrow_type.bit_width == 32 and pa.types.is_signed_integer(arrow_type))
        return "integer" if small else "long"
    if pa.types.is_timestamp(arrow_type):
        return "datetime"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "binary"
    return "string"


def log_split_inputs(splits: dict[str, tuple[str | os.PathLike[str], str]]) -> None:
    """Log the prepared splits a run read (split -> (path, content SHA-256)) as its dataset inputs, with the
    context training, validation or testing: the runs table's Dataset column then tells runs on different
    data apart."""
    import mlflow

    datasets = [split_dataset(path, sha256) for path, sha256 in splits.values()]
    mlflow.log_inputs(datasets, contexts=[SPLIT_CONTEXTS.get(split, split) for split in splits],
                      tags_list=[None] * len(datasets))
