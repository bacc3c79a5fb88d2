"""SparkJob on plain data: its pods (Spark's labels, the admission gate) and the queue's decisions."""

from __future__ import annotations

from typing import Any

import pytest

from fairpack.operator import admission, k8s, resources, settings, spark_pods, tenant
from fairpack.solver import labels
from fairpack.solver.fairqueue import estimator


def job(
    name: str = "pi",
    *,
    tenant_name: str = "a",
    user: str = "u",
    status: dict[str, Any] | None = None,
    executors: int = 2,
    cores: int = 1,
    gpus: int = 0,
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
            "executor": {"instances": executors, "cores": cores, "memory": "1Gi", "gpus": gpus},
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


@pytest.mark.parametrize(
    ("image", "version"),
    [
        pytest.param("apache/spark:3.5.3", "3.5.3", id="release"),
        pytest.param("apache/spark:3.5.3-scala2.12-java17-ubuntu", "3.5.3", id="flavoured"),
        pytest.param("registry:5000/spark:latest", None, id="no-version"),
    ],
)
def test_pods_carry_the_spark_version_their_image_names(image: str, version: str | None) -> None:
    body = job()
    body["spec"]["image"] = image
    for pod in spark_pods.pods(body, pool={}):
        assert pod["metadata"]["labels"].get("spark-version") == version


def test_executors_reach_the_driver_through_its_headless_service() -> None:
    body = job()
    service = spark_pods.driver_service(body)
    assert service["metadata"]["name"] == "pi-driver-svc"
    assert service["spec"]["clusterIP"] == "None"
    driver = spark_pods.driver_pod(body, pool={})
    # The Service selects the driver and nothing else.
    assert all(driver["metadata"]["labels"][k] == v for k, v in service["spec"]["selector"].items())
    executor = spark_pods.executor_pod(body, 1, pool={})
    assert not all(executor["metadata"]["labels"][k] == v for k, v in service["spec"]["selector"].items())
    env = {e["name"]: e["value"] for e in executor["spec"]["containers"][0]["env"]}
    assert env["SPARK_DRIVER_URL"] == "spark://CoarseGrainedScheduler@pi-driver-svc:7078"


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
    ("body", "reason", "field"),
    [
        pytest.param(job(tenant_name="zz"), "TenantNotFound", "spec.tenant", id="unknown-tenant"),
        pytest.param(job(user="eve"), "UserNotInTenant", "spec.user", id="not-a-member"),
        pytest.param(
            job(tenant_name="b", executors=2, cores=2), "ExceedsQuota", "spec.quota.cores", id="over-quota"
        ),
        pytest.param(job(cores=64), "ExceedsCluster", "spec.executor", id="bigger-than-the-pool"),
        pytest.param(job(executors=1, cores=10), "ExceedsNode", "spec.executor", id="bigger-than-any-node"),
        pytest.param(job(tenant_name="b", user="anyone"), None, None, id="open-tenant"),
    ],
)
def test_jobs_that_can_never_run_say_why_naming_the_field(
    body: dict[str, Any], reason: str | None, field: str | None
) -> None:
    nodes = [node("8"), node("8")]
    total = resources.capacity(nodes)
    sizes = [resources.capacity([n]) for n in nodes]
    problem = admission.admissibility(admission.Job(body), TENANTS, total, sizes)
    assert (problem and problem.reason) == reason
    if problem is not None:
        assert field is not None
        assert field in problem.message


