"""Local worker processes: results in order or as they finish, and a worker that dies fails its job by name."""

from __future__ import annotations

import os
import time

import pytest

from mtt.core.workers import ExecutorError, LocalExecutor, resolve_workers


def square_after(job: tuple[int, float]) -> int:
    """job = (value, seconds to wait first)."""
    time.sleep(job[1])
    return job[0] ** 2


def die_on_three(job: tuple[int, float]) -> int:
    if job[0] == 3:
        time.sleep(0.3)  # the jobs before it are done by then
        os._exit(1)  # what the out-of-memory killer or a segfault leaves: no exception, no result
    return square_after(job)


def test_results_come_in_order_or_as_they_finish():
    jobs = [(1, 0.3), (2, 0.0), (3, 0.0)]
    with LocalExecutor(2, "test") as local:
        assert list(local.in_order(square_after, jobs, ["a", "b", "c"])) == [1, 4, 9]
        assert sorted(local.as_completed(square_after, jobs, ["a", "b", "c"])) == [1, 4, 9]
        assert local.results(local.submit(square_after, jobs), ["a", "b", "c"]) == [1, 4, 9]


def test_a_worker_that_dies_fails_the_stage_naming_its_job_instead_of_hanging():
    jobs = [(1, 0.0), (2, 0.0), (3, 0.0), (4, 0.0)]
    start = time.monotonic()
    with pytest.raises(ExecutorError, match=r"test: read step 2 failed: a worker process died"), \
            LocalExecutor(2, "test") as local:
        list(local.in_order(die_on_three, jobs, [f"read step {i}" for i in range(4)]))
    assert time.monotonic() - start < 30


def test_an_exception_in_a_job_comes_back_as_raised():
    with pytest.raises(TypeError), LocalExecutor(2, "test") as local:
        list(local.in_order(square_after, [(1, 0.0), ("x", 0.0)], ["a", "b"]))


def test_worker_count():
    assert resolve_workers(0, 1) == 1 and resolve_workers(3, 10) == 3 and resolve_workers(8, 2) == 2
