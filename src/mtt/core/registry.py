"""The MLflow model registry: self-contained logged models, a version per training run, promotion by a metric.

- `log_model` logs the inference model (raw features in GeV -> m_tt in GeV) so that it loads anywhere with its
  own pinned requirements: the `keras` flavor, plus a `python_function` flavor whose loader is `mtt/core/layers.py`
  (the custom layers, Keras and numpy only) copied into the model's `code/` folder as `mtt_layers.py`, so
  `mlflow.pyfunc.load_model("models:/mtt-mtt@champion")` needs no `mtt`. Signature and input example included.
- `register` adds the logged model as a new version of `train.registered_model`, points alias `candidate` at it,
  records the promotion metric on the version and names its run and configuration in the version's description.
- `promote` moves alias `champion` to a version when its metric is lower than the champion's (or when forced),
  and says what it did and why. Aliases, not the deprecated stages.
"""

from __future__ import annotations

import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mtt.core.flow_layers
import mtt.core.layers
from mtt.core import tracking
from mtt.core.errors import RegistryError
from mtt.core.metric_names import find_metric

CANDIDATE = "candidate"
CHAMPION = "champion"
#: the run tag naming the configuration a run trained (`mtt train --config NAME`, one per `train@<config>` stage)
CONFIG_TAG = "mtt.config"
#: the name the layers file has in a logged model's code folder, and its pyfunc loader module
SHIPPED_MODULE = "mtt_layers"
#: the flow head's layers beside it (`mtt_layers._custom_objects` imports them by this name)
SHIPPED_FLOWS = "mtt_flow_layers"
#: what loading a logged model needs (distributions, pinned to the installed versions: those of requirements.lock);
#: MLflow adds its own pin. Either TensorFlow distribution is the Keras backend.
LOADING_REQUIREMENTS = (("keras",), ("tensorflow-cpu", "tensorflow"), ("numpy",))
DESCRIPTION = ("m_tt regressor of the mtt pipeline: raw features in GeV (the version's `features` metadata, "
               "in order) -> m_tt in GeV. Alias `candidate`: the latest training run; `champion`: the version "
               "`mtt promote` chose.")


# --- logging a self-contained model --------------------------------------------------------------------


def loading_requirements() -> list[str]:
    """Pinned pip requirements of loading a logged model: keras, the TensorFlow backend, numpy."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for names in LOADING_REQUIREMENTS:
        for name in names:
            try:
                pins.append(f"{name}=={version(name)}")
                break
            except PackageNotFoundError:
                continue
        else:
            raise RegistryError(f"cannot pin the model's requirements: none of {', '.join(names)} is installed")
    return pins


def save_model(path: str, mlflow_model: Any, keras_model: Any, signature: Any = None, input_example: Any = None,
               **options: Any) -> None:
    """The flavor `log_model` logs with (`mlflow.models.Model.log` calls it, with its own `options`): the keras
    flavor with pinned requirements, then the python_function flavor pointed at the layers file, in `code/`."""
    import mlflow

    Path(path).mkdir(parents=True)  # the keras flavor writes the input example before creating the folder
    mlflow.keras.save_model(keras_model, path, mlflow_model=mlflow_model, signature=signature,
                            input_example=input_example, pip_requirements=loading_requirements())
    code = Path(path) / "code"
    code.mkdir()
    shutil.copyfile(mtt.core.layers.__file__, code / f"{SHIPPED_MODULE}.py")
    shutil.copyfile(mtt.core.flow_layers.__file__, code / f"{SHIPPED_FLOWS}.py")
    env = mlflow_model.flavors["python_function"].get("env", {})
    mlflow.pyfunc.add_to_model(mlflow_model, loader_module=SHIPPED_MODULE, data=mlflow_model.flavors["keras"]["data"],
                               code=code.name, conda_env=env.get("conda"), python_env=env.get("virtualenv"))
    mlflow_model.save(str(Path(path) / "MLmodel"))


def log_model(model: Any, example: Any, metadata: dict[str, Any], name: str = "model", step: int = 0) -> Any:
    """Log the Keras inference model into the active run as a self-contained MLflow model; its ModelInfo.

    `example`: a few rows of raw features (float32), the input example; the signature comes from the model's
    answer to it. `metadata` lands in the MLmodel file (feature names, outputs, params). `step`: the epoch whose
    weights the model holds; MLflow links the run's metrics of that step to the model (its page shows them)."""
    import numpy as np
    from mlflow.models import Model, infer_signature

    signature = infer_signature(example, np.asarray(model(example)))
    # no serving check of the example: it would load and trace the model again (9 s with a quantile scaler);
    # tests/test_registry.py loads logged models where mtt cannot be imported
    return Model.log(artifact_path=None, name=name, flavor=sys.modules[__name__], flavor_name="keras",
                     metadata=metadata, keras_model=model, signature=signature, input_example=example,
                     validate_serving_input=False, step=step)


