"""How a run's figures are named in MLflow, how to find them under the names older runs used, and which
evaluation figures do not depend on the model.

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

from pathlib import PurePosixPath

#: the prefix of per-epoch physics figures: the first section of the UI
EPOCH = "epoch"
#: the prefix of per-epoch training diagnostics: a section after the evaluation figures
DIAGNOSTICS = "watch"
#: the per-epoch figures that describe how the network trains, not how well it measures m_tt
DIAGNOSTIC_FIGURES = frozenset({"learning_rate", "grad_norm", "dead_relu_fraction", "output_bias"})

#: the splits an evaluation figure may be named after (its MLflow section)
SPLIT_NAMES = ("train", "val", "test")
#: evaluation estimators and fits made from the data and the classical methods alone: ellipse method, scaled
#: visible mass (`baseline_*`), the unfolded ellipse spectrum (`ellipse_*`), the Z' truth fit (`truth`)
MODEL_INDEPENDENT_PREFIXES = ("baseline_", "ellipse_", "truth")
#: top-level figures that count the data (test events; the Z' study's mass, fraction and event counts)
DATA_FIGURES = frozenset({"n_events", "mass", "fraction", "n_signal", "n_sm"})
#: the sub-study whose own estimators repeat the split's ones (`zprime/baseline_ellipse/position`)
STUDIES = ("zprime",)


def epoch_metric(name: str) -> str:
    """The MLflow name of a per-epoch figure: 'val_loss' -> 'epoch/val_loss', 'grad_norm' -> 'watch/grad_norm'."""
    return f"{DIAGNOSTICS if name in DIAGNOSTIC_FIGURES else EPOCH}/{name}"


def evaluation_metric(split: str, figure: str) -> str:
    """The MLflow name of an evaluation figure: ('test', 'model/resolution') -> 'test/model.resolution'."""
    return f"{split}/{figure.replace('/', '.')}"


def flat_metrics(figures: dict, split: str, prefix: str = "") -> dict[str, float]:
    """The numbers of a figures dict computed on `split` (nested, as evaluate makes them) under their MLflow
    names: {"test/model.resolution": ..., "test/zprime.model.position": ...}; one section of the UI per split.
    Evaluate logs `model_figures` so, compare `model_independent_figures`."""
    out = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            out.update(flat_metrics(value, split, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)):
            out[evaluation_metric(split, f"{prefix}{key}")] = float(value)
    return out


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


def is_model_independent(name: str) -> bool:
    """Whether an evaluation figure is the same for every model evaluated on the same data, so it belongs once to
    a study's parent run, not to each configuration's run: a baseline's or the truth's figure, or a count of the
    data. `name` is a figure's path in evaluate's figures ('baseline_ellipse/resolution', 'zprime/truth/width')
    or its MLflow name ('test/baseline_ellipse.resolution'); ratios to a baseline ('model/resolution_ratio') are
    the model's."""
    parts = name.replace(".", "/").split("/")
    if len(parts) > 1 and parts[0] in SPLIT_NAMES:
        parts = parts[1:]
    if len(parts) > 1 and parts[0] in STUDIES:
        parts = parts[1:]
    return parts[0].startswith(MODEL_INDEPENDENT_PREFIXES) or (len(parts) == 1 and parts[0] in DATA_FIGURES)


def is_model_independent_plot(path: str) -> bool:
    """Whether a file of evaluate's output is the response plot of a model-independent estimator
    ('plots/response_baseline_ellipse.png'): the same picture in every configuration's evaluation."""
    stem = PurePosixPath(path).stem
    return stem.startswith("response_") and is_model_independent(stem.removeprefix("response_"))


def model_independent_figures(figures: dict) -> dict:
    """The figures of an evaluate figures dict (metrics.json) that `is_model_independent`, nested as they were:
    what a study's parent run shows once for all its configurations."""
    return _select(figures, True)


def model_figures(figures: dict) -> dict:
    """The rest of an evaluate figures dict: what depends on the model, logged to its configuration's run."""
    return _select(figures, False)


def _select(figures: dict, independent: bool, prefix: str = "") -> dict:
    """The leaves of `figures` whose path `is_model_independent` equals `independent`; empty dicts dropped."""
    kept: dict = {}
    for key, value in figures.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            part = _select(value, independent, f"{path}/")
            if part:
                kept[key] = part
        elif is_model_independent(path) == independent:
            kept[key] = value
    return kept
