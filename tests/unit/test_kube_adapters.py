"""Kubernetes object dicts, as ``kubectl get -o json`` prints them, become the cluster model."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fairpack.solver import gpumodels, kube, labels, model, quantity


def gpu_node(name: str = "gpu-1", **annotations: Any) -> dict[str, Any]:
    """A DGX-like H100 node as the API server returns it (device plugin, GFD labels, fairpack annotations)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": "5a1c",
            "creationTimestamp": "2026-11-23T10:00:00Z",
            "labels": {
                "kubernetes.io/hostname": name,
                labels.GPU_PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3",
                labels.GPU_COUNT_LABEL: "8",
                labels.GPU_MEMORY_LABEL: "81559",
                labels.MIG_STRATEGY_LABEL: "mixed",
            },
            "annotations": {
                labels.NVLINK_ISLANDS_ANNOTATION: "[[0,1,2,3],[4,5,6,7]]",
                labels.MIG_LAYOUT_ANNOTATION: json.dumps(
                    {"7": [{"profile": "4g.40gb", "start": 0}, {"profile": "3g.40gb", "start": 4}]}
                ),
                "node.alpha.kubernetes.io/ttl": "0",
                **annotations,
            },
        },
        "spec": {
            "podCIDR": "10.244.1.0/24",
            "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        },
        "status": {
            "capacity": {"cpu": "112", "memory": "2113602884Ki", "pods": "110", "nvidia.com/gpu": "7"},
            "allocatable": {
                "cpu": "111500m",
                "memory": "2113000000Ki",
                "pods": "110",
                "ephemeral-storage": "1800Gi",
                "nvidia.com/gpu": "7",
                "nvidia.com/mig-3g.40gb": "1",
                "nvidia.com/mig-4g.40gb": "1",
            },
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(name: str = "web-1", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": "u-" + name,
            "creationTimestamp": "2026-11-23T10:00:05Z",
            "labels": {labels.TENANT_LABEL: "vision", labels.USER_LABEL: "ada"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "controller": True, "uid": "r"}],
        },
        "spec": {
            "containers": [{"name": "app", "image": "nginx", "resources": {"requests": {"cpu": "500m"}}}],
            "priority": 100,
            "schedulerName": labels.SCHEDULER_NAME,
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
            ],
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }
    base["spec"].update(spec)
    return base


def test_a_gpu_node_reads_its_allocatable_gpus_islands_and_mig_layout() -> None:
    node = kube.node_from_dict(gpu_node())
    assert node.allocatable.amount("cpu") == 111_500
    assert node.allocatable.amount("memory") == 2_113_000_000 * 1024
    assert node.allocatable.amount(labels.GPU_RESOURCE) == 7
    assert [g.index for g in node.gpus] == list(range(8))
    assert {g.model for g in node.gpus} == {gpumodels.by_name("H100-80GB")}
    assert node.islands == ((0, 1, 2, 3), (4, 5, 6, 7))
    assert node.gpu(5).island == 1
    assert node.mig == (model.MigInstance(7, "4g.40gb", 0), model.MigInstance(7, "3g.40gb", 4))
    assert [g.index for g in node.whole_gpus] == list(range(7))
    assert node.taints == (model.Taint("nvidia.com/gpu", "present", "NoSchedule"),)


@pytest.mark.parametrize(
    ("annotation", "value", "complaint"),
    [
        pytest.param(labels.NVLINK_ISLANDS_ANNOTATION, "[[0,1],[1,2]", "not valid JSON", id="islands-json"),
        pytest.param(labels.NVLINK_ISLANDS_ANNOTATION, "[[0,1],[1,2]]", "more than one island", id="dup"),
        pytest.param(labels.NVLINK_ISLANDS_ANNOTATION, '{"0": 1}', "list of lists", id="islands-shape"),
        pytest.param(labels.MIG_LAYOUT_ANNOTATION, "{", "not valid JSON", id="layout-json"),
        pytest.param(
            labels.MIG_LAYOUT_ANNOTATION,
            '{"0": [{"profile": "3g.20gb", "start": 0}]}',
            "valid profiles",
            id="bad-profile",
        ),
        pytest.param(
            labels.MIG_LAYOUT_ANNOTATION,
            '{"0": [{"profile": "2g.20gb", "start": 6}]}',
            "cannot start",
            id="2g-at-6",
        ),
        pytest.param(
            labels.MIG_LAYOUT_ANNOTATION,
            '{"0": [{"profile": "4g.40gb", "start": 0}, {"profile": "3g.40gb", "start": 0}]}',
            "overlaps",
            id="overlap",
        ),
    ],
)
def test_bad_fairpack_annotations_name_the_node_and_the_annotation(
    annotation: str, value: str, complaint: str
) -> None:
    with pytest.raises(kube.InvalidObjectError, match=f"^node gpu-1: annotation {annotation}: .*{complaint}"):
        kube.node_from_dict(gpu_node(**{annotation: value}))


