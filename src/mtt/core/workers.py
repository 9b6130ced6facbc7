"""Where a stage's tasks run: local worker processes, or a Dask cluster (`<stage>.executor: dask`).

Both executors hand out one job per task and give results in the jobs' order or as they finish; a worker that
dies fails the stage with an error naming its job. Dask is imported only when a stage's executor is `dask`, so
local runs do not pay for it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, nullcontext, suppress
from typing import Any

from pydantic import Field

from mtt.core.errors import MttError
from mtt.core.params import Section

#: a Dask scheduler address: [protocol://]host:port (tcp://node12:8786, tls://..., [::1]:8786)
SCHEDULER_ADDRESS = r"^$|^([a-z]+://)?[^\s/]+:\d+$"


class DaskParams(Section):
    """Where a stage's tasks run when its executor is `dask` (one task per chunk or read step)."""

    scheduler: str = Field(
        "", pattern=SCHEDULER_ADDRESS, description="address of a running Dask scheduler (tcp://host:8786, e.g. a "
        "dask-jobqueue cluster's scheduler_address); empty: start a LocalCluster of `workers` single-threaded worker "
        "processes for the run")
    connect_timeout: float = Field(
        10.0, gt=0, le=600, description="seconds to wait for the scheduler before failing (before any work)")


def resolve_workers(requested: int, n_tasks: int) -> int:
    """Worker count: `requested` (0 means all usable cores), never more than the tasks, at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(requested or cores, n_tasks))


class ExecutorError(MttError):
    """The Dask scheduler cannot be reached, or a task was lost with its worker: names the address or the task."""


#: prctl option: the signal the kernel sends this process when its parent dies (Linux)
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Make this worker process die with its parent `parent` (the stage): on Linux the kernel SIGKILLs it when
    the parent ends, even by SIGKILL, instead of leaving it to finish its task into a removed temporary folder
    and then wait for the next one for ever; a parent already gone ends it now. Elsewhere only the latter."""
    if sys.platform.startswith("linux"):
        import ctypes

        with suppress(OSError, AttributeError):  # no prctl in this C library: the check below still runs
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect: no signal will come
        os._exit(1)


def _start_worker(parent: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    """A local worker's first step: die with the stage, then the stage's own initializer."""
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


class LocalExecutor:
    """Worker processes forked from this process for one stage run, used as a context manager.

    The workers are forked when it is created, so a stage creates it before starting threads of its own (a fork
    while another thread holds a lock can leave the child stuck). A worker that dies (out of memory, a crash)
    fails the stage with an `ExecutorError` naming the job it was running; `multiprocessing.Pool` instead waits
    forever for the lost task, which is how a 1M-event prepare once hung with a dead worker. The workers die
    with the stage (`die_with_parent`), even when it is SIGKILLed: Linux ties that to the thread that forked
    them, so a stage creates its executor in its main thread.
    """

    def __init__(self, workers: int, stage: str, initializer: Callable[..., None] | None = None,
                 initargs: tuple[Any, ...] = ()) -> None:
        self.stage, self.workers = stage, workers
        self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_start_worker,
                                        initargs=(os.getpid(), initializer, initargs))
        self.pool.submit(int).result()  # fork every worker now (the fork context starts them all at once)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _result(self, future: Future, name: str) -> Any:
        try:
            return future.result()
        except BrokenProcessPool:
            raise ExecutorError(f"{self.stage}: {name} failed: a worker process died (a worker process ends like "
                                "this when it runs out of memory or crashes)") from None

    def submit(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Future]:
        """One task per job, started now."""
        return [self.pool.submit(fn, job) for job in jobs]

    def results(self, futures: Sequence[Future], names: Sequence[str]) -> list[Any]:
        """The tasks' results in their order: the first failure (or a dead worker) raised."""
        return [self._result(future, name) for future, name in zip(futures, names, strict=True)]

    def in_order(self, fn: Callable[[Any], Any], jobs: Sequence[Any], names: Sequence[str]) -> Iterator[Any]:
        """fn(job) of every job as one task each, results in the jobs' order (each freed once collected)."""
        futures: list[Future | None] = list(self.submit(fn, jobs))
        for i, name in enumerate(names):
            future, futures[i] = futures[i], None
            yield self._result(future, name)

    def as_completed(self, fn: Callable[[Any], Any], jobs: Sequence[Any], names: Sequence[str]) -> Iterator[Any]:
        """fn(job) of every job as one task each, results as they finish."""
        pending = dict(zip(self.submit(fn, jobs), names, strict=True))
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield self._result(future, pending.pop(future))


