"""Figures of a simulated run: response times, slowdowns, fairness against per-user fair sharing.

Definitions (our reading of the paper's; where its text was not available they are stated here
so the numbers can be checked):

- response = finish - arrival; standalone = the job alone on the cluster,
  ``ceil(tasks / (capacity // demand)) * task_s``; slowdown = response / standalone; the
  worst-10% figure is the 90th percentile of response times. All three are given per job class
  and per user.
- fair finish F_j: the job's finish under per-user weighted fair sharing, a fluid model in which
  the active users (those with unfinished jobs) split the capacity by weight and each user's
  jobs split its slice equally (``fair_finish_times``).
- a job violates fairness when it finishes after ``F_j + tolerance_j``, with tolerance_j one task
  plus the part of its standalone time the fluid model cannot give it (its tasks cannot all run
  at once: ``standalone - work / capacity``); DVR (deadline violation ratio) is the share of jobs
  that violate; DSR (deadline slack ratio) is the mean, over violating jobs, of how late they are
  relative to their fair response, ``(finish - F_j - tolerance_j) / (F_j - arrival)``, 0 if none.
- a user's share: the units it used divided by the capacity, over the time it had unfinished
  jobs; Jain's index is taken over users' service normalised by entitlement (received / what
  weighted fair sharing would have given it over its active time).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fairpack.solver.sim.simulator import SimResult
from fairpack.solver.sim.workloads import Workload


@dataclass(frozen=True)
class ClassFigures:
    """Per job class."""

    mean_response_s: float
    p90_response_s: float
    mean_slowdown: float


@dataclass(frozen=True)
class UserFigures:
    """Per user (the issue's contract names ``mean_response_s`` and ``share``; the worst-10%
    response and the slowdown it asks for per user are added alongside)."""

    mean_response_s: float
    share: float
    p90_response_s: float
    mean_slowdown: float


@dataclass(frozen=True)
class Figures:
    """All figures of one run, shaped as ``fairpack simulate --output json`` prints them."""

    classes: Mapping[str, ClassFigures]
    users: Mapping[str, UserFigures]
    jain: float
    dvr: float
    dsr: float


def p90(values: Sequence[float]) -> float:
    """Worst-10% threshold: the 90th percentile (inclusive method, exact for one value)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def standalone_s(*, tasks: int, task_s: float, capacity: int, demand: int = 1) -> float:
    """The job's response time alone on the cluster (``capacity // demand`` tasks at a time)."""
    return math.ceil(tasks / (capacity // demand)) * task_s


def fair_finish_times(workload: Workload) -> dict[str, float]:
    """Finish time of every job under per-user weighted fair sharing (the fluid model).

    Event driven: between arrivals and completions the rates are constant. Inside a user, all its
    jobs receive the same service, so with a per-user clock a (service each job has received) a
    job finishes when a reaches its tag ``a_at_arrival + work``: one heap per user.
    """
    arrivals = sorted(workload.jobs, key=lambda j: (j.arrival_s, j.id))
    clocks: dict[str, float] = {}
    heaps: dict[str, list[tuple[float, str]]] = {}
    finish: dict[str, float] = {}
    now, i = 0.0, 0
    while i < len(arrivals) or any(heaps.values()):
        active = [u for u, h in heaps.items() if h]
        if not active:
            now = arrivals[i].arrival_s
        else:
            total_weight = sum(workload.users[u] for u in active)
            rates = {u: workload.capacity * workload.users[u] / total_weight / len(heaps[u]) for u in active}
            step = min((heaps[u][0][0] - clocks[u]) / rates[u] for u in active)
            if i < len(arrivals):
                step = min(step, arrivals[i].arrival_s - now)
            step = max(step, 0.0)
            for u in active:
                clocks[u] += rates[u] * step
            now += step
            for u in active:
                heap = heaps[u]
                while heap and heap[0][0] <= clocks[u] + 1e-9 * max(1.0, clocks[u]):
                    finish[heapq.heappop(heap)[1]] = now
        while i < len(arrivals) and arrivals[i].arrival_s <= now:
            job = arrivals[i]
            if not heaps.get(job.user):
                clocks[job.user] = 0.0
                heaps[job.user] = []
            heapq.heappush(heaps[job.user], (clocks[job.user] + job.work_s, job.id))
            i += 1
    return finish


def tolerance_s(*, tasks: int, task_s: float, capacity: int, demand: int = 1) -> float:
    """How late against the fluid model a job may be without counting as a violation."""
    standalone = standalone_s(tasks=tasks, task_s=task_s, capacity=capacity, demand=demand)
    return task_s + standalone - tasks * task_s * demand / capacity


def figures(result: SimResult, *, fair: Mapping[str, float] | None = None) -> Figures:
    """All figures of ``result``; pass ``fair`` (from ``fair_finish_times``) to reuse it across runs."""
    workload = result.workload
    fair = fair if fair is not None else fair_finish_times(workload)
    outcomes = list(result.outcomes.values())
    by_class: dict[str, list[tuple[float, float]]] = {}
    by_user: dict[str, list[tuple[float, float]]] = {}
    violations: list[float] = []
    for o in outcomes:
        job = o.job
        cap, demand = workload.capacity, job.demand
        alone = standalone_s(tasks=job.tasks, task_s=job.task_s, capacity=cap, demand=demand)
        by_class.setdefault(job.job_class, []).append((o.response_s, o.response_s / alone))
        by_user.setdefault(job.user, []).append((o.response_s, o.response_s / alone))
        late = (
            o.finish_s
            - fair[job.id]
            - tolerance_s(tasks=job.tasks, task_s=job.task_s, capacity=cap, demand=demand)
        )
        if late > 1e-9:
            violations.append(late / max(fair[job.id] - job.arrival_s, 1e-9))
    classes = {
        name: ClassFigures(
            mean_response_s=statistics.fmean(r for r, _ in rows),
            p90_response_s=p90([r for r, _ in rows]),
            mean_slowdown=statistics.fmean(s for _, s in rows),
        )
        for name, rows in sorted(by_class.items())
    }
    shares, normalised = user_shares(result)
    users = {
        name: UserFigures(
            mean_response_s=statistics.fmean(r for r, _ in rows),
            share=shares[name],
            p90_response_s=p90([r for r, _ in rows]),
            mean_slowdown=statistics.fmean(s for _, s in rows),
        )
        for name, rows in sorted(by_user.items())
    }
    return Figures(
        classes=classes,
        users=users,
        jain=jain(list(normalised.values())),
        dvr=len(violations) / len(outcomes) if outcomes else 0.0,
        dsr=statistics.fmean(violations) if violations else 0.0,
    )


def user_shares(result: SimResult) -> tuple[dict[str, float], dict[str, float]]:
    """Per user: (share of the cluster while active, service received / weighted entitlement)."""
    workload = result.workload
    intervals: dict[str, list[tuple[float, float]]] = {}
    for o in result.outcomes.values():
        intervals.setdefault(o.job.user, []).append((o.job.arrival_s, o.finish_s))
    active = {u: _union(spans) for u, spans in intervals.items()}
    work = dict.fromkeys(active, 0.0)
    for o in result.outcomes.values():
        work[o.job.user] += o.job.work_s
    # Entitlement: sweep the breakpoints; between two, the set of active users is fixed.
    points = sorted({t for spans in active.values() for span in spans for t in span})
    entitled = dict.fromkeys(active, 0.0)
    for start, end in itertools.pairwise(points):
        mid = (start + end) / 2
        present = [u for u, spans in active.items() if _covers(spans, mid)]
        total_weight = sum(workload.users[u] for u in present)
        for u in present:
            entitled[u] += workload.capacity * workload.users[u] / total_weight * (end - start)
    shares = {
        u: work[u] / (workload.capacity * sum(b - a for a, b in active[u])) if active[u] else 0.0
        for u in active
    }
    normalised = {u: work[u] / entitled[u] if entitled[u] > 0 else 1.0 for u in active}
    return shares, normalised


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _covers(spans: list[tuple[float, float]], t: float) -> bool:
    """Whether sorted, disjoint ``spans`` contain ``t``."""
    i = bisect.bisect_right(spans, (t, math.inf)) - 1
    return i >= 0 and spans[i][0] <= t < spans[i][1]


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index: 1 when all equal, 1/n when one value takes everything."""
    if not values or not any(values):
        return 1.0
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))