def test_effective_request_is_the_larger_of_the_containers_sum_and_the_largest_init_container() -> None:
    obj = pod(
        containers=[
            {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
        ],
        initContainers=[
            {"name": "migrate", "resources": {"requests": {"cpu": "2", "memory": "512Mi"}}},
            {"name": "warm", "resources": {"requests": {"cpu": "100m", "memory": "3Gi"}}},
        ],
        overhead={"cpu": "10m"},
    )
    requests = kube.pod_from_dict(obj).requests
    assert requests == model.Resources.of(cpu=2010, memory=3 * 2**30, pods=1)


def test_sidecar_init_containers_run_with_the_app_and_under_later_init_containers() -> None:
    obj = pod(
        containers=[{"name": "app", "resources": {"requests": {"cpu": "1"}}}],
        initContainers=[
            {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "300m"}}},
            {"name": "setup", "resources": {"requests": {"cpu": "1500m"}}},
        ],
    )
    # Init phase peak: proxy (300m) alongside setup (1500m) = 1800m > app (1000m) + proxy (300m).
    assert kube.pod_from_dict(obj).requests.amount("cpu") == 1800


def test_gpu_limits_alone_are_the_request_and_the_product_comes_from_the_selector() -> None:
    obj = pod(
        containers=[{"name": "train", "resources": {"limits": {"nvidia.com/gpu": "4"}}}],
        nodeSelector={labels.GPU_PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3"},
    )
    obj["metadata"]["annotations"] = {labels.REQUIRE_NVLINK_ANNOTATION: "true"}
    parsed = kube.pod_from_dict(obj)
    assert parsed.gpu == model.GpuRequest(4, "NVIDIA-H100-80GB-HBM3", require_island=True)
    assert (parsed.tenant, parsed.user, parsed.priority, parsed.controlled) == ("vision", "ada", 100, True)


def test_a_mig_resource_request_is_a_mig_gpu_request() -> None:
    obj = pod(containers=[{"name": "infer", "resources": {"limits": {"nvidia.com/mig-3g.40gb": "1"}}}])
    assert kube.pod_from_dict(obj).gpu == model.GpuRequest(mig_profile="3g.40gb")


def test_a_malformed_request_names_the_pod_and_the_field() -> None:
    obj = pod(containers=[{"name": "app", "resources": {"requests": {"cpu": "5 cores"}}}])
    expected = r"^pod default/web-1: spec\.containers\[0\]\.resources\.requests\.cpu: '5 cores' is not"
    with pytest.raises(quantity.QuantityError, match=expected):
        kube.pod_from_dict(obj)


def test_a_list_splits_running_from_pending_and_drops_finished_pods() -> None:
    running = pod("running", nodeName="gpu-1")
    running["status"]["phase"] = "Running"
    done = pod("done", nodeName="gpu-1")
    done["status"]["phase"] = "Succeeded"
    document = {"apiVersion": "v1", "kind": "List", "items": [gpu_node(), running, done, pod("waiting")]}
    snapshot = kube.snapshot_from_list(document)
    assert [p.name for p in snapshot.running] == ["running"]
    assert [p.name for p in snapshot.pending] == ["waiting"]
    assert snapshot.used()["gpu-1"] == model.Resources.of(cpu=500, pods=1)


def test_required_affinity_selector_and_taints_decide_the_static_fit() -> None:
    node = kube.node_from_dict(gpu_node())
    tolerant = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": labels.GPU_COUNT_LABEL, "operator": "Gt", "values": ["4"]}]}
                ]
            }
        }
    }
    assert model.static_misfit(kube.pod_from_dict(pod(tolerations=tolerant, affinity=affinity)), node) is None
    assert "untolerated taint nvidia.com/gpu" in str(model.static_misfit(kube.pod_from_dict(pod()), node))
    far = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}
                ]
            }
        }
    }
    assert model.static_misfit(kube.pod_from_dict(pod(tolerations=tolerant, affinity=far)), node) == (
        "required node affinity does not match"
    )
    wrong_gpu = pod(tolerations=tolerant, nodeSelector={labels.GPU_PRODUCT_LABEL: "NVIDIA-H200"})
    assert "node selector" in str(model.static_misfit(kube.pod_from_dict(wrong_gpu), node))


def test_resources_misfit_says_what_is_short() -> None:
    node = kube.node_from_dict(gpu_node())
    hungry = kube.pod_from_dict(pod(containers=[{"name": "a", "resources": {"requests": {"cpu": "100"}}}]))
    assert model.resources_misfit(hungry, node, model.Resources.of(cpu=20_000)) == (
        "insufficient cpu (needs 100000, free 91500)"
    )
    assert model.resources_misfit(hungry, node, model.NO_RESOURCES) is None


@pytest.mark.parametrize("name", ["gpu-1", "node.example.com", "a", "0-9"])
def test_a_dns_subdomain_node_name_is_read(name: str) -> None:
    assert kube.node_from_dict(gpu_node(name)).name == name


@pytest.mark.parametrize("name", ["", "GPU-1", "gpu_1", "-gpu", "gpu-", 'gpu"1', "gpu..1", "a" * 254])
def test_a_node_name_the_api_server_would_refuse_is_rejected(name: str) -> None:
    with pytest.raises(kube.InvalidObjectError, match=r"metadata\.name must be a DNS subdomain name"):
        kube.node_from_dict(gpu_node(name))
