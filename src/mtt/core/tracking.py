"""Where MLflow runs are stored: the tracking URI, the server's health check, the experiments.

The tracking URI defaults to an absolute ``sqlite:///<repo>/mlflow.db`` so that every way of running a stage
(`dvc repro`, `dvc exp run --queue` in a temporary workspace under ``.dvc/tmp``, `mlflow run .`) logs into the
same database. ``MLFLOW_TRACKING_URI`` overrides it (e.g. a tracking server).

With a tracking server (``http://...``, e.g. the team's `make server`), the server decides where artifacts go
(its proxied artifact store), and `configure` first checks that the server answers, so that a stage fails in one
line before any work instead of after MLflow's minutes of retries.

Beside it: `mtt.core.metric_names` (what figures are called in a run), `mtt.core.run_lifecycle` (which process
owns a run, and ending it on every way out) and `mtt.core.lineage` (the code and data a run came from).
"""

from __future__ import annotations

import os
from pathlib import Path

from mtt.core.errors import MttError

DB_NAME = "mlflow.db"
ARTIFACTS = "mlartifacts"
_MARKERS = ("dvc.yaml", "MLproject")

#: the experiment tag by which MLflow's UI opens an experiment on its training runs, not on the GenAI overview.
#: MLflow 3.17.2's bundle reads it only while its workflow switch is hidden (a feature flag that is constant
#: true in that build): there the URL's `workflowType` or the browser's last choice (local storage
#: `mlflow.workflowType`, "genai" when never chosen) decide, hence `mtt ui` printing `?workflowType=machine_learning`.
#: The tag is all the API can set; it is kept for the UI versions that read it.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
#: system metrics (CPU, memory, disk, network): sampled every second, one averaged point per 5 samples, so a run
#: of seconds gets a point and a run of hours ~700 per metric
SYSTEM_METRICS_INTERVAL_S, SYSTEM_METRICS_SAMPLES = 1.0, 5
#: seconds a tracking server has to answer its health check
SERVER_TIMEOUT_S = 5.0
#: tracking servers that answered in this process
_ANSWERED: set[str] = set()


class TrackingError(MttError):
    """The tracking store cannot be reached: names the URI and what to do."""


def repo_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The project root above `start` (default: cwd), looking through DVC's temporary experiment workspaces."""
    here = Path(start or Path.cwd()).resolve()
    parts = here.parts
    # `dvc exp run --queue/--temp` copies the repo to <root>/.dvc/tmp/exps/...: use <root>, not the copy.
    if ".dvc" in parts:
        idx = parts.index(".dvc")
        if idx + 1 < len(parts) and parts[idx + 1] == "tmp":
            return Path(*parts[:idx])
    for candidate in (here, *here.parents):
        if all((candidate / marker).exists() for marker in _MARKERS):
            return candidate
    return here


def in_project(start: str | os.PathLike[str] | None = None) -> bool:
    """Whether `start` (default: cwd) lies in a project folder (dvc.yaml and MLproject)."""
    root = repo_root(start)
    return all((root / marker).exists() for marker in _MARKERS)


