"""The schedulers UWFQ is compared with: FIFO, Spark's FAIR, per-user fair (UJF) and DRF.

All hand out one admission at a time and are work-conserving: a job is skipped only when its
demand does not fit the free units. (CFQ, the fourth baseline, is a virtual-time queue and lives
with UWFQ in ``uwfq``.)

- FIFO: oldest job first, all its tasks before the next job's (Spark's default).
- FAIR: Spark's FAIR pool with one job per schedulable: the job with the fewest running tasks.
- UJF: the user with the fewest running tasks per weight (Spark's FAIR pools per user count
  tasks, whatever each one occupies), then FAIR among that user's jobs.
- DRF: the user with the smallest dominant share per weight, then FIFO among its jobs. With the
  single resource (units) jobs ask for here, the dominant share is the user's running units
  (tasks x demand) over the capacity. When every task takes one unit, DRF differs from UJF only
  inside a user; when demands differ, a user of wide tasks gets fewer of them under DRF.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fairpack.solver.fairqueue import policy
from fairpack.solver.fairqueue.policy import JobId, QueuedJob, UserName


@dataclass
class JobState:
    """A job's admissions as a baseline tracks them."""

    job: QueuedJob
    waiting: int
    """Tasks not admitted yet."""
    running: int = 0
    """Tasks admitted and not done."""


JobKey = Callable[[JobState], tuple[object, ...]]


def arrival_key(state: JobState) -> tuple[object, ...]:
    """FIFO: oldest first."""
    return state.job.order_key()


def fewest_running_key(state: JobState) -> tuple[object, ...]:
    """Spark FAIR with equal weights: fewest running tasks first, then oldest."""
    return (state.running, *state.job.order_key())


class JobQueue:
    """One heap of jobs under a ``JobKey``: FIFO or FAIR."""

    def __init__(self, key: JobKey) -> None:
        self._key = key
        self._jobs: dict[JobId, JobState] = {}
        self._heap: policy.LazyHeap[JobId] = policy.LazyHeap()

    def submit(self, job: QueuedJob, *, now: float) -> None:
        self._jobs[job.id] = JobState(job=job, waiting=job.tasks)
        self._rekey(job.id)

    def next(self, *, now: float, free: int) -> JobId | None:
        return self._heap.first(lambda job_id: self._jobs[job_id].job.demand <= free)

    def pop(self, *, now: float, free: int) -> JobId | None:
        job_id = self.next(now=now, free=free)
        if job_id is not None:
            state = self._jobs[job_id]
            state.waiting -= 1
            state.running += 1
            self._rekey(job_id)
        return job_id

    def task_done(self, job_id: JobId, *, now: float) -> None:
        self._jobs[job_id].running -= 1
        self._rekey(job_id)

    def finish(self, job_id: JobId, *, now: float) -> None:
        self._jobs.pop(job_id, None)
        self._heap.remove(job_id)

    def waiting_jobs(self) -> int:
        """Jobs with tasks not admitted yet."""
        return len(self._heap)

    def _rekey(self, job_id: JobId) -> None:
        state = self._jobs[job_id]
        if state.waiting > 0:
            self._heap.push(job_id, self._key(state))
        else:
            self._heap.remove(job_id)


Cost = Callable[[QueuedJob], int]
"""What one running task of a job counts against its user: 1 (a task) or its demand (units)."""


def one_task(job: QueuedJob) -> int:
    """UJF: every task counts the same."""
    return 1


def units(job: QueuedJob) -> int:
    """DRF on one resource: a task counts the units it occupies."""
    return job.demand


class UserQueue:
    """Users first (least running ``cost`` per weight), then a ``JobQueue`` inside each user."""

    def __init__(self, inner: JobKey, *, weights: Mapping[UserName, float], cost: Cost = units) -> None:
        self._inner = inner
        self._weights = weights
        self._cost = cost
        self._users: dict[UserName, JobQueue] = {}
        self._running: dict[UserName, int] = {}
        self._owner: dict[JobId, QueuedJob] = {}
        self._order: policy.LazyHeap[UserName] = policy.LazyHeap()
        """Users with waiting jobs by (running cost / weight, name)."""

    def submit(self, job: QueuedJob, *, now: float) -> None:
        if job.user not in self._users:
            self._users[job.user] = JobQueue(self._inner)
            self._running[job.user] = 0
        self._users[job.user].submit(job, now=now)
        self._owner[job.id] = job
        self._rekey(job.user)

    def next(self, *, now: float, free: int) -> JobId | None:
        user = self._choose(now=now, free=free)
        return None if user is None else self._users[user].next(now=now, free=free)

    def pop(self, *, now: float, free: int) -> JobId | None:
        user = self._choose(now=now, free=free)
        if user is None:
            return None
        job_id = self._users[user].pop(now=now, free=free)
        assert job_id is not None
        self._running[user] += self._cost(self._owner[job_id])
        self._rekey(user)
        return job_id

    def task_done(self, job_id: JobId, *, now: float) -> None:
        job = self._owner[job_id]
        self._running[job.user] -= self._cost(job)
        self._users[job.user].task_done(job_id, now=now)
        self._rekey(job.user)

    def finish(self, job_id: JobId, *, now: float) -> None:
        job = self._owner.pop(job_id)
        self._users[job.user].finish(job_id, now=now)
        self._rekey(job.user)

    def _choose(self, *, now: float, free: int) -> UserName | None:
        return self._order.first(lambda user: self._users[user].next(now=now, free=free) is not None)

    def _rekey(self, user: UserName) -> None:
        if self._users[user].waiting_jobs():
            self._order.push(user, (self._running[user] / self._weights.get(user, 1.0), user))
        else:
            self._order.remove(user)


def fifo() -> JobQueue:
    """Spark's FIFO."""
    return JobQueue(arrival_key)


def fair() -> JobQueue:
    """Spark's FAIR, one job per pool entry, equal weights."""
    return JobQueue(fewest_running_key)


def ujf(*, weights: Mapping[UserName, float]) -> UserQueue:
    """Per-user fair: weighted equal share of running tasks per user, FAIR inside."""
    return UserQueue(fewest_running_key, weights=weights, cost=one_task)


def drf(*, weights: Mapping[UserName, float]) -> UserQueue:
    """Dominant resource fairness across users, FIFO inside each user."""
    return UserQueue(arrival_key, weights=weights, cost=units)