# --- versions and aliases ------------------------------------------------------------------------------


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def _metric(client: Any, run_id: str | None, metric: str) -> float | None:
    """A run's latest value of `metric` (or of its older name), None when the run or the metric is missing or not
    finite."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        value = find_metric(client.get_run(run_id).data.metrics, metric)
    except MlflowException:
        return None
    return value if value is not None and math.isfinite(value) else None


def configuration(tags: dict[str, str]) -> str:
    """The configuration a run trained, from its tags, so a version says which model it is: `mtt.config` (a
    pipeline configuration), else the preset (tag `preset`), else "default" (the committed params)."""
    preset = tags.get("preset", "none")
    return tags.get(CONFIG_TAG) or (preset if preset not in ("", "none") else "default")


def _run_tags(client: Any, run_id: str) -> dict[str, str]:
    """The run's tags; none when the store does not have the run."""
    from mlflow.exceptions import MlflowException

    try:
        return dict(client.get_run(run_id).data.tags)
    except MlflowException:
        return {}


def register(model_uri: str, name: str, run_id: str, metric: str) -> Any:
    """Register `model_uri` (the run's logged model) as a new version of `name` with alias `candidate`; the
    promotion metric's name and the run's value of it are tags of the version, and its description names the
    run, its configuration (`configuration`) and the value. The ModelVersion."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        version = mlflow.register_model(model_uri, name, await_registration_for=0)
        client.set_registered_model_alias(name, CANDIDATE, version.version)
        if not client.get_registered_model(name).description:
            client.update_registered_model(name, description=DESCRIPTION)
        value = _metric(client, run_id, metric)
        client.set_model_version_tag(name, version.version, "promote.metric", metric)
        client.set_model_version_tag(name, version.version, "promote.value",
                                     "not logged yet" if value is None else repr(value))
        client.update_model_version(name, version.version, description=(
            f"run {run_id}, configuration {configuration(_run_tags(client, run_id))}: {metric} = "
            f"{'not logged yet' if value is None else f'{value:.6g}'}"))
    except MlflowException as exc:
        raise RegistryError(f"registering the model of run {run_id} as {name!r}: {exc.message}") from None
    return version


def _registered(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(f"reading registered model {name!r} in {tracking.tracking_uri()}: "
                                f"{exc.message}") from None
        known = sorted(m.name for m in client.search_registered_models())
        raise RegistryError(f"no registered model {name!r} in {tracking.tracking_uri()}; registered: "
                            f"{', '.join(known) or 'none'} (train.registered_model names the model training "
                            "registers)") from None


def _versions(client: Any, name: str) -> list[Any]:
    return sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))


def _version(client: Any, name: str, aliases: dict[str, str], version: str | None, run_id: str | None) -> Any:
    """The version to promote: --version, the latest version from --run, or the one alias candidate names."""
    versions = _versions(client, name)
    listed = ", ".join(str(v.version) for v in versions) or "none"
    if run_id is not None:
        matching = [v for v in versions if v.run_id == run_id]
        if not matching:
            raise RegistryError(f"no version of {name!r} comes from run {run_id}; versions and their runs: "
                                + (", ".join(f"{v.version} ({v.run_id})" for v in versions) or "none"))
        return matching[-1]
    if version is None:
        if CANDIDATE not in aliases:
            raise RegistryError(f"registered model {name!r} has no alias {CANDIDATE!r} (versions: {listed}): "
                                "give --version or --run")
        version = aliases[CANDIDATE]
    chosen = [v for v in versions if str(v.version) == str(version)]
    if not chosen:
        raise RegistryError(f"registered model {name!r} has no version {version}; versions: {listed}")
    return chosen[0]


@dataclass(frozen=True)
class Promotion:
    """What `promote` did: the version, the champion before, both metric values, and why."""

    name: str
    version: str
    previous: str | None
    metric: str
    value: float | None
    previous_value: float | None
    moved: bool
    reason: str


def _fmt(value: float | None) -> str:
    return "missing" if value is None else f"{value:.4g}"


def _decide(metric: str, target: Any, champion: Any | None, value: float | None, previous_value: float | None,
            force: bool) -> tuple[bool, str]:
    """(move the champion alias?, why): lower is better; a missing value is an error unless forced."""
    if champion is not None and str(champion.version) == str(target.version):
        return False, f"version {target.version} is already {CHAMPION} ({metric} {_fmt(value)}): nothing to do"
    versus = f"version {target.version}'s {metric} {_fmt(value)}"
    if champion is not None:
        versus += f" vs {CHAMPION} version {champion.version}'s {_fmt(previous_value)} (lower is better)"
    if force:
        return True, f"forced (--force): {versus}"
    if value is None:
        raise RegistryError(f"version {target.version} (run {target.run_id}) has no metric {metric!r} to compare: "
                            "pick another with --metric (e.g. test/model.resolution once evaluate ran), or --force")
    if champion is None:
        return True, f"no {CHAMPION} yet: {versus}"
    if previous_value is None:
        raise RegistryError(f"{CHAMPION} version {champion.version} (run {champion.run_id}) has no metric {metric!r} "
                            "to compare with: pick another with --metric, or --force")
    if value < previous_value:
        return True, f"better: {versus}"
    return False, f"not better: {versus}; {CHAMPION} stays (--force moves it anyway)"


def promote(name: str, metric: str, version: str | None = None, run_id: str | None = None,
            force: bool = False) -> Promotion:
    """Move alias `champion` of `name` to a version (--version, --run, else alias candidate) when its `metric` is
    lower than the champion's, when there is no champion, or when forced; the moved version gets the tag
    `promotion` saying why."""
    from datetime import UTC, datetime

    client = _client()
    aliases = dict(_registered(client, name).aliases)
    target = _version(client, name, aliases, version, run_id)
    champion = client.get_model_version(name, aliases[CHAMPION]) if CHAMPION in aliases else None
    value = _metric(client, target.run_id, metric)
    previous_value = _metric(client, champion.run_id, metric) if champion is not None else None
    moved, reason = _decide(metric, target, champion, value, previous_value, force)
    if moved:
        client.set_registered_model_alias(name, CHAMPION, target.version)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        client.set_model_version_tag(name, target.version, "promotion", f"{stamp}: {reason}")
    return Promotion(name, str(target.version), str(champion.version) if champion is not None else None, metric,
                     value, previous_value, moved, reason)


def main(name: str, metric: str, version: str | None = None, run_id: str | None = None,
         force: bool = False) -> Promotion:
    """`mtt promote`: promote in the project's tracking store and print what happened and why."""
    from mlflow.exceptions import MlflowException

    tracking.configure()
    try:
        result = promote(name, metric, version, run_id, force)
    except MlflowException as exc:  # the store itself failed: one line, no traceback
        raise RegistryError(f"promoting in {tracking.tracking_uri()}: {exc.message}") from None
    if result.moved:
        was = f"was version {result.previous}" if result.previous else "there was none"
        print(f"mtt promote: {name} version {result.version} is now {CHAMPION} ({was}): {result.reason}")
    else:
        print(f"mtt promote: {CHAMPION} of {name} unchanged"
              f"{f' (version {result.previous})' if result.previous else ''}: {result.reason}")
    return result