def tracking_uri(start: str | os.PathLike[str] | None = None) -> str:
    """MLFLOW_TRACKING_URI if set, else the project's SQLite store as an absolute URI."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{repo_root(start) / DB_NAME}"


def configure(start: str | os.PathLike[str] | None = None) -> str:
    """Point MLflow at the tracking store and return the URI; a new SQLite store is set up under a file lock.

    Outside a project folder (and without MLFLOW_TRACKING_URI) it says where the runs will go instead of
    silently creating a stray mlflow.db. Two processes creating the same SQLite store at once would race in
    MLflow's schema migration; the lock makes the second wait for the first.
    """
    import mlflow

    uri = tracking_uri(start)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # nothing of a physicist's runs leaves the machine
    if not os.environ.get("MLFLOW_TRACKING_URI") and not in_project(start):
        print(f"mtt: no project folder (with dvc.yaml and MLproject) at or above {Path(start or Path.cwd())}: "
              f"MLflow runs go to {uri}; set MLFLOW_TRACKING_URI to log elsewhere")
    require_server(uri)
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        from filelock import FileLock
        from mlflow.tracking import MlflowClient

        database = Path(uri.removeprefix("sqlite:///").split("?")[0])
        with FileLock(str(database) + ".lock", timeout=300):
            MlflowClient(uri).search_experiments(max_results=1)  # creates and migrates the schema, once
    return uri


def is_server(uri: str) -> bool:
    """Whether the tracking URI is a tracking server (http or https), which owns the artifact store."""
    return uri.split("://", 1)[0].lower() in ("http", "https")


def require_server(uri: str | None = None, timeout: float = SERVER_TIMEOUT_S) -> None:
    """With a tracking server as tracking URI (default: `tracking_uri()`), check that it answers its health
    check within `timeout` seconds; with a local store, that its folder exists (MLflow would make a new, empty
    store anywhere); raise TrackingError naming the URI otherwise."""
    import urllib.error
    import urllib.request

    uri = uri or tracking_uri()
    if not is_server(uri):
        _require_local_folder(uri)
        return
    if uri in _ANSWERED:  # the CLI checks before any work, configure() again: ask once
        return
    health = f"{uri.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:  # something answers, but not MLflow's health check
        reason = f"{health} answered HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    else:
        _require_allowed_host(uri, timeout)
        _ANSWERED.add(uri)
        return
    raise TrackingError(f"no MLflow tracking server answers at {uri} ({reason}): start it with `make server` or "
                        "unset MLFLOW_TRACKING_URI")


def local_store_folder(uri: str) -> Path | None:
    """The folder that must exist for a local store: the SQLite file's folder, or the folder above a file store
    (file: URI or plain path), which MLflow creates; None for a database server, an in-memory SQLite or others."""
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = uri.split("?")[0][len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
        return Path(path).parent if path and path != ":memory:" else None
    if scheme == "file":
        return Path(urllib.request.url2pathname(parts.path)).parent
    if scheme == "" or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        return Path(uri).parent
    return None


def _require_local_folder(uri: str) -> None:
    """Refuse a local store in a folder that does not exist: a typo would start an empty store there."""
    folder = local_store_folder(uri)
    if folder is not None and not folder.is_dir():
        raise TrackingError(f"tracking URI {uri}: the folder {folder} does not exist (MLflow would start a new, "
                            "empty store there): create it, or set MLFLOW_TRACKING_URI to a store in an existing "
                            "folder, or unset it for the project's mlflow.db")


def _require_allowed_host(uri: str, timeout: float) -> None:
    """The health check is exempt from the server's Host check (`mlflow server --allowed-hosts`): one API request
    says whether the server accepts the host name of the URI and the login (MLFLOW_TRACKING_USERNAME/PASSWORD)."""
    import base64
    import urllib.error
    import urllib.parse
    import urllib.request

    request = urllib.request.Request(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/get?experiment_id=0")
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if user:  # the login MLflow's client sends (the server of `make server` asks for one)
        login = f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
        request.add_header("Authorization", f"Basic {base64.b64encode(login).decode()}")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            who = (f"refuses the login of user {user!r}: check MLFLOW_TRACKING_PASSWORD" if user else
                   "asks who you are (HTTP 401): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (`make "
                   "server` prints where the admin password is; the admin creates a user per teammate)")
            raise TrackingError(f"the MLflow tracking server at {uri} {who}") from None
        if exc.code == 403 and "Invalid Host header" in exc.read(500).decode(errors="replace"):
            host = urllib.parse.urlsplit(uri).netloc
            raise TrackingError(f"the MLflow tracking server at {uri} refuses the host name {host!r}: start it "
                                f"with --allowed-hosts naming {host} (make server SERVER_ARGS=\"--host 0.0.0.0 "
                                f"--allowed-hosts {host}\"), or use a host name it allows") from None
    except (urllib.error.URLError, OSError, ValueError):
        return


def ensure_experiment(name: str, start: str | os.PathLike[str] | None = None) -> str:
    """The id of experiment `name`, created with its artifacts in <repo>/mlartifacts (an absolute path), or,
    with a tracking server, where the server keeps artifacts (its proxied store, `mlflow-artifacts:/`).

    MLflow's default artifact root for a local store is relative to the working directory, so runs started from
    DVC's temporary workspaces would otherwise scatter their artifacts. A server's clients must not name a
    folder of their own machine: the others could not read it. Processes that create it at the same time (the
    first runs of a new store) all get it.
    """
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        from mlflow.exceptions import MlflowException

        location = {} if is_server(mlflow.get_tracking_uri()) else {
            "artifact_location": (repo_root(start) / ARTIFACTS).as_uri()}
        try:
            return mlflow.create_experiment(name, tags=EXPERIMENT_KIND, **location)
        except MlflowException as exc:  # another process (a run started at the same time) created it first
            if exc.error_code != "RESOURCE_ALREADY_EXISTS" or mlflow.get_experiment_by_name(name) is None:
                raise
            experiment = mlflow.get_experiment_by_name(name)
    if experiment.tags.get("mlflow.experimentKind") is None:  # made before the tag: open it on its runs too
        from mlflow.tracking import MlflowClient

        MlflowClient().set_experiment_tag(experiment.experiment_id, *next(iter(EXPERIMENT_KIND.items())))
    return experiment.experiment_id


def system_metrics_enabled() -> bool:
    """Whether runs log system metrics (on unless MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false); sets the sampling."""
    import mlflow

    if os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true").lower() in ("false", "0"):
        return False
    mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
    mlflow.set_system_metrics_samples_before_logging(SYSTEM_METRICS_SAMPLES)
    return True
