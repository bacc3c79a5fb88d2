"""`fairpack simulate`: the command-line contract (flags, JSON shape, plot)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fairpack.cli import main

WORKLOAD = {
    "capacity": 4,
    "users": {"alice": {"weight": 1}, "bob": {"weight": 1}},
    "jobs": [
        {"id": "a1", "user": "alice", "class": "large", "arrival_s": 0.0, "tasks": 8, "task_s": 4.0},
        {"id": "a2", "user": "alice", "class": "large", "arrival_s": 0.0, "tasks": 8, "task_s": 4.0},
        {
            "id": "b1",
            "user": "bob",
            "class": "small",
            "arrival_s": 1.0,
            "tasks": 4,
            "task_s": 0.5,
            "estimate_s": 2.0,
        },
    ],
}


@pytest.fixture
def workload_file(tmp_path: Path) -> Path:
    path = tmp_path / "workload.json"
    path.write_text(json.dumps(WORKLOAD))
    return path


def simulate_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main.main(["simulate", *args, "--output", "json"]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def test_json_output_has_the_documented_shape(
    workload_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = simulate_json(capsys, "--workload", str(workload_file), "--policies", "fifo,uwfq")
    policies = document["policies"]
    assert isinstance(policies, dict)
    assert list(policies) == ["fifo", "uwfq"]
    for figures in policies.values():
        assert set(figures) == {"classes", "users", "jain", "dvr", "dsr"}
        assert set(figures["classes"]) == {"large", "small"}
        for c in figures["classes"].values():
            assert set(c) == {"mean_response_s", "p90_response_s", "mean_slowdown"}
        assert set(figures["users"]) == {"alice", "bob"}
        for u in figures["users"].values():
            # The two keys, plus the per-user worst-10% and slowdown it asks for.
            assert set(u) == {"mean_response_s", "share", "p90_response_s", "mean_slowdown"}
            assert all(isinstance(v, float) for v in u.values())
        assert all(isinstance(figures[k], float) for k in ("jain", "dvr", "dsr"))


def test_uwfq_serves_the_small_user_before_fifo_would(
    workload_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = simulate_json(capsys, "--workload", str(workload_file), "--policies", "fifo,uwfq")["policies"]
    assert isinstance(policies, dict)
    fifo = policies["fifo"]["classes"]["small"]["mean_response_s"]
    uwfq = policies["uwfq"]["classes"]["small"]["mean_response_s"]
    assert uwfq < fifo


def test_partitioning_shortens_the_wait_behind_long_tasks(
    workload_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--workload", str(workload_file), "--policies", "uwfq")
    plain = simulate_json(capsys, *args)["policies"]
    cut = simulate_json(capsys, *args, "--partition", "0.5")["policies"]
    assert isinstance(plain, dict)
    assert isinstance(cut, dict)
    assert (
        cut["uwfq"]["classes"]["small"]["mean_response_s"]
        < plain["uwfq"]["classes"]["small"]["mean_response_s"]
    )


def test_table_output_and_plot(
    workload_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "out.png"
    assert main.main(["simulate", "--workload", str(workload_file), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    for name in ("fifo", "fair", "ujf", "drf", "cfq", "uwfq"):
        assert name in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_built_in_generator_can_stand_in_for_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    policies = simulate_json(
        capsys, "--workload", "synthetic:four-large", "--policies", "uwfq", "--seed", "3"
    )
    assert isinstance(policies["policies"], dict)
    assert set(policies["policies"]["uwfq"]["users"]) == {"large1", "large2", "large3", "large4"}


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--workload", "synthetic:nope"], id="unknown-generator"),
        pytest.param(["--workload", "/nonexistent.json"], id="missing-file"),
        pytest.param(
            ["--workload", "synthetic:four-large", "--policies", "fifo,lottery"], id="unknown-policy"
        ),
    ],
)
def test_bad_arguments_exit_with_status_two(args: list[str]) -> None:
    assert main.main(["simulate", *args]) == 2


def _job(**changes: Any) -> dict[str, Any]:
    return {"id": "j1", "user": "alice", "arrival_s": 0.0, "tasks": 2, "task_s": 1.0, **changes}


@pytest.mark.parametrize(
    ("document", "named"),
    [
        pytest.param({"capacity": 0, "jobs": [_job()]}, "'capacity' is 0", id="capacity-zero"),
        pytest.param({"capacity": -4, "jobs": [_job()]}, "'capacity' is -4", id="capacity-negative"),
        pytest.param(
            {"capacity": 4, "users": {"alice": {"weight": 0}}, "jobs": [_job()]},
            "user 'alice': 'weight' is 0",
            id="weight-zero",
        ),
        pytest.param(
            {"capacity": 4, "users": {"alice": {"weight": -1}}, "jobs": [_job()]},
            "user 'alice': 'weight' is -1",
            id="weight-negative",
        ),
        pytest.param({"capacity": 4, "jobs": [_job(task_s=0)]}, "job 'j1': 'task_s' is 0", id="task-s-zero"),
        pytest.param(
            {"capacity": 4, "jobs": [_job(task_s=-0.5)]}, "job 'j1': 'task_s' is -0.5", id="task-s-negative"
        ),
        pytest.param({"capacity": 4, "jobs": [_job(tasks=0)]}, "job 'j1': 'tasks' is 0", id="tasks-zero"),
        pytest.param(
            {"capacity": 4, "jobs": [_job(arrival_s=-1)]},
            "job 'j1': 'arrival_s' is -1",
            id="arrival-negative",
        ),
        pytest.param(
            {"capacity": 4, "jobs": [_job(), _job(arrival_s=2.0)]},
            "job 'j1': 'id' is used twice",
            id="dup-id",
        ),
        pytest.param(
            {"capacity": 4, "jobs": [_job(demand=8)]},
            "job 'j1': 'demand' is 8 but the capacity is 4",
            id="demand",
        ),
        pytest.param({"capacity": 4, "jobs": [_job(tasks="many")]}, "'tasks' is 'many'", id="not-a-number"),
        pytest.param(
            {"capacity": 4, "jobs": [{"id": "j1", "user": "a"}]}, "'arrival_s' is missing", id="missing"
        ),
    ],
)
def test_a_workload_that_cannot_be_simulated_exits_two_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: dict[str, Any], named: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    assert main.main(["simulate", "--workload", str(path)]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert named in err
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_partition_target_that_is_not_positive_exits_two(
    workload_file: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    assert main.main(["simulate", "--workload", str(workload_file), "--partition", value]) == 2
    assert "--partition" in capsys.readouterr().err


def test_the_table_shows_each_users_figures(workload_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["simulate", "--workload", str(workload_file), "--policies", "uwfq"]) == 0
    out = capsys.readouterr().out
    assert "per user" in out
    assert "alice" in out
    assert "bob" in out
