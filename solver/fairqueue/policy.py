"""The job record queues order and the interface every ordering policy implements.

Modelled on Kueue's queue interface: the admission loop asks ``next`` (peek) or ``pop``
(take one admission) whenever capacity frees, tells the policy when an admitted task gives its
capacity back (``task_done``) and when the whole job is over (``finish``). FIFO, Spark's FAIR,
per-user fair, DRF, CFQ and UWFQ all fit behind it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Generic, NewType, Protocol, TypeVar

JobId = NewType("JobId", str)
UserName = NewType("UserName", str)


@dataclass(frozen=True)
class QueuedJob:
    """A job as the queue sees it: who sent it, when, how big it is believed to be.

    A job is ``tasks`` admissions of ``demand`` units each (Spark tasks on one core each, or one
    pod group asking for ``demand`` GPUs with ``tasks=1``).
    """

    id: JobId
    user: UserName
    arrival_s: float
    """When the job was submitted, in the caller's clock (seconds)."""
    work_s: float
    """Estimated size in capacity x seconds (e.g. GPU-seconds): runtime x demand, summed over tasks."""
    tasks: int = 1
    """Number of separate admissions the job needs (each takes ``demand`` units)."""
    demand: int = 1
    """Units of capacity one admission occupies."""
    name: str = ""
    """What the job is (e.g. its template or Spark job name): the estimator learns sizes per (user, name)."""

    def order_key(self) -> tuple[float, str]:
        """Arrival then id: the deterministic tie-break every policy uses."""
        return (self.arrival_s, self.id)


class OrderingPolicy(Protocol):
    """Decides which job's next admission goes first. Times are seconds, non-decreasing."""

    def submit(self, job: QueuedJob, *, now: float) -> None:
        """Queue a new job (all of its tasks wait)."""

    def next(self, *, now: float, free: int) -> JobId | None:
        """The job whose next admission goes first among those needing at most ``free`` units."""

    def pop(self, *, now: float, free: int) -> JobId | None:
        """Like ``next``, and records that one admission of that job started."""

    def task_done(self, job_id: JobId, *, now: float) -> None:
        """One admitted task of the job finished and gave its capacity back."""

    def finish(self, job_id: JobId, *, now: float) -> None:
        """The job is over (every task done): forget it."""


K = TypeVar("K")


class LazyHeap(Generic[K]):
    """A min-heap of items whose keys change: re-``push`` to re-key, stale entries are skipped.

    Policies re-key a job on every admission; a lazy heap keeps that O(log n) instead of a scan.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[tuple[object, ...], int, K]] = []
        self._live: dict[K, int] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, item: K) -> bool:
        return item in self._live

    def __iter__(self) -> Iterator[K]:
        """Live items, in no particular order (a snapshot: safe to modify the heap meanwhile)."""
        return iter(list(self._live))

    def push(self, item: K, key: tuple[object, ...]) -> None:
        """Insert ``item`` or give it a new key."""
        seq = next(self._seq)
        self._live[item] = seq
        heapq.heappush(self._heap, (key, seq, item))

    def remove(self, item: K) -> None:
        """Forget ``item`` (its heap entries become stale)."""
        self._live.pop(item, None)

    def first(self, accept: Callable[[K], bool]) -> K | None:
        """The smallest-keyed live item ``accept`` takes, without removing it."""
        with contextlib.closing(self._ordered()) as items:
            for item in items:
                if accept(item):
                    return item
        return None

    def _ordered(self) -> Generator[K, None, None]:
        """Live items in key order; drops stale entries met on the way."""
        skipped: list[tuple[tuple[object, ...], int, K]] = []
        try:
            while self._heap:
                _, seq, item = self._heap[0]
                if self._live.get(item) != seq:
                    heapq.heappop(self._heap)
                    continue
                skipped.append(heapq.heappop(self._heap))
                yield item
        finally:
            for entry in skipped:
                heapq.heappush(self._heap, entry)
