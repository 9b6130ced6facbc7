"""How an MLflow run ends: never left RUNNING by a process that stopped.

A run carries the tags of the process that owns it (`process_tags`); a run this process created ends FINISHED,
FAILED or KILLED on every way out (`ended`), a SIGTERM waits while a run and its files change together
(`SigtermDeferral`), and a run whose process died without a word (SIGKILL, power loss) is marked KILLED by the
next run or `mtt runs --cleanup` (`mark_dead_runs`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


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


@contextmanager
def active_run_ends_on_failure() -> Iterator[None]:
    """The active (fluent) MLflow run ended KILLED on Ctrl-C or SIGTERM and FAILED on an error; a normal exit
    leaves it to its owner (mlflow.start_run's block ends it FINISHED)."""
    import mlflow

    try:
        yield
    except KeyboardInterrupt:
        mlflow.end_run(status="KILLED")
        raise
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise


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
