"""HA: a replica that does not lead its kopf peering admits nothing. A SparkJob waits in the queue
(its pods created and gated by a first operator whose pool had no nodes); a fake peer of higher
priority in the ClusterKopfPeering object holds the next replica paused: the job is not admitted
until that peer leaves, and then it is."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

import pytest
from fairpack_dev.operator_fixtures import FAIRPACK, Kube, kube, ns, run_operator, spark_job, tenant
from fairpack_dev.testkit import wait_for

pytestmark = pytest.mark.cluster
__all__ = ["kube", "ns", "run_operator"]

PEERING = ("kopf.dev/v1", "ClusterKopfPeering")


def test_a_replica_that_does_not_lead_its_peering_admits_nothing_until_it_leads(
    kube: Kube, ns: str, gpu_nodes: Callable[..., Any], run_operator: Callable[..., Any]
) -> None:
    group = gpu_nodes("h100", count=1, taint=False)
    team = f"{ns}-t"
    kube.create(tenant(ns, team, weight=1))
    kube.create(spark_job(ns, "job", team, estimatedSeconds=60))
    # A first operator (standalone) creates the job's pods gated; its pool has no nodes, so the
    # job waits with a message and is never submitted to the queue.
    first = run_operator(FAIRPACK_ADMISSION_POOL="fairpack.io/test-no-such-pool=none")

    def job() -> dict[str, Any]:
        return (kube.get(FAIRPACK, "SparkJob", "job", ns) or {}).get("status") or {}

    def gated() -> list[dict[str, Any]]:
        pods = kube.list("v1", "Pod", ns, "fairpack.io/sparkjob=job")
        return pods if len(pods) == 2 and all(p["spec"].get("schedulingGates") for p in pods) else []

    wait_for(lambda: gated() and job().get("phase") == "Queued", 60, what="the job's pods created gated")
    first.stop()
    waiting = job()
    assert not waiting.get("submittedAt")

    peering = f"fairpack-{ns}"
    now = datetime.datetime.now(datetime.UTC).isoformat()
    fake = {"priority": 1000, "lifetime": 600, "lastseen": now}
    kube.create({"apiVersion": PEERING[0], "kind": PEERING[1], "metadata": {"name": peering}})
    try:
        kube.patch(*PEERING, peering, {"status": {"fake-active-replica": fake}})
        run_operator(
            FAIRPACK_PEERING=peering,
            FAIRPACK_PEERING_PRIORITY="10",
            FAIRPACK_ADMISSION_POOL=",".join(f"{k}={v}" for k, v in group.selector.items()),
        )

        def listed() -> bool:
            peers = (kube.get(*PEERING, peering) or {}).get("status") or {}
            return len(peers) >= 2

        wait_for(listed, 60, what="the replica in the peering object")
        # A replica that ran an admission pass (at start, or on any kick: cycles are 0.5 s apart
        # in these tests) would have queued and admitted the job within a second or two.
        time.sleep(10)
        assert job() == waiting
        assert gated()
        kube.patch(*PEERING, peering, {"status": {"fake-active-replica": None}})
        wait_for(
            lambda: job().get("phase") in ("Admitted", "Running"),
            60,
            what="the job admitted once the replica leads",
        )
    finally:
        kube.delete(*PEERING, peering)
