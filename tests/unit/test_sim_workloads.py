"""The workload file format and the built-in workload generators."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
import yaml

from fairpack.solver.sim import workloads

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
