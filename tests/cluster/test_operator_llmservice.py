"""LLMService on the real control plane: the operator's Deployments, Service and PDB appear, change
and are garbage-collected; status follows KWOK's pods; the autoscaler follows a metric we serve."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fairpack_dev.operator_fixtures import FAIRPACK, Kube, kube, ns, run_operator
from fairpack_dev.testkit import wait_for

pytestmark = pytest.mark.cluster
__all__ = ["kube", "ns", "run_operator"]

SERVICE_LABEL = "fairpack.io/llmservice"


def status(kube: Kube, ns: str) -> dict[str, Any]:
    """The status of the test's LLMService ("llm")."""
    return dict((kube.get(FAIRPACK, "LLMService", "llm", ns) or {}).get("status") or {})


def llm(ns: str, name: str = "llm", **spec: Any) -> dict[str, Any]:
    body = {
        "model": {"name": "meta-llama/Llama-3.1-8B", "image": "vllm/vllm-openai:v0.6.4"},
        "replicas": 2,
        "gpu": {"count": 1},
        "resources": {"cpu": "1", "memory": "1Gi"},
        **spec,
    }
    return {
        "apiVersion": FAIRPACK,
        "kind": "LLMService",
        "metadata": {"name": name, "namespace": ns},
        "spec": body,
    }


def condition(kube: Kube, ns: str, name: str, type_: str) -> dict[str, Any]:
    found = kube.get(FAIRPACK, "LLMService", name, ns) or {}
    conds = (found.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == type_), {})


def children(kube: Kube, ns: str, name: str) -> dict[str, list[str]]:
    selector = f"{SERVICE_LABEL}={name}"
    return {
        kind: sorted(o["metadata"]["name"] for o in kube.list(api, kind, ns, selector))
        for api, kind in (("apps/v1", "Deployment"), ("v1", "Service"), ("policy/v1", "PodDisruptionBudget"))
    }


