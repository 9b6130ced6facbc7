"""How a run's figures are named in MLflow, and how to find them under the names older runs used.

What MLflow 3.17.2's UI does with the names (its bundle, `mlflow/server/js/build/static/js/main.*.js`,
`RunsChartsCardConfig.getBaseChartAndSectionConfigs` and `extractChartSectionName`): a chart's section is the
metric name up to its last '/'; the prefixed sections come first, sorted by name (`Array.prototype.sort`,
`localeCompare` when a saved layout gains a section), then "Model metrics" (unprefixed names), then "System
metrics" (`system/`); inside a section the charts are sorted by full name. A training run's sections are
therefore, in this order: `epoch` (PHYSICS: the per-epoch loss, val RMSE in GeV, val resolution, bias and width
ratio), `final` (train's figures of the best epoch), `test` or `val` (evaluate, one section per split),
`watch` (DIAGNOSTICS: learning rate, gradient norm, dead-ReLU fraction, output bias; the name of W&B's
`wandb.watch`, and after every split name), the unprefixed summary figures, and the system metrics. Lower-case
ASCII prefixes sort the same way under both comparisons.
"""

from __future__ import annotations

#: the prefix of per-epoch physics figures: the first section of the UI
EPOCH = "epoch"
#: the prefix of per-epoch training diagnostics: a section after the evaluation figures
DIAGNOSTICS = "watch"
#: the per-epoch figures that describe how the network trains, not how well it measures m_tt
DIAGNOSTIC_FIGURES = frozenset({"learning_rate", "grad_norm", "dead_relu_fraction", "output_bias"})


def epoch_metric(name: str) -> str:
    """The MLflow name of a per-epoch figure: 'val_loss' -> 'epoch/val_loss', 'grad_norm' -> 'watch/grad_norm'."""
    return f"{DIAGNOSTICS if name in DIAGNOSTIC_FIGURES else EPOCH}/{name}"


def evaluation_metric(split: str, figure: str) -> str:
    """The MLflow name of an evaluation figure: ('test', 'model/resolution') -> 'test/model.resolution'."""
    return f"{split}/{figure.replace('/', '.')}"


def find_metric(metrics: dict[str, float], key: str, split: str = "test") -> float | None:
    """A run's metric by its name, or by the name older runs logged it under ('model/resolution' for
    'test/model.resolution', 'val_loss' for 'epoch/val_loss', 'epoch/grad_norm' for 'watch/grad_norm'), or by a
    figure's short name; None if absent."""
    for candidate in metric_names(key, split):
        if candidate in metrics:
            return metrics[candidate]
    return None


def metric_names(key: str, split: str = "test") -> list[str]:
    """The names a figure may be logged under: `key` itself, its current name, then the names older runs used."""
    names = [key, evaluation_metric(split, key)]
    if key.startswith(f"{split}/"):  # a current name asked for: the name runs before the rename used
        names.append(key.removeprefix(f"{split}/").replace(".", "/"))
    short = key.removeprefix(f"{EPOCH}/").removeprefix(f"{DIAGNOSTICS}/")
    names += [epoch_metric(short), f"{EPOCH}/{short}", short]  # diagnostics were under epoch/, before that bare
    return list(dict.fromkeys(names))

