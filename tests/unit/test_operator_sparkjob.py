"""SparkJob on plain data: its pods (Spark's labels, the admission gate) and the queue's decisions."""

from __future__ import annotations

from typing import Any

import pytest

from fairpack.operator import admission, resources, settings, spark_pods, tenant
from fairpack.solver import labels


def job(
    name: str = "pi",
    *,
    tenant_name: str = "a",
    user: str = "u",
    status: dict[str, Any] | None = None,
    executors: int = 2,
    cores: int = 1,
) -> dict[str, Any]:
    return {
        "apiVersion": "fairpack.io/v1alpha1",
        "kind": "SparkJob",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": {
            "tenant": tenant_name,
            "user": user,
            "image": "spark:3",
            "mainApplicationFile": "local:///app.jar",
            "mainClass": "Pi",
            "driver": {"cores": 1, "memory": "1Gi", "gpus": 0},
            "executor": {"instances": executors, "cores": cores, "memory": "1Gi", "gpus": 0},
        },
        "status": status or {},
    }


def test_pods_are_a_driver_and_numbered_executors_with_sparks_labels_all_gated() -> None:
    pods = spark_pods.pods(job(), pool={})
    assert [p["metadata"]["name"] for p in pods] == ["pi-driver", "pi-exec-1", "pi-exec-2"]
    assert [p["metadata"]["labels"]["spark-role"] for p in pods] == ["driver", "executor", "executor"]
    assert {p["metadata"]["labels"]["spark-app-selector"] for p in pods} == {spark_pods.app_id(job())}
    assert pods[2]["metadata"]["labels"]["spark-exec-id"] == "2"
    for pod in pods:
        assert pod["spec"]["schedulingGates"] == [{"name": labels.ADMISSION_GATE}]
        assert pod["spec"]["schedulerName"] == labels.SCHEDULER_NAME
        assert pod["metadata"]["labels"][labels.TENANT_LABEL] == "a"
        assert resources.is_gated(pod)


def test_driver_runs_the_application_with_its_conf_and_arguments() -> None:
    body = job()
    body["spec"]["sparkConf"] = {"spark.x": "1"}
    body["spec"]["arguments"] = ["100"]
    args = spark_pods.driver_pod(body, pool={})["spec"]["containers"][0]["args"]
    assert args == [
        "driver",
        "--deploy-mode",
        "client",
        "--class",
        "Pi",
        "--conf",
        "spark.x=1",
        "local:///app.jar",
        "100",
    ]


def node(cpu: str, memory: str = "64Gi", gpus: str = "0") -> dict[str, Any]:
    return {
        "metadata": {"name": "n"},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, labels.GPU_RESOURCE: gpus},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_demand_is_the_dominant_share_in_thousandths() -> None:
    total = resources.Resources(cpu=10, memory=100, gpus=4)
    assert resources.demand_units(resources.Resources(cpu=1, memory=50, gpus=1), total, units=1000) == 500


def test_used_capacity_counts_admitted_pods_until_they_end_but_not_gated_ones() -> None:
    gated, *_ = spark_pods.pods(job(), pool={})
    running = {**gated, "spec": {**gated["spec"], "schedulingGates": []}, "status": {"phase": "Running"}}
    done = {**running, "status": {"phase": "Succeeded"}}
    assert resources.used([gated, running, done], nodes=[], selector={}) == resources.pod_requests(running)


def test_a_pods_request_is_kubernetes_effective_request_with_its_init_containers() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "initContainers": [{"name": "fetch", "resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "1", "nvidia.com/gpu": "1"}}},
            ],
        },
    }
    # cpu: the init container's 3 cores outweigh the app's 1.5; memory: the app's 2Gi wins.
    assert resources.pod_requests(pod) == resources.Resources(cpu=3.0, memory=2 * 2**30, gpus=1.0)


def test_a_malformed_request_names_the_pod_and_field() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "two"}}}]},
    }
    with pytest.raises(ValueError, match=r"pod ns/p: spec\.containers\[0\].*cpu"):
        resources.pod_requests(pod)