def deployment(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    found = kube.get("apps/v1", "Deployment", name, ns)
    assert found is not None, f"Deployment {name} is missing"
    return found


def replicas_of(kube: Kube, ns: str, name: str) -> int:
    return int(deployment(kube, ns, name)["spec"]["replicas"])


def test_llmservice_objects_appear_follow_the_spec_and_are_garbage_collected(
    kube: Kube, ns: str, gpu_nodes: Callable[..., Any], run_operator: Callable[..., Any]
) -> None:
    gpu_nodes("h100", count=1, taint=False)
    run_operator()
    created = kube.create(llm(ns))
    wanted = {"Deployment": ["llm-serve"], "Service": ["llm"], "PodDisruptionBudget": ["llm"]}
    wait_for(lambda: children(kube, ns, "llm") == wanted, 60, what="the Deployment, Service and PDB")
    for api, kind, name in (
        ("apps/v1", "Deployment", "llm-serve"),
        ("v1", "Service", "llm"),
        ("policy/v1", "PodDisruptionBudget", "llm"),
    ):
        owner = (kube.get(api, kind, name, ns) or {})["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "LLMService",
            created["metadata"]["uid"],
            True,
        )
    pod_spec = deployment(kube, ns, "llm-serve")["spec"]["template"]["spec"]
    assert pod_spec["schedulerName"] == "fairpack-scheduler"
    assert pod_spec["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "1"

    # Status follows KWOK's pods to Ready.
    wait_for(lambda: condition(kube, ns, "llm", "Ready").get("status") == "True", 90, what="Ready=True")
    status = (kube.get(FAIRPACK, "LLMService", "llm", ns) or {})["status"]
    assert status["roles"]["serve"] == {
        "deployment": "llm-serve",
        "desiredReplicas": 2,
        "replicas": 2,
        "readyReplicas": 2,
        "updatedReplicas": 2,
    }

    # Scale through the scale subresource, as kubectl scale does.
    kube.patch(FAIRPACK, "LLMService", "llm", {"spec": {"replicas": 3}}, namespace=ns, subresource="scale")
    wait_for(
        lambda: deployment(kube, ns, "llm-serve")["spec"]["replicas"] == 3,
        60,
        what="3 replicas in the Deployment",
    )
    wait_for(
        lambda: (
            (kube.get(FAIRPACK, "LLMService", "llm", ns) or {}).get("status", {}).get("readyReplicas") == 3
        ),
        90,
        what="3 ready replicas",
    )

    # An update of the model reaches the pod template.
    kube.patch(
        FAIRPACK,
        "LLMService",
        "llm",
        {"spec": {"model": {"args": ["--max-model-len", "4096"]}}},
        namespace=ns,
    )
    wait_for(
        lambda: (
            "--max-model-len"
            in deployment(kube, ns, "llm-serve")["spec"]["template"]["spec"]["containers"][0]["args"]
        ),
        60,
        what="the new args in the template",
    )

    # Deleting the service lets the garbage collector remove everything it owned.
    kube.delete(FAIRPACK, "LLMService", "llm", ns)
    wait_for(
        lambda: children(kube, ns, "llm") == {"Deployment": [], "Service": [], "PodDisruptionBudget": []},
        90,
        what="garbage collection",
    )


def test_disaggregated_roles_get_their_own_deployments_and_lose_them_when_merged(
    kube: Kube, ns: str, gpu_nodes: Callable[..., Any], run_operator: Callable[..., Any]
) -> None:
    gpu_nodes("h100", count=1, taint=False)
    run_operator()
    kube.create(
        llm(
            ns,
            replicas=2,
            gpu={"count": 2},
            tensorParallel=2,
            prefill={"replicas": 1, "gpu": {"count": 4}, "tensorParallel": 4},
        )
    )
    wait_for(
        lambda: children(kube, ns, "llm")["Deployment"] == ["llm-decode", "llm-prefill"],
        60,
        what="prefill and decode Deployments",
    )
    prefill = deployment(kube, ns, "llm-prefill")["spec"]
    assert prefill["replicas"] == 1
    assert prefill["template"]["metadata"]["annotations"] == {"fairpack.io/require-nvlink-island": "true"}
    service = kube.get("v1", "Service", "llm", ns) or {}
    assert service["spec"]["selector"] == {SERVICE_LABEL: "llm", "fairpack.io/role": "decode"}
    assert children(kube, ns, "llm")["Service"] == ["llm", "llm-prefill"]
    wait_for(lambda: condition(kube, ns, "llm", "Ready").get("status") == "True", 90, what="both roles ready")

    kube.patch(FAIRPACK, "LLMService", "llm", {"spec": {"prefill": None}}, namespace=ns)
    wait_for(
        lambda: children(kube, ns, "llm")["Deployment"] == ["llm-serve"], 60, what="a single serve Deployment"
    )
    wait_for(lambda: children(kube, ns, "llm")["Service"] == ["llm"], 60, what="the prefill Service gone")


def test_a_service_that_cannot_run_is_degraded_with_the_reason(
    kube: Kube, ns: str, run_operator: Callable[..., Any]
) -> None:
    run_operator()
    kube.create(llm(ns, priorityClassName="no-such-class"))
    wait_for(lambda: condition(kube, ns, "llm", "Degraded").get("status") == "True", 60, what="Degraded=True")
    degraded = condition(kube, ns, "llm", "Degraded")
    assert degraded["reason"] == "DeploymentFailing"
    assert "no-such-class" in degraded["message"]
    assert condition(kube, ns, "llm", "Ready")["status"] == "False"


class Metrics(http.server.BaseHTTPRequestHandler):
    """Serves ``vllm:num_requests_waiting <value>`` for every pod; the test sets the value."""

    value = 0.0

    def do_GET(self) -> None:
        body = f"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting {Metrics.value}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def metrics_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_autoscaler_follows_the_queue_length_the_pods_report(
    kube: Kube,
    ns: str,
    gpu_nodes: Callable[..., Any],
    run_operator: Callable[..., Any],
    metrics_server: int,
) -> None:
    gpu_nodes("h100", count=1, taint=False)
    run_operator(
        FAIRPACK_LLMSERVICE_METRICS_URL_TEMPLATE=f"http://127.0.0.1:{metrics_server}/{{namespace}}/{{pod_name}}"
    )
    scaling = {"minReplicas": 1, "maxReplicas": 4, "target": 4, "scaleDownStabilizationSeconds": 0}
    Metrics.value = 10.0  # per pod; with one replica: ceil(1 * 10 / 4) = 3
    kube.create(llm(ns, replicas=1, autoscaling=scaling))

    def replicas() -> int:
        return int((kube.get(FAIRPACK, "LLMService", "llm", ns) or {})["spec"]["replicas"])

    def last_scaling() -> dict[str, Any]:
        status = (kube.get(FAIRPACK, "LLMService", "llm", ns) or {}).get("status") or {}
        return dict(status.get("lastScaling") or {})

    # The autoscaler writes spec.replicas, then status.lastScaling (two requests): wait for both.
    wait_for(lambda: replicas() == 3 and last_scaling().get("toReplicas") == 3, 60, what="scale-up to 3")
    last = last_scaling()
    assert (last["fromReplicas"], last["toReplicas"], last["value"], last["reason"]) == (
        1,
        3,
        10.0,
        "MetricAboveTarget",
    )
    wait_for(
        lambda: deployment(kube, ns, "llm-serve")["spec"]["replicas"] == 3,
        60,
        what="3 replicas in the Deployment",
    )

    Metrics.value = 0.0
    wait_for(lambda: replicas() == 1, 60, what="scale-down to the minimum")
    events = kube.list("v1", "Event", ns)
    assert any(e.get("reason") == "Scaled" for e in events)
