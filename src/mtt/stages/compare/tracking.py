"""The study in MLflow: one parent run per pipeline run, the configurations' training runs as its children.

The parent holds what does not depend on a model (the baselines' figures and response plots), the comparison
table as its description, the headline ratios as metrics and the overlay figures; each child keeps its own
model's figures. A rerun of compare over the same training runs updates their parent instead of making another.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from mtt.core import run_lifecycle, tracking
from mtt.core.metric_names import flat_metrics, model_independent_figures

#: the parent's tag listing its children (sorted run ids): a rerun over the same runs finds its parent by it
CHILDREN_TAG = "mtt.study.children"
#: MLflow's own tag that nests a run under another in the runs table
PARENT_TAG = "mlflow.parentRunId"


def training_runs(client: Any, run_ids: dict[str, str]) -> dict[str, Any]:
    """Configuration -> its training run, for the runs this store holds (others are named and left out)."""
    from mlflow.exceptions import MlflowException

    found = {}
    for config, run_id in run_ids.items():
        if not run_id:  # trained without tracking
            continue
        try:
            found[config] = client.get_run(run_id)
        except MlflowException:
            print(f"compare: {config}'s run {run_id} is not in {tracking.tracking_uri()}: left out "
                  "of the parent run")
    return found


def parent_name(runs: dict[str, Any]) -> str:
    """'study <data>' (the train split's hash), with the DVC experiment's name when there is one."""
    data = next(iter(runs.values())).data.tags.get("data.train_sha256", "")[:8] or "unknown data"
    experiment = os.environ.get("DVC_EXP_NAME")
    return f"study {experiment} ({data})" if experiment else f"study {data}"


def parent_run(client: Any, experiment_id: str, runs: dict[str, Any]) -> tuple[str, bool]:
    """The parent run of these training runs: the one an earlier compare made over them, or a new one."""
    children = ",".join(sorted(run.info.run_id for run in runs.values()))
    existing = client.search_runs([experiment_id], filter_string=f"tags.`{CHILDREN_TAG}` = '{children}'",
                                  max_results=1)
    if existing:
        return existing[0].info.run_id, False
    with run_lifecycle.SigtermDeferral():
        run = client.create_run(experiment_id, run_name=parent_name(runs),
                                tags={CHILDREN_TAG: children, "mtt.study.configs": ",".join(runs),
                                      **run_lifecycle.process_tags()})
    return run.info.run_id, True


def metrics(headline: dict[str, dict[str, dict[str, float]]], figures: dict[str, Any], split: str) -> list[Any]:
    """The parent's metrics: `study/<config>.<estimator>.<ratio>`, and the figures no model changes (the
    baselines', the truth's Z' fit) under the names evaluate gives a run's figures (`test/baseline_ellipse.*`)."""
    import math

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    values = {f"study/{config}.{estimator}.{key}": value for config, estimators in headline.items()
              for estimator, ratios in estimators.items() for key, value in ratios.items()}
    values.update(flat_metrics(model_independent_figures(figures), split))
    return [Metric(key, float(value), now, 0) for key, value in values.items() if math.isfinite(value)]


def log_study(run_ids: dict[str, str], headline: dict[str, Any], figures: dict[str, Any], split: str, note: str,
              comparison: Path, baseline_plots: list[Path]) -> str | None:
    """Gather the configurations' training runs under one parent run and log the comparison to it; the
    parent's id, or None when no configuration's run is in this store."""
    from mlflow.tracking import MlflowClient

    tracking.configure()
    client = MlflowClient()
    runs = training_runs(client, run_ids)
    if not runs:
        print(f"compare: no configuration's run is in {tracking.tracking_uri()}: the comparison is in files only")
        return None
    experiment_id = next(iter(runs.values())).info.experiment_id  # the parent must share its children's experiment
    parent_id, made = parent_run(client, experiment_id, runs)
    if not made:
        client.update_run(parent_id, status="RUNNING")
    with run_lifecycle.ended(client, parent_id):
        for run in runs.values():
            client.set_tag(run.info.run_id, PARENT_TAG, parent_id)
        client.log_batch(parent_id, metrics=metrics(headline, figures, split))
        client.set_tag(parent_id, "mlflow.note.content", note)
        client.log_artifacts(parent_id, str(comparison), artifact_path="comparison")
        for plot in baseline_plots:
            client.log_artifact(parent_id, str(plot), artifact_path="baselines")
    print(f"compare: parent run {parent_id} ({len(runs)} configurations as its children) in "
          f"{tracking.tracking_uri()}")
    return parent_id
