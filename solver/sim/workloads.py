"""Workloads for the simulator: the file format, and generators of the paper's workloads.

File format (JSON or YAML)::

    {"capacity": 32, "users": {"alice": {"weight": 1}},
     "jobs": [{"id": "j1", "user": "alice", "class": "small", "arrival_s": 0.0,
               "tasks": 40, "task_s": 0.5, "estimate_s": 20.0}]}

A job is ``tasks`` independent tasks of ``task_s`` seconds on ``demand`` units of capacity each
(optional, default 1); ``estimate_s`` (optional) is the size a scheduler is told, in unit x
seconds (without it the scheduler is told the true size, the paper's oracle estimator); ``name``
(optional, default the class) is what the estimator learns sizes by. ``from_dict`` rejects what
would make a run meaningless (a zero or negative capacity, weight, ``tasks``, ``task_s``,
``demand`` or ``estimate_s``, a negative arrival, a demand above the capacity, a repeated job id)
with a ``WorkloadError`` naming the job and field.

Generators reproduce the shapes of the paper's synthetic workloads (its benchmark tool's
configurations: Loop1000 / Loop100 / Loop20 user-defined functions over the same partitioned
input, so every job has the same number of tasks and sizes differ by task length, tenfold per
step) and of its heterogeneous Google-trace set.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml


@dataclass(frozen=True)
class SimJob:
    """One job of a workload."""

    id: str
    user: str
    job_class: str
    arrival_s: float
    tasks: int
    task_s: float
    estimate_s: float | None = None
    name: str = ""
    demand: int = 1
    """Units of capacity each task occupies while it runs."""

    @property
    def work_s(self) -> float:
        """True size in unit x seconds."""
        return self.tasks * self.task_s * self.demand


@dataclass(frozen=True)
class Workload:
    """Users with weights, a cluster of ``capacity`` units, and the jobs they submit."""

    capacity: int
    users: Mapping[str, float]
    """User name to weight."""
    jobs: tuple[SimJob, ...] = field(default_factory=tuple)


class WorkloadError(ValueError):
    """A workload file that cannot be simulated; the message names the field and the fix."""


def from_dict(data: Mapping[str, Any]) -> Workload:
    """Parse and check the file format (see the module docstring); raises ``WorkloadError``."""
    if not isinstance(data, Mapping):
        raise WorkloadError("a workload is a mapping with 'capacity', 'users' and 'jobs'")
    capacity = _number(data, "capacity", where="workload", kind=int)
    if capacity <= 0:
        raise WorkloadError(f"workload: 'capacity' is {capacity}; it must be a positive number of units")
    users: dict[str, float] = {}
    for name, spec in (data.get("users") or {}).items():
        if spec is not None and not isinstance(spec, Mapping):
            raise WorkloadError(f'user {name!r}: write {{"weight": {spec!r}}}, not a bare value')
        weight = _number(spec or {}, "weight", where=f"user {name!r}", kind=float, default=1.0)
        if weight <= 0:
            raise WorkloadError(
                f"user {name!r}: 'weight' is {weight:g}; it must be positive (1 is an equal share)"
            )
        users[str(name)] = weight
    jobs: list[SimJob] = []
    seen: set[str] = set()
    for index, item in enumerate(data.get("jobs") or ()):
        job = _job_from_dict(item, index=index, capacity=capacity)
        if job.id in seen:
            raise WorkloadError(f"job {job.id!r}: 'id' is used twice; give every job its own id")
        seen.add(job.id)
        users.setdefault(job.user, 1.0)
        jobs.append(job)
    return Workload(capacity=capacity, users=users, jobs=tuple(jobs))


def _job_from_dict(item: Any, *, index: int, capacity: int) -> SimJob:
    if not isinstance(item, Mapping) or "id" not in item or "user" not in item:
        raise WorkloadError(f"jobs[{index}]: a job is a mapping with at least 'id' and 'user'")
    where = f"job {str(item['id'])!r}"
    estimate = _number(item, "estimate_s", where=where, kind=float, default=None)
    job = SimJob(
        id=str(item["id"]),
        user=str(item["user"]),
        job_class=str(item.get("class", "default")),
        arrival_s=_number(item, "arrival_s", where=where, kind=float),
        tasks=_number(item, "tasks", where=where, kind=int),
        task_s=_number(item, "task_s", where=where, kind=float),
        estimate_s=estimate,
        name=str(item.get("name", "")),
        demand=_number(item, "demand", where=where, kind=int, default=1),
    )
    # Each check names the fix: these values would divide by zero, never finish, or silently vanish.
    if job.arrival_s < 0:
        raise WorkloadError(f"{where}: 'arrival_s' is {job.arrival_s:g}; arrivals count from 0, use >= 0")
    for field_name, value in (("tasks", job.tasks), ("task_s", job.task_s), ("demand", job.demand)):
        if value <= 0:
            raise WorkloadError(f"{where}: {field_name!r} is {value:g}; it must be positive")
    if job.demand > capacity:
        raise WorkloadError(
            f"{where}: 'demand' is {job.demand} but the capacity is {capacity}; a task must fit the cluster"
        )
    if job.estimate_s is not None and job.estimate_s <= 0:
        raise WorkloadError(
            f"{where}: 'estimate_s' is {job.estimate_s:g}; give a positive size or leave it out"
        )
    return job


_Kind = TypeVar("_Kind", int, float)
_MISSING: Any = object()


def _number(
    data: Mapping[str, Any], key: str, *, where: str, kind: type[_Kind], default: Any = _MISSING
) -> Any:
    """``data[key]`` as ``kind``; a missing key without a default, or a non-number, is a WorkloadError."""
    if key not in data or data[key] is None:
        if default is _MISSING:
            raise WorkloadError(f"{where}: {key!r} is missing")
        return default
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkloadError(f"{where}: {key!r} is {value!r}; it must be a number")
    if kind is int and value != int(value):
        raise WorkloadError(f"{where}: {key!r} is {value!r}; it must be a whole number")
    return kind(value)


def to_dict(workload: Workload) -> dict[str, Any]:
    """The file format of ``workload``."""
    jobs: list[dict[str, Any]] = []
    for j in workload.jobs:
        item: dict[str, Any] = {
            "id": j.id,
            "user": j.user,
            "class": j.job_class,
            "arrival_s": j.arrival_s,
            "tasks": j.tasks,
            "task_s": j.task_s,
        }
        if j.estimate_s is not None:
            item["estimate_s"] = j.estimate_s
        if j.name:
            item["name"] = j.name
        if j.demand != 1:
            item["demand"] = j.demand
        jobs.append(item)
    return {
        "capacity": workload.capacity,
        "users": {u: {"weight": w} for u, w in workload.users.items()},
        "jobs": jobs,
    }


def load(path: Path) -> Workload:
    """Read a JSON or YAML workload file (YAML is a superset of JSON, one parser serves both)."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise WorkloadError(f"not JSON or YAML: {exc}") from exc
    return from_dict(data)


