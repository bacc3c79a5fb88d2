"""LLMService on plain data: the objects built from a spec, the status computed from Deployments,
and the autoscaler's decisions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fairpack.operator import autoscale, conditions, llm_fit, llm_objects, llm_status, llmservice
from fairpack.solver import kube, labels, model


def service(**spec: Any) -> dict[str, Any]:
    base = {
        "model": {"name": "m", "image": "vllm:1", "port": 8000, "metricsPath": "/metrics"},
        "replicas": 2,
        "gpu": {"count": 1},
        "tensorParallel": 1,
        "resources": {"cpu": "4", "memory": "32Gi"},
    }
    base.update(spec)
    return {
        "apiVersion": "fairpack.io/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": "llm", "namespace": "ns", "uid": "u-1", "generation": 3},
        "spec": base,
    }


def kinds(objs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in objs]


def test_a_plain_service_gets_one_deployment_a_service_and_a_pdb_all_owned_by_it() -> None:
    objs = llm_objects.desired_objects(service())
    assert kinds(objs) == [("Deployment", "llm-serve"), ("Service", "llm"), ("PodDisruptionBudget", "llm")]
    for obj in objs:
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("LLMService", "u-1", True)


def test_disaggregated_service_gets_a_deployment_per_role_and_the_service_selects_decode() -> None:
    body = service(prefill={"replicas": 3, "gpu": {"count": 4}, "tensorParallel": 4})
    objs = llm_objects.desired_objects(body)
    assert kinds(objs)[:2] == [("Deployment", "llm-prefill"), ("Deployment", "llm-decode")]
    prefill, decode = objs[0], objs[1]
    assert prefill["spec"]["replicas"] == 3
    assert decode["spec"]["replicas"] == 2
    assert objs[2]["spec"]["selector"] == {llm_objects.SERVICE_LABEL: "llm", llm_objects.ROLE_LABEL: "decode"}
    # The prefill pods get a headless Service of their own, so decode pods and routers find them.
    assert kinds(objs)[3] == ("Service", "llm-prefill")
    assert objs[3]["spec"]["clusterIP"] == "None"
    assert objs[3]["spec"]["selector"] == {
        llm_objects.SERVICE_LABEL: "llm",
        llm_objects.ROLE_LABEL: "prefill",
    }


@pytest.mark.parametrize(
    ("gpu", "expected"),
    [
        pytest.param({"count": 2}, {labels.GPU_RESOURCE: "2"}, id="whole-gpus"),
        pytest.param({"migProfile": "3g.40gb"}, {"nvidia.com/mig-3g.40gb": "1"}, id="mig"),
    ],
)
def test_pods_request_whole_gpus_or_one_mig_instance(gpu: dict[str, Any], expected: dict[str, str]) -> None:
    pod = llm_objects.deployment(service(gpu=gpu), llm_objects.roles(service(gpu=gpu)["spec"])[0])
    requests = pod["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert {k: v for k, v in requests.items() if k.startswith("nvidia.com/")} == expected


def test_pods_use_fairpack_scheduler_with_tenant_priority_and_product() -> None:
    body = service(tenant="research", priorityClassName="high", gpu={"count": 1, "product": "H100"})
    template = llm_objects.deployment(body, llm_objects.roles(body["spec"])[0])["spec"]["template"]
    assert template["spec"]["schedulerName"] == labels.SCHEDULER_NAME
    assert template["spec"]["priorityClassName"] == "high"
    assert template["spec"]["nodeSelector"] == {labels.GPU_PRODUCT_LABEL: "H100"}
    assert template["metadata"]["labels"][labels.TENANT_LABEL] == "research"


def test_tensor_parallel_pods_ask_for_one_nvlink_island() -> None:
    body = service(gpu={"count": 4}, tensorParallel=4)
    template = llm_objects.deployment(body, llm_objects.roles(body["spec"])[0])["spec"]["template"]
    assert template["metadata"]["annotations"] == {labels.REQUIRE_NVLINK_ANNOTATION: "true"}
    assert "--tensor-parallel-size" in template["spec"]["containers"][0]["args"]


def deployment(ready: int, updated: int, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "d"},
        "status": {"readyReplicas": ready, "updatedReplicas": updated, **extra},
    }


@pytest.mark.parametrize(
    ("deployments", "error", "expected"),
    [
        pytest.param(
            {"serve": None}, None, {"Ready": "DeploymentMissing", "Degraded": "AsExpected"}, id="missing"
        ),
        pytest.param(
            {"serve": deployment(1, 2)},
            None,
            {"Ready": "ReplicasNotReady", "Progressing": "RollingOut"},
            id="not-all-ready",
        ),
        pytest.param(
            {"serve": deployment(2, 1)},
            None,
            {"Ready": "AllReplicasReady", "Progressing": "RollingOut"},
            id="rolling",
        ),
        pytest.param(
            {"serve": deployment(2, 2)},
            None,
            {"Ready": "AllReplicasReady", "Progressing": "Stable"},
            id="ready",
        ),
        pytest.param(
            {"serve": deployment(2, 2)}, "403 Forbidden: quota", {"Degraded": "CannotRealise"}, id="refused"
        ),
        pytest.param(
            {
                "serve": deployment(
                    0, 0, conditions=[{"type": "ReplicaFailure", "status": "True", "message": "q"}]
                )
            },
            None,
            {"Degraded": "DeploymentFailing"},
            id="replica-failure",
        ),
    ],
)
def test_conditions_follow_the_deployments(
    deployments: dict[str, Any], error: str | None, expected: dict[str, str]
) -> None:
    _, conds = llm_status.compute(service()["spec"], deployments, name="llm", error=error)
    reasons = {c.type: c.reason for c in conds}
    assert {k: reasons[k] for k in expected} == expected


def test_status_reports_replicas_per_role_and_the_scale_selector() -> None:
    spec = service(prefill={"replicas": 1, "gpu": {"count": 1}})["spec"]
    # The decode Deployment has surged to 3 pods during a rollout: the scale subresource reports
    # what exists (status.replicas), not what the spec asks (desiredReplicas).
    fields, _ = llm_status.compute(
        spec, {"prefill": deployment(1, 1, replicas=1), "decode": deployment(1, 2, replicas=3)}, name="llm"
    )
    assert (fields["replicas"], fields["desiredReplicas"]) == (3, 2)
    assert fields["readyReplicas"] == 1
    assert fields["roles"]["prefill"]["readyReplicas"] == 1
    assert fields["selector"] == "fairpack.io/llmservice=llm,fairpack.io/role=decode"


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    first = conditions.merge(None, [conditions.Condition("Ready", False, "X")], now="t1")
    same = conditions.merge(first, [conditions.Condition("Ready", False, "Y")], now="t2")
    flipped = conditions.merge(same, [conditions.Condition("Ready", True, "Z")], now="t3")
    assert [c["lastTransitionTime"] for c in (*first, *same, *flipped)] == ["t1", "t1", "t3"]


PROMETHEUS_TEXT = """\
# HELP vllm:num_requests_waiting Requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="a"} 3.0
vllm:num_requests_waiting{model_name="b"} 2.0
"""


def test_metric_value_sums_the_samples_of_the_metric() -> None:
    assert autoscale.metric_value(PROMETHEUS_TEXT, "vllm:num_requests_waiting") == 5.0
    assert autoscale.metric_value(PROMETHEUS_TEXT, "absent") is None


SCALING = {
    "minReplicas": 1,
    "maxReplicas": 5,
    "target": 4.0,
    "scaleUpStabilizationSeconds": 0,
    "scaleDownStabilizationSeconds": 60,
}


@pytest.mark.parametrize(
    ("current", "value", "expected"),
    [
        pytest.param(2, 8.0, 4, id="double-load-doubles"),
        pytest.param(2, 40.0, 5, id="capped-at-max"),
        pytest.param(4, 0.0, 1, id="idle-goes-to-min"),
        pytest.param(2, 4.0, 2, id="at-target"),
    ],
)
def test_raw_recommendation_meets_the_target_within_bounds(current: int, value: float, expected: int) -> None:
    assert autoscale.raw_desired(current=current, value=value, target=4.0, low=1, high=5) == expected


def test_scale_up_is_immediate_and_scale_down_waits_for_its_window() -> None:
    rec = autoscale.Recommender()
    up = rec.decide(now=0.0, current=2, values=[8.0, 8.0], autoscaling=SCALING)
    assert (up.desired, up.reason) == (4, "MetricAboveTarget")
    held = rec.decide(now=30.0, current=4, values=[0.0], autoscaling=SCALING)
    assert (held.desired, held.reason) == (4, "Stabilising")
    down = rec.decide(now=91.0, current=4, values=[0.0], autoscaling=SCALING)
    assert (down.desired, down.reason) == (1, "MetricBelowTarget")


def test_no_metrics_means_no_change() -> None:
    decision = autoscale.Recommender().decide(now=0.0, current=3, values=[], autoscaling=SCALING)
    assert (decision.desired, decision.reason) == (3, "NoMetrics")


def test_slo_targets_reach_the_pods_as_annotations_and_environment() -> None:
    body = service(slo={"ttftMs": 200, "tpotMs": 40})
    template = llm_objects.deployment(body, llm_objects.roles(body["spec"])[0])["spec"]["template"]
    assert template["metadata"]["annotations"] == {
        "fairpack.io/slo-ttft-ms": "200",
        "fairpack.io/slo-tpot-ms": "40",
    }
    env = {e["name"]: e["value"] for e in template["spec"]["containers"][0]["env"]}
    assert (env["FAIRPACK_SLO_TTFT_MS"], env["FAIRPACK_SLO_TPOT_MS"]) == ("200", "40")
    plain = llm_objects.deployment(service(), llm_objects.roles(service()["spec"])[0])["spec"]["template"]
    assert not any(e["name"].startswith("FAIRPACK_SLO") for e in plain["spec"]["containers"][0]["env"])


def test_without_replicas_an_autoscaled_service_starts_at_its_minimum() -> None:
    body = service(autoscaling={"minReplicas": 3, "maxReplicas": 6, "target": 1})
    del body["spec"]["replicas"]
    assert llm_objects.deployment(body, llm_objects.roles(body["spec"])[0])["spec"]["replicas"] == 3
    del body["spec"]["autoscaling"]
    assert llm_objects.deployment(body, llm_objects.roles(body["spec"])[0])["spec"]["replicas"] == 1


def gpu_node(
    name: str,
    *,
    product: str = "NVIDIA-H100-80GB-HBM3",
    gpus: int = 8,
    islands: list[list[int]] | None = None,
    mig: dict[str, list[dict[str, Any]]] | None = None,
) -> model.Node:
    allocatable = {"cpu": "64", "memory": "512Gi", labels.GPU_RESOURCE: str(gpus - len(mig or {}))}
    annotations = {}
    if islands is not None:
        annotations[labels.NVLINK_ISLANDS_ANNOTATION] = json.dumps(islands)
    if mig:
        annotations[labels.MIG_LAYOUT_ANNOTATION] = json.dumps(mig)
        for instances in mig.values():
            for i in instances:
                key = labels.MIG_RESOURCE_PREFIX + i["profile"]
                allocatable[key] = str(int(allocatable.get(key, "0")) + 1)
    node_labels = {labels.GPU_PRODUCT_LABEL: product, labels.GPU_COUNT_LABEL: str(gpus)}
    if mig:
        node_labels[labels.MIG_STRATEGY_LABEL] = "mixed"
    return kube.node_from_dict(
        {
            "metadata": {"name": name, "labels": node_labels, "annotations": annotations},
            "status": {"allocatable": allocatable},
        }
    )


NODES = [
    gpu_node("h100", islands=[[0, 1, 2, 3], [4, 5, 6, 7]]),
    gpu_node(
        "a100-mig", product="NVIDIA-A100-SXM4-80GB", gpus=2, mig={"0": [{"profile": "3g.40gb", "start": 0}]}
    ),
]


@pytest.mark.parametrize(
    ("role_spec", "says"),
    [
        pytest.param({"gpu": {"count": 8}}, None, id="fits"),
        pytest.param({"gpu": {"count": 4}, "tensorParallel": 4}, None, id="fits-one-island"),
        pytest.param({"gpu": {"migProfile": "3g.40gb"}}, None, id="fits-mig"),
        pytest.param(
            {"gpu": {"count": 1, "product": "NVIDIA-B200"}}, "spec.gpu.product", id="no-such-product"
        ),
        pytest.param(
            {"gpu": {"count": 16}}, "spec.gpu.count 16: more GPUs than any node", id="too-many-gpus"
        ),
        pytest.param(
            {"gpu": {"count": 2, "product": "NVIDIA-A100-SXM4-80GB"}},
            "the most is 1",
            id="too-many-of-product",
        ),
        pytest.param(
            {"gpu": {"count": 8}, "tensorParallel": 8}, "spec.tensorParallel 8", id="island-too-small"
        ),
        pytest.param({"gpu": {"migProfile": "1g.10gb"}}, "spec.gpu.migProfile", id="profile-not-partitioned"),
        pytest.param(
            {"gpu": {"count": 1}, "resources": {"cpu": "128"}}, "spec.resources", id="too-many-cores"
        ),
    ],
)
def test_a_replica_no_node_could_ever_hold_is_named_with_its_field(
    role_spec: dict[str, Any], says: str | None
) -> None:
    reason = llm_fit.unfit(llm_objects.Role(llm_objects.SERVE, role_spec), NODES)
    if says is None:
        assert reason is None
    else:
        assert reason is not None
        assert says in reason


def test_a_service_no_node_fits_is_degraded_naming_the_role() -> None:
    spec = service(prefill={"replicas": 1, "gpu": {"count": 16}})["spec"]
    _, conds = llm_status.compute(
        spec,
        {"prefill": deployment(0, 1), "decode": deployment(2, 2)},
        name="llm",
        unfit={"prefill": "spec.prefill.gpu.count 16: more GPUs than any node has"},
    )
    degraded = next(c for c in conds if c.type == "Degraded")
    assert (degraded.status, degraded.reason) == (True, "NoNodeFits")
    assert degraded.message.startswith("prefill: spec.prefill.gpu.count")


@pytest.mark.parametrize(
    ("phase", "ready", "counted"),
    [
        pytest.param("Running", "True", True, id="serving"),
        pytest.param("Running", "False", False, id="loading-the-model"),
        pytest.param("Pending", "False", False, id="pending"),
    ],
)
def test_the_autoscaler_reads_only_pods_that_take_requests(phase: str, ready: str, counted: bool) -> None:
    pod = {"status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}}
    assert llmservice.is_ready(pod) is counted
