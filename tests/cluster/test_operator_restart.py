"""The operator killed (SIGKILL) in the middle of reconciling and started again: every object it
owns exists exactly once, owned by a live resource, and the work carries on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from fairpack_dev.operator_fixtures import FAIRPACK, Kube, kube, ns, run_operator, spark_job, tenant
from fairpack_dev.testkit import wait_for

pytestmark = pytest.mark.cluster
__all__ = ["kube", "ns", "run_operator"]

JOBS, EXECUTORS, SERVICES = 4, 15, 3


def llmservice(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": FAIRPACK,
        "kind": "LLMService",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "model": {"name": "m", "image": "vllm/vllm-openai:v0.6.4"},
            "replicas": 1,
            "gpu": {"count": 1},
            "resources": {"cpu": "1", "memory": "1Gi"},
            "prefill": {"replicas": 1, "gpu": {"count": 1}},
        },
    }


def owners(obj: dict[str, Any]) -> list[str]:
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences") or ()]


def test_a_killed_operator_leaves_no_duplicate_or_orphaned_objects(
    kube: Kube, ns: str, gpu_nodes: Callable[..., Any], run_operator: Callable[..., Any]
) -> None:
    group = gpu_nodes("h100", count=1, taint=False)
    team = f"{ns}-t"
    kube.create(tenant(ns, team))
    pool = ",".join(f"{k}={v}" for k, v in group.selector.items())
    first = run_operator(FAIRPACK_ADMISSION_POOL=pool)
    for i in range(SERVICES):
        kube.create(llmservice(ns, f"llm-{i}"))
    for i in range(JOBS):
        executors = {"instances": EXECUTORS, "cores": 1, "memory": "256Mi"}
        kube.create(spark_job(ns, f"job-{i}", team, executor=executors, estimatedSeconds=60))

    total = JOBS * (EXECUTORS + 1)
    wait_for(
        lambda: 0 < len(kube.list("v1", "Pod", ns, "fairpack.io/sparkjob")) < total,
        60,
        what="the operator in the middle of creating the jobs' pods",
    )
    first.kill()
    run_operator(FAIRPACK_ADMISSION_POOL=pool)

    jobs = {j["metadata"]["uid"]: j["metadata"]["name"] for j in kube.list(FAIRPACK, "SparkJob", ns)}
    wait_for(
        lambda: len(kube.list("v1", "Pod", ns, "fairpack.io/sparkjob")) >= total,
        90,
        what="every job's pods after the restart",
    )
    pods = kube.list("v1", "Pod", ns, "fairpack.io/sparkjob")
    per_job = Counter(jobs.get(owners(p)[0], "orphan") for p in pods)
    assert per_job == dict.fromkeys(jobs.values(), EXECUTORS + 1)

    services = {s["metadata"]["uid"]: s["metadata"]["name"] for s in kube.list(FAIRPACK, "LLMService", ns)}

    def role_deployments() -> Counter[str]:
        return Counter(
            services.get(owners(d)[0], "orphan")
            for d in kube.list("apps/v1", "Deployment", ns, "fairpack.io/llmservice")
        )

    wait_for(
        lambda: role_deployments() == dict.fromkeys(services.values(), 2),
        60,
        what="one prefill and one decode Deployment per LLMService",
    )
    # Two Services each (the decode one and the prefill pods' headless one), one PDB.
    for api_version, kind, count in (("v1", "Service", 2), ("policy/v1", "PodDisruptionBudget", 1)):
        found = Counter(
            services.get(owners(o)[0], "orphan")
            for o in kube.list(api_version, kind, ns, "fairpack.io/llmservice")
        )
        assert found == dict.fromkeys(services.values(), count), kind
    replica_sets = kube.list("apps/v1", "ReplicaSet", ns)
    assert len(replica_sets) == 2 * SERVICES

    # The queue carries on: every job is queued with its facts, and the ones admitted have
    # their gates lifted.
    def queued_or_admitted() -> bool:
        statuses = [j.get("status") or {} for j in kube.list(FAIRPACK, "SparkJob", ns)]
        return all(s.get("submittedAt") for s in statuses) and any(s.get("admittedAt") for s in statuses)

    wait_for(queued_or_admitted, 60, what="every job submitted and some admitted")

    def gated_admitted_pods() -> list[str]:
        admitted = {
            j["metadata"]["name"]
            for j in kube.list(FAIRPACK, "SparkJob", ns)
            if (j.get("status") or {}).get("admittedAt")
        }
        return [
            p["metadata"]["name"]
            for p in kube.list("v1", "Pod", ns, "fairpack.io/sparkjob")
            if p["metadata"]["labels"]["fairpack.io/sparkjob"] in admitted
            and p["spec"].get("schedulingGates")
        ]

    wait_for(lambda: gated_admitted_pods() == [], 30, what="the gates of admitted jobs' pods lifted")