class DaskExecutor:
    """A Dask client for one stage run, used as a context manager; every task is one job of the stage.

    It connects when created, before any work: to `params.scheduler`, or to a LocalCluster of `workers`
    single-threaded worker processes that it starts (they import the `preload` modules at start-up). On exit it
    cancels what is left and stops its LocalCluster, killing the workers, so that no task writes into an output
    folder the stage is removing. A task's exception comes back as it was raised; a task whose worker died
    becomes an `ExecutorError` naming the task.
    """

    def __init__(self, params: DaskParams, workers: int, stage: str, preload: Sequence[str] = ()) -> None:
        try:
            import dask
            import distributed
        except ImportError as exc:
            raise ExecutorError(f"{stage}.executor: dask needs the packages dask and distributed "
                                f"(pip install -r requirements.lock): {exc}") from None
        self.stage = stage
        self.cluster: Any = None
        self._token = uuid.uuid4().hex[:8]  # keys unique to this run: a shared scheduler may run others at once
        self._names: dict[str, str] = {}
        self._pending: dict[str, Any] = {}  # key -> future, until its result is collected
        if params.scheduler:
            self.address = params.scheduler
            try:
                self.client = distributed.Client(params.scheduler, timeout=params.connect_timeout,
                                                 set_as_default=False)
            except Exception as exc:  # refused, timed out, or something else answered on that port
                raise ExecutorError(
                    f"{stage}.dask.scheduler: no Dask scheduler answered at {params.scheduler} within "
                    f"{params.connect_timeout:g} s ({type(exc).__name__}: {exc})") from None
            self.workers = len(self.client.nthreads())
        else:
            # a local worker that dies (out of memory, a crash) would die again on this machine: the scheduler
            # fails its task at once instead of re-running it on the next worker (allowed_failures=0); its HTTP
            # server takes a free port (the default, 8787, may be another cluster's: distributed would warn).
            # worker-saturation 1: a worker holds only the task it runs (not the next one as well), so a death
            # fails that task alone
            with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
                self.cluster = distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    scheduler_kwargs={"allowed_failures": 0, "dashboard_address": ":0"},
                    preload=[*dask.config.get("distributed.worker.preload", []), *preload])
            self.client = distributed.Client(self.cluster, set_as_default=False)
            self.address = self.cluster.scheduler_address
            self.workers = workers

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancel the tasks not yet collected, disconnect, stop the LocalCluster if this executor started it."""
        pending, self._pending = list(self._pending.values()), {}
        try:
            if pending and self.client.status == "running":
                self.client.cancel(pending, force=True)
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
                self.cluster = None

    def _submit(self, fn: Callable[[Any], Any], jobs: Sequence[Any], names: Sequence[str]) -> list[Any]:
        futures = []
        for i, (job, name) in enumerate(zip(jobs, names, strict=True)):
            key = f"{self.stage}-{i}-{self._token}"  # e.g. simulate-3-5f0c2a9e: the job's position, this run
            self._names[key] = name
            futures.append(self.client.submit(fn, job, key=key, retries=0))
            self._pending[key] = futures[-1]
        return futures

    def _result(self, future: Any) -> Any:
        from concurrent.futures import CancelledError

        from distributed import KilledWorker

        name = self._names[future.key]
        try:
            result = future.result()
        except KilledWorker as exc:
            worker = getattr(exc.last_worker, "address", exc.last_worker)
            tries = f"; {exc.allowed_failures + 1} workers died running it" if exc.allowed_failures else ""
            raise ExecutorError(f"{self.stage}: {name} failed: worker died ({worker}{tries}; a worker process "
                                "ends like this when it runs out of memory or crashes)") from None
        except CancelledError as exc:
            raise ExecutorError(f"{self.stage}: {name} failed: cancelled ({exc}); did the Dask scheduler at "
                                f"{self.address} stop?") from None
        del self._pending[future.key]
        return result

    def as_completed(self, fn: Callable[[Any], Any], jobs: Sequence[Any], names: Sequence[str]) -> Iterator[Any]:
        """fn(job) of every job as one task each, results as they finish."""
        from distributed import as_completed

        for future in as_completed(self._submit(fn, jobs, names), loop=self.client.loop):
            yield self._result(future)

    def in_order(self, fn: Callable[[Any], Any], jobs: Sequence[Any], names: Sequence[str]) -> Iterator[Any]:
        """fn(job) of every job as one task each, results in the jobs' order (each freed once collected)."""
        futures = self._submit(fn, jobs, names)
        for i in range(len(futures)):
            future, futures[i] = futures[i], None
            yield self._result(future)


def stage_executor(params: Any, workers: int, stage: str, module: str,
                   local: bool = False) -> AbstractContextManager[DaskExecutor | LocalExecutor | None]:
    """The stage's Dask executor when `<stage>.executor` is dask (connected now, its workers preloaded with the
    stage's `module`, which holds the task functions); with `local`, a LocalExecutor of `workers` processes
    (forked now) when there is more than one; else None in a context: the stage runs its jobs in-process or in
    its own pool."""
    if params.executor == "dask":
        return DaskExecutor(params.dask, workers, stage, [module])
    if local and workers > 1:
        return LocalExecutor(workers, stage)
    return nullcontext()