TENANTS = {
    "a": tenant.Tenant("a", 1.0, frozenset({"u"}), None, None),
    "b": tenant.Tenant("b", 2.0, frozenset(), quota_gpus=None, quota_cores=3.0),
}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(job(tenant_name="zz"), "tenant 'zz' does not exist", id="unknown-tenant"),
        pytest.param(job(user="eve"), "user 'eve' is not a member of tenant 'a'", id="not-a-member"),
        pytest.param(job(cores=64), "the job requests more than the whole cluster has", id="too-big"),
        pytest.param(job(tenant_name="b", user="anyone"), None, id="open-tenant"),
    ],
)
def test_jobs_that_can_never_run_say_why(body: dict[str, Any], reason: str | None) -> None:
    total = resources.capacity([node("16")])
    assert admission.admissibility(admission.Job(body), TENANTS, total) == reason


def queued(name: str, tenant_name: str, arrival: str) -> dict[str, Any]:
    return job(
        name,
        tenant_name=tenant_name,
        user="u",
        status={
            "phase": "Queued",
            "submittedAt": arrival,
            "estimatedSeconds": 100.0,
            "demand": 100,
        },
    )


def snapshot(bodies: list[dict[str, Any]], tenants: dict[str, tenant.Tenant]) -> admission.Snapshot:
    return admission.Snapshot(
        now=admission.seconds("2026-01-01T00:01:00Z") or 0.0,
        jobs=[admission.Job(b) for b in bodies],
        tenants=tenants,
        nodes=[node("9")],
        pods=[],
    )


def test_decide_walks_the_uwfq_order_and_takes_what_fits() -> None:
    # 100 s jobs of a tenth of the cluster: a's first ends at V=10000, its second at 20000; b (weight
    # 2) arrives at V=2000 and ends at 2000 + 10000/2 = 7000, overtaking both.
    bodies = [
        queued("a1", "a", "2026-01-01T00:00:00Z"),
        queued("a2", "a", "2026-01-01T00:00:01Z"),
        queued("b1", "b", "2026-01-01T00:00:02Z"),
    ]
    snap = snapshot(bodies, TENANTS)
    queue, _ = admission.rebuild(snap, settings.AdmissionSettings())
    assert [j.split("-")[1] for j in queue.waiting()] == ["b1", "a1", "a2"]
    # Each job needs 3 cores; 9 are free: all three fit. With 6 free, the first two in order.
    chosen = admission.decide(snap, queue, resources.Resources(cpu=6, memory=1e12))
    assert [j.name for j in chosen] == ["b1", "a1"]


def test_decide_skips_a_tenant_over_its_quota_without_blocking_others() -> None:
    bodies = [queued("b1", "b", "2026-01-01T00:00:00Z"), queued("a1", "a", "2026-01-01T00:00:01Z")]
    snap = snapshot(bodies, {**TENANTS, "b": tenant.Tenant("b", 2.0, frozenset(), None, quota_cores=2.0)})
    queue, _ = admission.rebuild(snap, settings.AdmissionSettings())
    chosen = admission.decide(snap, queue, resources.Resources(cpu=100, memory=1e12))
    assert [j.name for j in chosen] == ["a1"]


def test_with_a_pool_only_pods_on_or_headed_for_its_nodes_use_its_capacity() -> None:
    def pod(node: str | None, selector: dict[str, str] | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}
        if node:
            spec["nodeName"] = node
        if selector:
            spec["nodeSelector"] = selector
        return {
            "metadata": {"name": "p"},
            "spec": spec,
            "status": {"phase": "Running" if node else "Pending"},
        }

    pool = {"pool": "batch"}
    here = {**node("8"), "metadata": {"name": "a", "labels": pool}}
    elsewhere = {**node("8"), "metadata": {"name": "b", "labels": {}}}
    nodes = resources.pool_nodes([here, elsewhere], pool)
    assert [n["metadata"]["name"] for n in nodes] == ["a"]
    pods = [pod("a"), pod("b"), pod(None, pool), pod(None)]
    assert resources.used(pods, nodes=nodes, selector=pool).cpu == 2
    assert resources.used(pods, nodes=nodes, selector={}).cpu == 4