def test_a_job_that_cannot_run_is_degraded_not_admitted_and_not_queued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    written: list[dict[str, Any]] = []

    def patch(_api: str, _kind: str, _name: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        written.append(body["status"])
        return {}

    monkeypatch.setattr(k8s, "patch", patch)
    gated = [
        {"metadata": {"name": f"p{i}", "namespace": "ns", "labels": {spark_pods.JOB_LABEL: "pi"}}}
        for i in range(3)
    ]
    snap = admission.Snapshot(
        now=0.0, jobs=[admission.Job(job(user="eve"))], tenants=TENANTS, nodes=[], pods=gated
    )
    total = resources.capacity([node("8")])
    admission.submit(snap, settings.AdmissionSettings(), estimator.Estimator(), total)
    [status] = written
    assert "submittedAt" not in status  # not queued: nothing for UWFQ to order
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Degraded"]["status"] == "True"
    assert conds["Degraded"]["reason"] == "UserNotInTenant"
    assert "spec.user" in conds["Degraded"]["message"]
    assert (conds["Admitted"]["status"], conds["Admitted"]["reason"]) == ("False", "Inadmissible")
    # Once the Tenant lets the user in, the next cycle queues it and the job is no longer degraded.
    snap.tenants = {**TENANTS, "a": tenant.Tenant("a", 1.0, frozenset({"u", "eve"}), None, None)}
    admission.submit(snap, settings.AdmissionSettings(), estimator.Estimator(), total)
    conds = {c["type"]: c for c in written[-1]["conditions"]}
    assert "submittedAt" in written[-1]
    assert (conds["Degraded"]["status"], conds["Admitted"]["reason"]) == ("False", "Queued")


def queued(
    name: str, tenant_name: str, arrival: str, *, user: str = "u", cores: int = 1, gpus: int = 0
) -> dict[str, Any]:
    return job(
        name,
        tenant_name=tenant_name,
        user=user,
        cores=cores,
        gpus=gpus,
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


EQUAL = {name: tenant.Tenant(name, 1.0, frozenset(), None, None) for name in ("a", "c", "d")}


def test_a_job_that_does_not_fit_is_not_delayed_by_later_ones() -> None:
    # "big" is first in UWFQ order (earliest, equal weights and sizes) and needs 8 GPUs; 4 are free.
    bodies = [
        queued("big", "a", "2026-01-01T00:00:00Z", gpus=4),
        queued("gpu-small", "c", "2026-01-01T00:00:01Z", gpus=1),
        queued("cpu-small", "d", "2026-01-01T00:00:02Z"),
    ]
    snap = snapshot(bodies, EQUAL)
    queue, _ = admission.rebuild(snap, settings.AdmissionSettings())
    assert [j.split("-", 1)[1] for j in queue.waiting()] == ["big", "gpu-small", "cpu-small"]
    chosen = admission.decide(snap, queue, resources.Resources(cpu=100, memory=1e12, gpus=4))
    # gpu-small would take a GPU the head waits for; cpu-small takes only what the head leaves.
    assert [j.name for j in chosen] == ["cpu-small"]
    # Cores are short too: cpu-small (3 cores) no longer fits beside the head's 3 reserved ones.
    chosen = admission.decide(snap, queue, resources.Resources(cpu=5, memory=1e12, gpus=4))
    assert chosen == []
    # Once the head fits, it goes first and the rest follow while they fit.
    chosen = admission.decide(snap, queue, resources.Resources(cpu=100, memory=1e12, gpus=10))
    assert [j.name for j in chosen] == ["big", "gpu-small", "cpu-small"]


def virtual_finishes(bodies: list[dict[str, Any]]) -> dict[str, float]:
    """Each waiting job's virtual finish in the queue a cycle rebuilds from ``bodies``."""
    queue, _ = admission.rebuild(snapshot(bodies, EQUAL), settings.AdmissionSettings())
    return {j.split("-", 1)[1]: queue.virtual_finish(j) for j in queue.waiting()}


def test_a_tenants_weight_is_split_among_its_active_users() -> None:
    # Tenant a (weight 1): u1 submits three jobs, then u2 one. Per user inside the tenant, u2's job
    # overtakes u1's backlog; were the tenant one flow, it would wait behind all three.
    bodies = [
        queued("u1-0", "a", "2026-01-01T00:00:00Z", user="u1"),
        queued("u1-1", "a", "2026-01-01T00:00:01Z", user="u1"),
        queued("u1-2", "a", "2026-01-01T00:00:02Z", user="u1"),
        queued("u2-0", "a", "2026-01-01T00:00:03Z", user="u2"),
        queued("v-0", "c", "2026-01-01T00:00:03Z", user="v"),
    ]
    snap = snapshot(bodies, EQUAL)
    assert admission.shares(snap.jobs, snap.tenants).members == {"a/u1": "a", "a/u2": "a", "c/v": "c"}
    queue, _ = admission.rebuild(snap, settings.AdmissionSettings())
    order = [j.split("-", 1)[1] for j in queue.waiting()]
    assert order.index("u2-0") < order.index("u1-1"), order
    # A user whose jobs have all finished no longer takes a part of the tenant's weight (this one
    # ran nothing at the very start, so it leaves no other trace).
    done = queued("u3-0", "a", "2026-01-01T00:00:00Z", user="u3")
    start = done["status"]["submittedAt"]
    done["status"].update(phase="Succeeded", admittedAt=start, startedAt=start, finishedAt=start)
    assert virtual_finishes([*bodies, done]) == pytest.approx(virtual_finishes(bodies))
    # Nor does a job that never entered the queue (Degraded: no submittedAt), e.g. of a non-member.
    outsider = queued("x-0", "a", "2026-01-01T00:00:04Z", user="x")
    del outsider["status"]["submittedAt"]
    assert virtual_finishes([*bodies, outsider]) == pytest.approx(virtual_finishes(bodies))


def test_a_users_past_service_is_kept_when_a_second_user_of_its_tenant_arrives() -> None:
    # 100 s jobs of a tenth of the cluster (10 000 units x s). Tenants a and c (weight 1 each):
    # a/u1 and c/v submit at 0 s, each alone in its tenant, so V runs at 1000 / 2 = 500 per
    # second and by 10 s u1 has had 5000 units of work at weight 1. Then a/u2 submits: from then
    # on u1 and u2 have a half each, so u1's last 5000 units end at V = 5000 + 5000 / 0.5 = 15000
    # and u2's job at 5000 + 10000 / 0.5 = 25000. Replaying the past at today's split would
    # halve u1's weight from 0 s on and put its job at 20000.
    bodies = [
        queued("u1-0", "a", "2026-01-01T00:00:00Z", user="u1"),
        queued("v-0", "c", "2026-01-01T00:00:00Z", user="v"),
        queued("u2-0", "a", "2026-01-01T00:00:10Z", user="u2"),
    ]
    expected = {"v-0": 10000.0, "u1-0": 15000.0, "u2-0": 25000.0}
    assert virtual_finishes(bodies) == pytest.approx(expected)


def test_a_finished_run_teaches_the_size_of_the_users_next_job(monkeypatch: pytest.MonkeyPatch) -> None:
    written: dict[str, dict[str, Any]] = {}

    def patch(_api: str, _kind: str, name: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        written[name] = body["status"]
        return {}

    monkeypatch.setattr(k8s, "patch", patch)
    # It declared 100 s, ran 30 s (admitted at :10, started :20, finished :50) on 100 units.
    done = queued("done", "a", "2026-01-01T00:00:00Z")
    done["status"].update(
        phase="Succeeded",
        admittedAt="2026-01-01T00:00:10Z",
        startedAt="2026-01-01T00:00:20Z",
        finishedAt="2026-01-01T00:00:50Z",
    )
    new = job("new", tenant_name="a")
    new["spec"]["estimatedSeconds"] = 500
    gated = [
        {"metadata": {"name": f"p{i}", "namespace": "ns", "labels": {spark_pods.JOB_LABEL: "new"}}}
        for i in range(3)
    ]
    snap = admission.Snapshot(
        now=admission.seconds("2026-01-01T00:01:00Z") or 0.0,
        jobs=[admission.Job(done), admission.Job(new)],
        tenants=TENANTS,
        nodes=[],
        pods=gated,
    )
    total = resources.capacity([node("30")])  # 3 cores of 30: the same 100 units as the first run
    _, learned = admission.rebuild(snap, settings.AdmissionSettings())
    admission.submit(snap, settings.AdmissionSettings(), learned, total)
    assert written["new"]["demand"] == 100
    # The same user's same application: the measured 30 s wins over the declared 500 s.
    assert written["new"]["estimatedSeconds"] == pytest.approx(30.0)
