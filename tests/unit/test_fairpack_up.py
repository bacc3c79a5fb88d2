"""The demo's fairpack stage, on plain data: the local scheduler's configuration and the workloads."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
from fairpack_dev import chart, fairpack_up

from fairpack.solver import labels

pytestmark = pytest.mark.skipif(
    not chart.helm_binary().exists(), reason=f"helm not built: run `make binaries` ({chart.helm_binary()})"
)


@pytest.fixture(scope="module")
def chart_config() -> dict[str, Any]:
    return chart.scheduler_config(chart.render(fairpack_up.DEMO_VALUES))


def test_local_scheduler_keeps_the_charts_profile_and_extender_but_dials_the_local_extender(
    chart_config: dict[str, Any],
) -> None:
    local = fairpack_up.local_scheduler_config(
        chart_config,
        kubeconfig=pathlib.Path("/k/scheduler.kubeconfig"),
        ca_file=pathlib.Path("/k/ca.crt"),
        extender_url="https://127.0.0.1:18443",
    )
    (extender,) = local["extenders"]
    (original,) = chart_config["extenders"]
    assert local["profiles"] == chart_config["profiles"]
    assert local["leaderElection"] == chart_config["leaderElection"]
    assert local["clientConnection"] == {"kubeconfig": "/k/scheduler.kubeconfig"}
    assert extender["urlPrefix"] == "https://127.0.0.1:18443"
    assert extender["tlsConfig"]["caFile"] == "/k/ca.crt"
    unchanged = ("filterVerb", "prioritizeVerb", "preemptVerb", "bindVerb", "weight", "managedResources")
    assert {k: extender[k] for k in unchanged} == {k: original[k] for k in unchanged}


def test_without_an_extender_the_local_scheduler_has_no_extenders(chart_config: dict[str, Any]) -> None:
    local = fairpack_up.local_scheduler_config(
        chart_config, kubeconfig=pathlib.Path("k"), ca_file=pathlib.Path("ca"), extender_url=None
    )
    assert "extenders" not in local
    assert local["profiles"] == [{"schedulerName": labels.SCHEDULER_NAME}]


def test_demo_certificate_names_the_loopback_address_the_local_scheduler_dials() -> None:
    values = fairpack_up.DEMO_VALUES["extender"]["tls"]
    assert "127.0.0.1" in values["extraIPs"]


def test_demo_jobs_come_from_several_tenants_with_unique_names() -> None:
    jobs = fairpack_up.demo_sparkjobs()
    names = [j["metadata"]["name"] for j in jobs]
    assert len(names) == len(set(names))
    assert len({j["spec"]["tenant"] for j in jobs}) >= 3
    assert all(j["spec"]["executor"]["gpus"] >= 1 for j in jobs)
