"""MLflow plumbing in one place: where runs are stored and what lineage they carry.

The tracking URI defaults to an absolute ``sqlite:///<repo>/mlflow.db`` so that every way of running a stage
(`dvc repro`, `dvc exp run --queue` in a temporary workspace under ``.dvc/tmp``, `mlflow run .`) logs into the
same database. ``MLFLOW_TRACKING_URI`` overrides it (e.g. a tracking server).

With a tracking server (``http://...``, e.g. the team's `make server`), the server decides where artifacts go
(its proxied artifact store), and `configure` first checks that the server answers, so that a stage fails in one
line before any work instead of after MLflow's minutes of retries.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mtt.core.errors import MttError

DB_NAME = "mlflow.db"
ARTIFACTS = "mlartifacts"
_MARKERS = ("dvc.yaml", "MLproject")

#: The MLflow UI draws one section per metric prefix (the name up to its last '/'), sorted by name, with the
#: unprefixed metrics last: per-epoch metrics go under EPOCH so that their curves are the first section, and
#: evaluation figures under the split they were computed on (`test/model.resolution`), one section per split.
EPOCH = "epoch"
#: experiment tag that makes the UI open an experiment on its training runs, not on the GenAI overview
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


def process_tags() -> dict[str, str]:
    """Which process owns a run: host, pid and the process' start time (pids are reused)."""
    import socket

    import psutil

    return {"mtt.host": socket.gethostname(), "mtt.pid": str(os.getpid()),
            "mtt.process_start": f"{psutil.Process().create_time():.3f}"}


def _owner_gone(tags: dict[str, str]) -> bool:
    """True if the run's process (on this host) no longer runs."""
    import socket

    import psutil

    if tags.get("mtt.host") != socket.gethostname() or "mtt.pid" not in tags:
        return False
    try:
        process = psutil.Process(int(tags["mtt.pid"]))
        return abs(process.create_time() - float(tags.get("mtt.process_start", "0"))) > 1.0
    except psutil.NoSuchProcess:
        return True


#: `mtt runs --cleanup` marks a RUNNING run without mtt's process tags KILLED once it started this long ago
UNTAGGED_HOURS = 24.0


def _running_runs(client: Any, experiment_id: str) -> list[Any]:
    """Every RUNNING run of the experiment, page by page."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'",
                                  max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _untagged_dead(run: Any, untagged_hours: float | None) -> bool:
    """A run without mtt's process tags (made by another tool, or before mtt tagged its runs) counts as dead
    once it started more than `untagged_hours` ago; never when that is None."""
    if untagged_hours is None or "mtt.pid" in run.data.tags:
        return False
    return (time.time() * 1000 - (run.info.start_time or 0)) >= untagged_hours * 3600 * 1000


def mark_dead_runs(experiment_id: str, untagged_hours: float | None = None) -> list[str]:
    """Runs left RUNNING by a process that died without a word (SIGKILL, power loss): mark them KILLED.

    A run with mtt's process tags is dead when its process no longer runs on this host; one without them when
    it started more than `untagged_hours` ago (None, as train and sweep call it: left alone, since another tool
    may still be writing it). Runs of other hosts are left to `mtt runs --cleanup` there."""
    from mlflow.entities import RunStatus
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    running = _running_runs(client, experiment_id)
    dead = [run for run in running if _owner_gone(run.data.tags) or _untagged_dead(run, untagged_hours)]
    for run in dead:
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        if "mtt.pid" in run.data.tags:
            print(f"mtt: run {run.info.run_id} ({run.info.run_name}) was left RUNNING by process "
                  f"{run.data.tags['mtt.pid']}, which no longer runs: marked KILLED")
        else:
            hours = (time.time() * 1000 - (run.info.start_time or 0)) / 3.6e6
            print(f"mtt: run {run.info.run_id} ({run.info.run_name}) is RUNNING without mtt's process tags and "
                  f"started {hours:.0f} h ago (--older-than {untagged_hours:g}): marked KILLED")
    if untagged_hours is not None:
        _report_left(running, dead, untagged_hours)
    return [run.info.run_id for run in dead]


def _report_left(running: list[Any], dead: list[Any], untagged_hours: float) -> None:
    """Say which RUNNING runs cleanup could not judge: untagged ones too young, and those of other hosts."""
    import socket

    gone = {run.info.run_id for run in dead}
    left = [run for run in running if run.info.run_id not in gone]
    untagged = sum("mtt.pid" not in run.data.tags for run in left)
    hosts = sorted({run.data.tags["mtt.host"] for run in left
                    if "mtt.pid" in run.data.tags and run.data.tags.get("mtt.host") != socket.gethostname()})
    if untagged:
        print(f"mtt: {untagged} RUNNING run(s) without mtt's process tags started less than {untagged_hours:g} h ago "
              "left as they are (another tool may still write them; --older-than 0 marks them KILLED too)")
    if hosts:
        print(f"mtt: RUNNING runs of processes on {', '.join(hosts)} left as they are: run `mtt runs --cleanup` "
              "there")


@contextmanager
def ended(client: Any, run_id: str) -> Iterator[None]:
    """A run this process created with the client: ended FINISHED after the block, KILLED on Ctrl-C or
    SIGTERM, FAILED on an error (so that no run stays RUNNING)."""
    try:
        yield
    except KeyboardInterrupt:
        client.set_terminated(run_id, "KILLED")
        raise
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


class SigtermDeferral:
    """Holds SIGTERM back while a run and the files it describes change together (a run created and its
    cleanup set up; the model swapped in and the run ended FINISHED): a SIGTERM meanwhile is delivered at
    `release`. Used as a context manager it is armed on entry and released on a normal exit (on an exception,
    only the handler is restored). Only the main thread handles signals: elsewhere it does nothing."""

    def __init__(self, armed: bool = True) -> None:
        self.armed, self.caught, self._previous = armed, False, None

    def __enter__(self) -> SigtermDeferral:
        if self.armed:
            self.arm()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.release()
        else:
            self.restore()

    def _note(self, signum: int, frame: object) -> None:
        self.caught = True

    def arm(self) -> None:
        """From now on a SIGTERM waits."""
        if self._previous is None and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._note)

    def restore(self) -> bool:
        """Put the previous SIGTERM handler back; whether a SIGTERM came meanwhile."""
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
        caught, self.caught = self.caught, False
        return caught

    def release(self) -> None:
        """Put the previous handler back and deliver a SIGTERM that came meanwhile (to that handler)."""
        if self.restore():
            signal.raise_signal(signal.SIGTERM)


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
