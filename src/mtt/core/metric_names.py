"""How a run's figures are named in MLflow, and how to find them under the names older runs used.

The MLflow UI draws one section per metric prefix (the name up to its last '/'), sorted by name, with the
unprefixed metrics last: per-epoch metrics go under EPOCH so that their curves are the first section, and
evaluation figures under the split they were computed on (`test/model.resolution`), one section per split.
"""

from __future__ import annotations

#: the prefix of per-epoch metrics (their chart section comes first in the UI)
EPOCH = "epoch"


def epoch_metric(name: str) -> str:
    """The MLflow name of a per-epoch figure: 'val_loss' -> 'epoch/val_loss'."""
    return f"{EPOCH}/{name}"


def evaluation_metric(split: str, figure: str) -> str:
    """The MLflow name of an evaluation figure: ('test', 'model/resolution') -> 'test/model.resolution'."""
    return f"{split}/{figure.replace('/', '.')}"


def find_metric(metrics: dict[str, float], key: str, split: str = "test") -> float | None:
    """A run's metric by its name, or by the name older runs logged it under ('model/resolution' for
    'test/model.resolution', 'val_loss' for 'epoch/val_loss'), or by a figure's short name; None if absent."""
    for candidate in metric_names(key, split):
        if candidate in metrics:
            return metrics[candidate]
    return None


def metric_names(key: str, split: str = "test") -> list[str]:
    """The names a figure may be logged under, the current one first."""
    names = [key, evaluation_metric(split, key), epoch_metric(key)]
    if key.startswith(f"{split}/"):  # a current name asked for: the name runs before the rename used
        names.append(key.removeprefix(f"{split}/").replace(".", "/"))
    if key.startswith(f"{EPOCH}/"):
        names.append(key.removeprefix(f"{EPOCH}/"))
    return list(dict.fromkeys(names))
