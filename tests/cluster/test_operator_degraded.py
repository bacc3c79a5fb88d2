"""Resources the operator cannot realise, on the real control plane: each gets Degraded=True with a
reason naming the field to fix, nothing else is created, and fixing the cause lets it proceed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fairpack_dev.operator_fixtures import FAIRPACK, Kube, kube, ns, run_operator, spark_job, tenant
from fairpack_dev.testkit import wait_for

from fairpack.solver import labels

pytestmark = pytest.mark.cluster
__all__ = ["kube", "ns", "run_operator"]


def small_job(ns: str, name: str, tenant: str, **spec: Any) -> dict[str, Any]:
    return spark_job(
        ns,
        name,
        tenant,
        driver={"cores": 1, "memory": "1Gi"},
        executor={"instances": 1, "cores": 1, "memory": "1Gi"},
        estimatedSeconds=1,
        podAnnotations={labels.SIMULATED_RUN_TIME_ANNOTATION: "1s"},
        **spec,
    )


def conditions(kube: Kube, kind: str, name: str, ns: str) -> dict[str, dict[str, Any]]:
    found = kube.get(FAIRPACK, kind, name, ns) or {}
    return {c["type"]: c for c in (found.get("status") or {}).get("conditions") or []}


def awaited(kube: Kube, kind: str, name: str, ns: str, kind_of: str) -> dict[str, Any]:
    """The object's condition ``kind_of`` once its status is True."""

    def true() -> dict[str, Any]:
        found = conditions(kube, kind, name, ns).get(kind_of) or {}
        return found if found.get("status") == "True" else {}

    return wait_for(true, 60, what=f"{kind_of}=True")


def test_a_sparkjob_of_an_unknown_tenant_is_degraded_until_the_tenant_exists(
    kube: Kube, ns: str, run_operator: Callable[..., Any]
) -> None:
    run_operator(FAIRPACK_ADMISSION_CYCLE_INTERVAL_S="0.5")
    missing = f"{ns}-later"
    kube.create(small_job(ns, "job", missing))
    awaited(kube, "SparkJob", "job", ns, "Degraded")
    conds = conditions(kube, "SparkJob", "job", ns)
    assert conds["Degraded"]["reason"] == "TenantNotFound"
    assert "spec.tenant" in conds["Degraded"]["message"]
    assert (conds["Admitted"]["status"], conds["Admitted"]["reason"]) == ("False", "Inadmissible")
    job = kube.get(FAIRPACK, "SparkJob", "job", ns) or {}
    assert "submittedAt" not in job["status"]  # not queued

    kube.create(tenant(ns, missing, weight=1, users=["u"]))
    awaited(kube, "SparkJob", "job", ns, "Admitted")
    assert conditions(kube, "SparkJob", "job", ns)["Degraded"]["status"] == "False"
    # Executors reach the driver through its headless Service, as Spark on Kubernetes names it.
    service = kube.get("v1", "Service", "job-driver-svc", ns)
    assert service is not None
    assert service["spec"]["selector"]["spark-role"] == "driver"


def test_a_sparkjob_whose_pods_the_api_refuses_is_degraded_naming_the_field(
    kube: Kube, ns: str, run_operator: Callable[..., Any]
) -> None:
    run_operator(FAIRPACK_ADMISSION_CYCLE_INTERVAL_S="0.5")
    kube.create(tenant(ns, f"{ns}-t", weight=1, users=["u"]))
    kube.create(small_job(ns, "job", f"{ns}-t", priorityClassName="no-such-class"))
    awaited(kube, "SparkJob", "job", ns, "Degraded")
    degraded = conditions(kube, "SparkJob", "job", ns)["Degraded"]
    assert degraded["reason"] == "PodsRejected"
    assert "spec.priorityClassName 'no-such-class'" in degraded["message"]
    assert kube.list("v1", "Pod", ns) == []
    events = kube.list("v1", "Event", ns)
    assert any(e.get("reason") == "PodsRejected" and e.get("type") == "Warning" for e in events), events


def llm(ns: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": FAIRPACK,
        "kind": "LLMService",
        "metadata": {"name": "llm", "namespace": ns},
        "spec": {
            "model": {"name": "m", "image": "vllm/vllm-openai:v0.6.4"},
            "resources": {"cpu": "1", "memory": "1Gi"},
            **spec,
        },
    }


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param(
            {"gpu": {"count": 1, "product": "NVIDIA-NO-SUCH-GPU"}}, "spec.gpu.product", id="product"
        ),
        pytest.param({"gpu": {"count": 16}, "tensorParallel": 16}, "spec.gpu.count 16", id="gpu-count"),
    ],
)
def test_an_llmservice_no_node_could_hold_is_degraded_naming_the_field(
    kube: Kube, ns: str, run_operator: Callable[..., Any], spec: dict[str, Any], field: str
) -> None:
    run_operator()
    kube.create(llm(ns, **spec))
    awaited(kube, "LLMService", "llm", ns, "Degraded")
    degraded = conditions(kube, "LLMService", "llm", ns)["Degraded"]
    assert degraded["reason"] == "NoNodeFits"
    assert field in degraded["message"]
    assert conditions(kube, "LLMService", "llm", ns)["Ready"]["status"] == "False"


def test_an_autoscaled_llmservice_without_replicas_starts_at_its_minimum(
    kube: Kube, ns: str, run_operator: Callable[..., Any]
) -> None:
    run_operator(FAIRPACK_LLMSERVICE_METRICS_TIMEOUT_S="0.2")
    kube.create(llm(ns, gpu={"count": 1}, autoscaling={"minReplicas": 2, "maxReplicas": 4, "target": 5}))
    wait_for(
        lambda: (
            ((kube.get("apps/v1", "Deployment", "llm-serve", ns) or {}).get("spec") or {}).get("replicas")
            == 2
        ),
        60,
        what="a Deployment of minReplicas",
    )
    wait_for(
        lambda: (kube.get(FAIRPACK, "LLMService", "llm", ns) or {})["spec"].get("replicas") == 2,
        60,
        what="the autoscaler to write spec.replicas",
    )
    degraded = conditions(kube, "LLMService", "llm", ns)["Degraded"]
    assert degraded["status"] == "False"
