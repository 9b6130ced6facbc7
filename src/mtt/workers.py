"""How many worker processes a stage uses."""

from __future__ import annotations

import os


def resolve_workers(requested: int, n_tasks: int) -> int:
    """Worker count: `requested` (0 means all usable cores), never more than the tasks, at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(requested or cores, n_tasks))
