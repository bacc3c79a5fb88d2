"""A discrete-event cluster simulator: replays a workload under one ordering policy.

The cluster has ``capacity`` units; a job is ``tasks`` tasks of ``task_s`` seconds on one unit
each. Events (arrivals, task ends) sit in a heap; after all events of an instant are applied,
every free unit is handed, one at a time, to the job the policy pops, so the simulator is
work-conserving exactly as far as the policy is. Nothing is random: the same workload and policy
give the same result (ties break by event kind, then job id).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, replace

from fairpack.solver.fairqueue import partitioning, policies, uwfq
from fairpack.solver.fairqueue.policy import JobId, QueuedJob, UserName
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
    """The same work re-cut by runtime partitioning (the paper's "-P" variants).

    The re-cut is planned from the size the scheduler is told (``estimate_s``, else the true
    size), as a real partitioner would; the true work is what gets divided.
    """
    base = settings or partitioning.PartitionSettings()
    settings = replace(base, target_task_s=target_task_s)
    jobs = []
    for job in workload.jobs:
        told = job.estimate_s if job.estimate_s is not None else job.work_s
        plan = partitioning.recommend(
            estimated_work_s=told, current_partitions=job.tasks, capacity=workload.capacity, settings=settings
        )
        if plan.partitions > job.tasks:
            job = replace(job, tasks=plan.partitions, task_s=job.work_s / plan.partitions)
        jobs.append(job)
    return replace(workload, jobs=tuple(jobs))


def run(workload: Workload, policy_name: str, *, uwfq_settings: uwfq.UwfqSettings | None = None) -> SimResult:
    """Replay ``workload`` under the named policy (``policies.NAMES``)."""
    weights = {UserName(u): w for u, w in workload.users.items()}
    queue = policies.create(
        policy_name, capacity=workload.capacity, weights=weights, uwfq_settings=uwfq_settings
    )
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
                queue.submit(_queued(job), now=now)
                continue
            free += 1
            queue.task_done(JobId(job_id), now=now)
            left[job_id] -= 1
            if left[job_id] == 0:
                queue.finish(JobId(job_id), now=now)
                outcomes[job_id] = JobOutcome(job=job, first_start_s=first_start[job_id], finish_s=now)
        while free > 0:
            picked = queue.pop(now=now, free=free)
            if picked is None:
                break
            job = jobs[picked]
            free -= 1
            first_start.setdefault(job.id, now)
            tasks.append(TaskRun(job_id=job.id, start_s=now, end_s=now + job.task_s))
            heapq.heappush(events, (now + job.task_s, _TASK_END, job.id))
    return SimResult(policy=policy_name, workload=workload, outcomes=outcomes, tasks=tuple(tasks))


def _queued(job: SimJob) -> QueuedJob:
    told = job.estimate_s if job.estimate_s is not None else job.work_s
    return QueuedJob(
        id=JobId(job.id),
        user=UserName(job.user),
        arrival_s=job.arrival_s,
        work_s=told,
        tasks=job.tasks,
        name=job.name or job.job_class,
    )