def dump(workload: Workload, path: Path) -> None:
    """Write ``workload`` as compact JSON (one job per line, so diffs stay readable)."""
    data = to_dict(workload)
    jobs = ",\n".join("    " + json.dumps(j, sort_keys=True) for j in data["jobs"])
    users = json.dumps(data["users"], sort_keys=True)
    path.write_text(
        f'{{\n  "capacity": {data["capacity"]},\n  "users": {users},\n  "jobs": [\n{jobs}\n  ]\n}}\n'
    )


# --- the paper's synthetic workloads ---------------------------------------------------------------

CAPACITY = 32
"""Executor cores of the simulated cluster."""
PARTITIONS = 64
"""Tasks per job: every job reads the same partitioned input."""
LARGE_TASK_S = 3.0
"""Task length of the large (Loop1000) job; Loop100 is ten times shorter, Loop20 fifty."""
SMALL_TASK_S = LARGE_TASK_S / 10
SUPER_SMALL_TASK_S = LARGE_TASK_S / 50


def _job(user: str, job_class: str, n: int, arrival_s: float, task_s: float) -> SimJob:
    return SimJob(
        id=f"{user}-{n:03d}",
        user=user,
        job_class=job_class,
        arrival_s=round(arrival_s, 6),
        tasks=PARTITIONS,
        task_s=task_s,
    )


def _poisson(rng: random.Random, *, start_s: float, per_minute: float, count: int) -> list[float]:
    """``count`` arrival times of a Poisson process of ``per_minute`` from ``start_s``."""
    times, now = [], start_s
    for _ in range(count):
        times.append(now)
        now += rng.expovariate(per_minute / 60.0)
    return times


def two_large_two_small(seed: int = 0) -> Workload:
    """2 users run 4 large jobs one after another; 2 users send 6 small jobs each (Poisson, 16/min).

    The paper submits a large user's next job when the previous one ends; a workload file has
    arrival times only, so here they come every 25 s, about what one takes under contention.
    """
    rng = random.Random(seed)
    jobs = [_job(f"large{u}", "large", k, 0.1 * u + 25.0 * k, LARGE_TASK_S) for u in (1, 2) for k in range(4)]
    for u in (1, 2):
        times = _poisson(rng, start_s=0.05 + 0.1 * u, per_minute=16, count=6)
        jobs += [_job(f"small{u}", "small", k, t, SMALL_TASK_S) for k, t in enumerate(times)]
    return _workload(jobs)


