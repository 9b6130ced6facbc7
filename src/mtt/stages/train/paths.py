"""Where the train stage reads and writes, checked before any work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtt.core.io import check_apart, check_not_protected, check_output_dir, check_output_file


@dataclass(frozen=True)
class TrainPaths:
    """Where the stage reads and writes (all from dvc.yaml's command line)."""

    prepared: Path
    reference: Path
    model: Path
    metrics: Path | None = None
    history: Path | None = None
    checkpoints: Path | None = None
    #: the validate stage's summary and Data Docs, attached to the run as its data checks
    validation: Path | None = None
    docs: Path | None = None
    #: replace a model folder that holds files train did not write
    overwrite: bool = False

    def check(self) -> None:
        """Before any work: no output may replace an input or the user's files, and each must be writable."""
        inputs = [p for p in (self.prepared, self.reference, self.validation, self.docs) if p is not None]
        check_output_dir(self.model, "train", inputs, self.overwrite)
        for path in (self.metrics, self.history):
            if path is not None:
                check_output_file(path, [*inputs, self.model])
        if self.checkpoints is not None:
            check_not_protected(self.checkpoints)
            check_apart(self.checkpoints, [*inputs, self.model])
