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
import subprocess
from pathlib import Path

from mtt.errors import MttError

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

        database = Path(uri.removeprefix("sqlite:///"))
        database.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(database) + ".lock", timeout=300):
            MlflowClient(uri).search_experiments(max_results=1)  # creates and migrates the schema, once
    return uri


def is_server(uri: str) -> bool:
    """Whether the tracking URI is a tracking server (http or https), which owns the artifact store."""
    return uri.split("://", 1)[0].lower() in ("http", "https")


def require_server(uri: str | None = None, timeout: float = SERVER_TIMEOUT_S) -> None:
    """With a tracking server as tracking URI (default: `tracking_uri()`), check that it answers its health
    check within `timeout` seconds; raise TrackingError naming the URI otherwise. Nothing for a local store."""
    import urllib.error
    import urllib.request

    uri = uri or tracking_uri()
    if not is_server(uri) or uri in _ANSWERED:  # the CLI checks before any work, configure() again: ask once
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


def _require_allowed_host(uri: str, timeout: float) -> None:
    """The health check is exempt from the server's Host check (`mlflow server --allowed-hosts`): one API request
    says whether the server accepts the host name of the URI; any other answer (an error, a login) is MLflow's."""
    import urllib.error
    import urllib.parse
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/get?experiment_id=0",
                                    timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
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


def mark_dead_runs(experiment_id: str) -> list[str]:
    """Runs left RUNNING by a process that died without a word (SIGKILL, power loss): mark them KILLED."""
    from mlflow.entities import RunStatus
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    dead = [run for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
            if _owner_gone(run.data.tags)]
    for run in dead:
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        print(f"mtt: run {run.info.run_id} ({run.info.run_name}) was left RUNNING by process "
              f"{run.data.tags['mtt.pid']}, which no longer runs: marked KILLED")
    return [run.info.run_id for run in dead]


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
