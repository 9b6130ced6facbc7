"""What the Dask tests of simulate and prepare share: a worker preload that kills a worker at a chosen task,
a free port, and a check that no worker process outlives its test."""

from __future__ import annotations

import socket
import time

import psutil
import pytest


def kill_script(key_prefix: str) -> str:
    """A Dask worker preload whose plugin ends the worker process (os._exit: no clean-up, as the kernel's OOM killer
    would) the moment a task whose key starts with `key_prefix` begins executing on it: a deterministic death."""
    return f'''
import os

from distributed import WorkerPlugin


class KillOnTask(WorkerPlugin):
    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and str(key).startswith({key_prefix!r}):
            os._exit(1)


async def dask_setup(worker):
    await worker.plugin_add(KillOnTask(), name="kill-on-task")
'''


def free_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_processes(exclude: set[int] = frozenset()) -> list[psutil.Process]:
    """This process' live descendants, but multiprocessing's resource tracker: one per parent process for its
    lifetime, started by the first spawned child (the LocalCluster's workers), not a leak."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if (child.pid not in exclude and child.status() != psutil.STATUS_ZOMBIE
                    and "multiprocessing.resource_tracker" not in " ".join(child.cmdline())):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.fixture(autouse=True)
def no_leaked_processes():
    """Every child process a test starts (LocalCluster workers) has ended when it returns."""
    before = {p.pid for p in worker_processes()}
    yield
    deadline = time.monotonic() + 15
    while (left := worker_processes(before)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes left running: {[(p.pid, p.cmdline()[:4]) for p in left]}"
