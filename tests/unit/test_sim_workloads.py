"""The workload file format and the built-in workload generators."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fairpack.solver.fairqueue import policies
from fairpack.solver.sim import metrics, simulator, workloads

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = {
    "capacity": 32,
    "users": {"alice": {"weight": 1}, "bob": {"weight": 2}},
    "jobs": [
        {
            "id": "j1",
            "user": "alice",
            "class": "small",
            "arrival_s": 0.0,
            "tasks": 40,
            "task_s": 0.5,
            "estimate_s": 20.0,
        },
        {"id": "j2", "user": "bob", "class": "large", "arrival_s": 1.5, "tasks": 8, "task_s": 30.0},
    ],
}


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        pytest.param(".json", json.dumps(EXAMPLE), id="json"),
        pytest.param(".yaml", yaml.safe_dump(EXAMPLE), id="yaml"),
    ],
)
def test_a_workload_file_reads_the_same_as_json_or_yaml(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"w{suffix}"
    path.write_text(text)
    workload = workloads.load(path)
    assert workload.capacity == 32
    assert dict(workload.users) == {"alice": 1.0, "bob": 2.0}
    assert workload.jobs[0] == workloads.SimJob("j1", "alice", "small", 0.0, 40, 0.5, estimate_s=20.0)
    assert workload.jobs[1].estimate_s is None
    assert workload.jobs[1].work_s == 240.0


def test_a_dumped_workload_reads_back_equal(tmp_path: Path) -> None:
    workload = workloads.power_users(3)
    workloads.dump(workload, tmp_path / "w.json")
    assert workloads.load(tmp_path / "w.json") == workload


def test_the_stored_google_like_trace_is_what_its_generator_makes() -> None:
    stored = workloads.load(ROOT / "bench" / "workloads" / "google_like.json")
    assert stored == workloads.google_like()


def test_the_google_like_trace_has_the_papers_shape() -> None:
    trace = workloads.google_like()
    counts = collections.Counter(j.user for j in trace.jobs)
    runtimes = [j.task_s for j in trace.jobs]
    assert len(counts) == 27
    assert 780 <= len(trace.jobs) <= 820
    assert 0.1 <= min(runtimes) < 1.0
    assert 1000.0 < max(runtimes) <= 1800.0
    assert counts.most_common(1)[0][1] > 0.2 * len(trace.jobs)  # heavy-tailed: one user sends a fifth
    assert min(counts.values()) < 10


@pytest.mark.parametrize(
    ("name", "jobs_per_user"),
    [
        pytest.param(
            "two-large-two-small", {"large1": 4, "large2": 4, "small1": 6, "small2": 6}, id="2-large-2-small"
        ),
        pytest.param(
            "power-users", {"power1": 80, "power2": 80, "small1": 12, "small2": 12}, id="2-power-2-small"
        ),
        pytest.param("four-large", {f"large{u}": 4 for u in range(1, 5)}, id="4-large"),
        pytest.param("four-super-small", {f"tiny{u}": 100 for u in range(1, 5)}, id="4-super-small"),
    ],
)
def test_synthetic_workloads_have_the_papers_users_and_job_counts(
    name: str, jobs_per_user: dict[str, int]
) -> None:
    workload = workloads.GENERATORS[name](0)
    assert dict(collections.Counter(j.user for j in workload.jobs)) == jobs_per_user


def test_power_users_send_bursts_of_twenty_jobs_at_once() -> None:
    workload = workloads.power_users(0)
    bursts = collections.Counter((j.user, j.arrival_s) for j in workload.jobs if j.user.startswith("power"))
    assert set(bursts.values()) == {20}
    assert len(bursts) == 8


@pytest.mark.parametrize("name", sorted(workloads.GENERATORS))
def test_generators_are_deterministic_for_a_seed(name: str) -> None:
    assert workloads.GENERATORS[name](7) == workloads.GENERATORS[name](7)


def test_partitioning_cuts_every_task_of_the_google_like_trace_to_the_target() -> None:
    trace = workloads.load(ROOT / "bench" / "workloads" / "google_like.json")
    cut = simulator.partitioned(trace, target_task_s=0.5)
    assert max(j.task_s for j in cut.jobs) <= 0.5 * (1 + 1e-9)
    # The same work, re-cut: no job loses or gains any, none is coarsened.
    for before, after in zip(trace.jobs, cut.jobs, strict=True):
        assert after.work_s == pytest.approx(before.work_s)
        assert after.tasks >= before.tasks


def test_partitioning_cuts_from_the_true_size_not_an_under_declared_one() -> None:
    job = workloads.SimJob("a", "u", "c", 0.0, tasks=1, task_s=10.0, estimate_s=1.0, demand=2)
    cut = simulator.partitioned(
        workloads.Workload(capacity=4, users={"u": 1.0}, jobs=(job,)), target_task_s=0.5
    )
    assert (cut.jobs[0].tasks, cut.jobs[0].task_s, cut.jobs[0].demand) == (20, 0.5, 2)


def test_a_demand_is_read_and_written_and_counts_in_the_work() -> None:
    job: dict[str, Any] = {"id": "w", "user": "u", "arrival_s": 0, "tasks": 3, "task_s": 2.0, "demand": 4}
    workload = workloads.from_dict({"capacity": 8, "jobs": [job]})
    assert workload.jobs[0].demand == 4
    assert workload.jobs[0].work_s == 24.0
    assert workloads.from_dict(workloads.to_dict(workload)) == workload
    unstated = workloads.from_dict({"capacity": 8, "jobs": [{**job, "demand": None}]})
    assert unstated.jobs[0].demand == 1


def test_tasks_of_several_units_never_overfill_the_cluster() -> None:
    jobs = [
        workloads.SimJob(f"j{k}", f"u{k % 3}", "c", 0.5 * k, tasks=5, task_s=1.0, demand=1 + k % 3)
        for k in range(12)
    ]
    workload = workloads.Workload(capacity=4, users={f"u{i}": 1.0 for i in range(3)}, jobs=tuple(jobs))
    demand = {j.id: j.demand for j in jobs}
    for name in policies.NAMES:
        result = simulator.run(workload, name)
        assert set(result.outcomes) == {j.id for j in jobs}
        for t in result.tasks:
            busy = sum(demand[o.job_id] for o in result.tasks if o.start_s <= t.start_s < o.end_s)
            assert busy <= workload.capacity, name


def test_each_user_gets_its_worst_ten_percent_and_slowdown() -> None:
    # One unit, FIFO: u's ten 1 s jobs queue one after the other (responses 1..10 s), v's one 2 s
    # job arrives last and waits for all of them.
    jobs = [workloads.SimJob(f"u{k}", "u", "c", 0.0, tasks=1, task_s=1.0) for k in range(10)]
    jobs.append(workloads.SimJob("v0", "v", "c", 0.0, tasks=1, task_s=2.0))
    result = simulator.run(
        workloads.Workload(capacity=1, users={"u": 1.0, "v": 1.0}, jobs=tuple(jobs)), "fifo"
    )
    users = metrics.figures(result).users
    assert users["u"].mean_response_s == pytest.approx(5.5)
    assert users["u"].p90_response_s == pytest.approx(9.1)  # inclusive method: 9 + 0.1 x (10 - 9)
    assert users["u"].mean_slowdown == pytest.approx(5.5)  # standalone 1 s each
    assert users["v"].p90_response_s == pytest.approx(12.0)
    assert users["v"].mean_slowdown == pytest.approx(6.0)  # 12 s against 2 s alone


def test_a_wide_jobs_standalone_time_counts_the_tasks_that_fit_at_once() -> None:
    # 4 units, tasks of 2 units: two at a time, so 5 tasks take 3 rounds.
    assert metrics.standalone_s(tasks=5, task_s=1.0, capacity=4, demand=2) == 3.0
    assert metrics.standalone_s(tasks=5, task_s=1.0, capacity=4) == 2.0