def power_users(seed: int = 0) -> Workload:
    """2 power users send bursts of 20 jobs every 30 s (4 bursts); 2 small users 12 jobs (8/min)."""
    rng = random.Random(seed)
    jobs = [
        _job(f"power{u}", "burst", 20 * b + k, 30.0 * b + 0.1 * u, SMALL_TASK_S)
        for u in (1, 2)
        for b in range(4)
        for k in range(20)
    ]
    for u in (1, 2):
        times = _poisson(rng, start_s=0.1 + 0.1 * u, per_minute=8, count=12)
        jobs += [_job(f"small{u}", "small", k, t, SMALL_TASK_S) for k, t in enumerate(times)]
    return _workload(jobs)


def four_large(seed: int = 0) -> Workload:
    """4 users each run 4 large jobs one after another (every 25 s plus up to 2 s of jitter)."""
    rng = random.Random(seed)
    jobs = [
        _job(f"large{u}", "large", k, 0.1 * u + 25.0 * k + rng.uniform(0.0, 2.0), LARGE_TASK_S)
        for u in range(1, 5)
        for k in range(4)
    ]
    return _workload(jobs)


def four_super_small(seed: int = 0) -> Workload:
    """4 users each submit 100 super-small jobs at once."""
    del seed  # all arrivals are fixed, as in the paper's configuration
    jobs = [
        _job(f"tiny{u}", "super-small", k, 0.1 * u, SUPER_SMALL_TASK_S)
        for u in range(1, 5)
        for k in range(100)
    ]
    return _workload(jobs)


def _workload(jobs: list[SimJob]) -> Workload:
    jobs.sort(key=lambda j: (j.arrival_s, j.id))
    users = {j.user: 1.0 for j in jobs}
    return Workload(capacity=CAPACITY, users=dict(sorted(users.items())), jobs=tuple(jobs))


# --- the heterogeneous, Google-trace-shaped workload -----------------------------------------------


def google_like(seed: int = 2510, *, users: int = 27, jobs: int = 800, load: float = 0.85) -> Workload:
    """27 users, ~800 jobs, standalone runtimes log-uniform in [0.1 s, 30 min], Zipf job counts.

    Shaped like the paper's Google-trace set: a few users send most jobs (counts ~ 1/rank^1.1),
    sizes span four orders of magnitude, and arrivals (Poisson) are spread so the cluster is
    about ``load`` busy. Classes by standalone runtime: tiny < 1 s, small < 60 s, medium < 10 min,
    large beyond.
    """
    rng = random.Random(seed)
    ranks = [1.0 / (r**1.1) for r in range(1, users + 1)]
    scale = jobs / sum(ranks)
    counts = [max(1, round(r * scale)) for r in ranks]
    shapes: list[tuple[str, int, float]] = []
    for u, count in enumerate(counts):
        for _ in range(count):
            runtime = math.exp(rng.uniform(math.log(0.1), math.log(1800.0)))
            tasks = round(math.exp(rng.uniform(0.0, math.log(CAPACITY))))
            shapes.append((f"u{u + 1:02d}", tasks, runtime))
    rng.shuffle(shapes)
    total_work = sum(tasks * runtime for _, tasks, runtime in shapes)
    horizon = total_work / (CAPACITY * load)
    times = sorted(rng.uniform(0.0, horizon) for _ in shapes)
    out: list[SimJob] = []
    per_user: dict[str, int] = {}
    for (user, tasks, runtime), arrival in zip(shapes, times, strict=True):
        n = per_user[user] = per_user.get(user, 0) + 1
        out.append(
            SimJob(
                id=f"{user}-{n:03d}",
                user=user,
                job_class=_runtime_class(runtime),
                arrival_s=round(arrival, 3),
                tasks=tasks,
                task_s=round(runtime, 3),
            )
        )
    return _workload(out)


def _runtime_class(runtime_s: float) -> str:
    if runtime_s < 1.0:
        return "tiny"
    if runtime_s < 60.0:
        return "small"
    if runtime_s < 600.0:
        return "medium"
    return "large"


GENERATORS: Mapping[str, Callable[[int], Workload]] = {
    "two-large-two-small": two_large_two_small,
    "power-users": power_users,
    "four-large": four_large,
    "four-super-small": four_super_small,
    "google-like": google_like,
}
"""Built-in workloads by name: ``fairpack simulate --workload synthetic:<name>``."""
