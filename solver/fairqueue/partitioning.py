"""Runtime partitioning: cut a job into tasks short enough not to block small jobs.

A task cannot be preempted, so a job queued behind long tasks waits for one of them to end
however urgent it is: the priority inversion the paper's runtime partitioning removes by
re-cutting each job, from its estimated size, into tasks of about ``target_task_s`` (0.5 s in
the paper: long enough that scheduling overhead stays small, short enough that a freshly
arrived small job gets capacity within half a second).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PartitionSettings:
    """Targets of the re-cut."""

    target_task_s: float = 0.5
    """Longest task wanted, in seconds (the paper's choice)."""
    max_partitions: int = 1024
    """Upper limit on tasks per job: per-task overhead grows with the count."""


@dataclass(frozen=True)
class Partitioning:
    """How a job should be cut."""

    partitions: int
    """Number of tasks (Spark partitions)."""
    executors: int
    """Executors (units) worth asking for: no more than there are tasks, nor than the cluster has."""


def recommend(
    *,
    estimated_work_s: float,
    current_partitions: int,
    capacity: int,
    settings: PartitionSettings | None = None,
) -> Partitioning:
    """Partitions so each task lasts at most ``target_task_s``; never fewer than the job has already
    (coarsening would lengthen tasks, the opposite of the aim)."""
    settings = settings or PartitionSettings()
    wanted = math.ceil(estimated_work_s / settings.target_task_s) if estimated_work_s > 0 else 1
    partitions = max(current_partitions, min(wanted, settings.max_partitions), 1)
    return Partitioning(partitions=partitions, executors=min(partitions, capacity))
