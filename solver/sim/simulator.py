"""A discrete-event cluster simulator: replays a workload under one ordering policy.

The cluster has ``capacity`` units; a job is ``tasks`` tasks of ``task_s`` seconds on ``demand``
units each. Events (arrivals, task ends) sit in a heap; after all events of an instant are
applied, free units are handed, one task at a time, to the job the policy pops, so the simulator
is work-conserving exactly as far as the policy is. Nothing is random: the same workload and
policy give the same result (ties break by event kind, then job id).

Size estimates. A policy that orders by size (UWFQ, CFQ) is told ``estimate_s`` (else the true
size). When a job's finished tasks have delivered more work than its current estimate, the
estimate is corrected as the operator would correct it (``Estimator.corrected``: twice the work
so far) and the queue re-lays the job (``UwfqQueue.update_estimate``); when the job ends, the
queue is told its true size, so its user is charged what it used. The check runs at task ends:
a running task's work is counted once it is done.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace

from fairpack.solver.fairqueue import estimator as estimator_mod
from fairpack.solver.fairqueue import partitioning, policies, uwfq
from fairpack.solver.fairqueue.policy import JobId, OrderingPolicy, QueuedJob, UserName
from fairpack.solver.sim.workloads import SimJob, Workload

_TASK_END, _ARRIVAL = 0, 1  # at one instant, capacity is given back before new jobs queue


@dataclass(frozen=True)
class TaskRun:
    """One task as it ran."""

    job_id: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class JobOutcome:
    """One job as it ran."""

    job: SimJob
    """As run (after partitioning)."""
    first_start_s: float
    finish_s: float

    @property
    def response_s(self) -> float:
        return self.finish_s - self.job.arrival_s


@dataclass(frozen=True)
class SimResult:
    """Everything a run produced; ``metrics`` turns it into figures."""

    policy: str
    workload: Workload
    """The workload as run (after partitioning)."""
    outcomes: Mapping[str, JobOutcome]
    tasks: tuple[TaskRun, ...]


def partitioned(
    workload: Workload, *, target_task_s: float, settings: partitioning.PartitionSettings | None = None
) -> Workload:
    """The same work re-cut into tasks of at most ``target_task_s`` (the paper's "-P" variants).

    The cut is planned from each job's true runtime, with no cap on the number of tasks, so
    ``fairpack simulate --partition`` keeps its promise of tasks no longer than the target. (An
    operator partitions from the estimate and caps the count at ``max_partitions``; here that would
    leave long tasks wherever a job under-declares its size or needs more tasks than the cap, and
    the benchmark would then measure the estimate and the cap rather than partitioning.) A job
    whose tasks are already short enough is left alone: partitioning never coarsens.
    """
    if target_task_s <= 0:
        raise ValueError(f"target task length must be positive, got {target_task_s:g} s")
    base = settings or partitioning.PartitionSettings()
    settings = replace(base, target_task_s=target_task_s, max_partitions=sys.maxsize)
    jobs = []
    for job in workload.jobs:
        runtime_s = job.tasks * job.task_s  # the job's task-seconds, whatever each task's demand
        plan = partitioning.recommend(
            estimated_work_s=runtime_s,
            current_partitions=job.tasks,
            capacity=workload.capacity,
            settings=settings,
        )
        if plan.partitions > job.tasks:
            job = replace(job, tasks=plan.partitions, task_s=runtime_s / plan.partitions)
        jobs.append(job)
    return replace(workload, jobs=tuple(jobs))


def run(workload: Workload, policy_name: str, *, uwfq_settings: uwfq.UwfqSettings | None = None) -> SimResult:
    """Replay ``workload`` under the named policy (``policies.NAMES``)."""
    weights = {UserName(u): w for u, w in workload.users.items()}
    queue = policies.create(
        policy_name, capacity=workload.capacity, weights=weights, uwfq_settings=uwfq_settings
    )
    sizes = _Sizes(queue)
    jobs = {job.id: job for job in workload.jobs}
    events: list[tuple[float, int, str]] = [(job.arrival_s, _ARRIVAL, job.id) for job in workload.jobs]
    heapq.heapify(events)
    free = workload.capacity
    left = {job.id: job.tasks for job in workload.jobs}
    first_start: dict[str, float] = {}
    outcomes: dict[str, JobOutcome] = {}
    tasks: list[TaskRun] = []
    while events:
        now = events[0][0]
        while events and events[0][0] == now:
            _, kind, job_id = heapq.heappop(events)
            job = jobs[job_id]
            if kind == _ARRIVAL:
                queue.submit(sizes.queued(job), now=now)
                continue
            free += job.demand
            queue.task_done(JobId(job_id), now=now)
            left[job_id] -= 1
            if left[job_id] == 0:
                sizes.finish(job, now=now)
                outcomes[job_id] = JobOutcome(job=job, first_start_s=first_start[job_id], finish_s=now)
            else:
                sizes.task_done(job, now=now)
        while free > 0:
            picked = queue.pop(now=now, free=free)
            if picked is None:
                break
            job = jobs[picked]
            free -= job.demand
            first_start.setdefault(job.id, now)
            tasks.append(TaskRun(job_id=job.id, start_s=now, end_s=now + job.task_s))
            heapq.heappush(events, (now + job.task_s, _TASK_END, job.id))
    return SimResult(policy=policy_name, workload=workload, outcomes=outcomes, tasks=tuple(tasks))


class _Sizes:
    """What the queue is told about each job's size, corrected as the job runs (module docstring).

    Only a virtual-time queue orders by size; the baselines are told sizes they never use.
    """

    def __init__(self, queue: OrderingPolicy) -> None:
        self._policy = queue
        self._queue = queue if isinstance(queue, uwfq.UwfqQueue) else None
        self._estimator = estimator_mod.Estimator()
        self._told: dict[str, float] = {}
        self._done: dict[str, float] = {}

    def queued(self, job: SimJob) -> QueuedJob:
        told = job.estimate_s if job.estimate_s is not None else job.work_s
        self._told[job.id] = told
        self._done[job.id] = 0.0
        return QueuedJob(
            id=JobId(job.id),
            user=UserName(job.user),
            arrival_s=job.arrival_s,
            work_s=told,
            tasks=job.tasks,
            demand=job.demand,
            name=job.name or job.job_class,
        )

    def task_done(self, job: SimJob, *, now: float) -> None:
        """One more task's work delivered: correct the estimate if the job has outgrown it."""
        done = self._done[job.id] = self._done[job.id] + job.task_s * job.demand
        told = self._told[job.id]
        if self._queue is None or done <= told * (1 + 1e-9):
            return
        corrected = self._estimator.corrected(estimate_s=told, elapsed_s=done)
        self._told[job.id] = corrected
        self._queue.update_estimate(JobId(job.id), work_s=corrected, now=now)

    def finish(self, job: SimJob, *, now: float) -> None:
        """The job is over: a virtual-time queue is charged its true size if it was told otherwise."""
        told = self._told.pop(job.id)
        del self._done[job.id]
        if self._queue is not None and abs(told - job.work_s) > 1e-9 * max(1.0, job.work_s):
            self._queue.finish(JobId(job.id), now=now, actual_work_s=job.work_s)
        else:
            self._policy.finish(JobId(job.id), now=now)
