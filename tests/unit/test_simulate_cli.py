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
            assert set(u) == {"mean_response_s", "share"}
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
