"""The local control plane does what Kubernetes does: schedule on GPU capacity, report why a pod
cannot be scheduled, run controllers, enforce RBAC, and simulate pods on KWOK's GPU nodes."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from fairpack_dev import cluster as localcluster
from fairpack_dev import credentials, testkit
from fairpack_dev.scheduler_config import ExtenderConfig
from kubernetes import client, config

from fairpack.solver import labels

pytestmark = pytest.mark.cluster

GpuNodes = Callable[..., testkit.NodeGroup]
PodBuilder = Callable[[str], testkit.Pod]


def test_gpu_pod_of_the_fairpack_profile_runs_on_a_node_with_free_gpus(
    api: client.ApiClient, namespace: str, gpu_nodes: GpuNodes, pod: PodBuilder
) -> None:
    group = gpu_nodes("h100", count=2)
    pod("big").gpus(7).fairpack().on(group).create(api)
    big = testkit.wait_for(
        lambda: testkit.read_pod(api, namespace, "big").spec.node_name, 30, what="the 7-GPU pod bound"
    )

    pod("pair").gpus(2).fairpack().on(group).create(api)

    testkit.wait_for(testkit.phase_is(api, namespace, "pair", "Running"), 30, what="the 2-GPU pod Running")
    placed = testkit.read_pod(api, namespace, "pair")
    # Only 1 of the 8 GPUs is free next to the 7-GPU pod: the other node is the one with room.
    assert placed.spec.node_name in group.names
    assert placed.spec.node_name != big
    assert testkit.condition(placed, "Ready").status == "True"


def test_api_server_reports_the_pinned_kubernetes_version(api: client.ApiClient) -> None:
    # Built from the Go module, the binaries know their version only through the build's ldflags
    # (else v0.0.0-master+$Format:%H$). On kind, its node image is built from the same pin.
    pinned = localcluster.versions()["KUBERNETES_VERSION"]

    assert client.VersionApi(api).get_code().git_version == pinned


@pytest.mark.parametrize(
    ("binary", "args"),
    [
        ("kube-controller-manager", ["--version"]),
        ("kube-scheduler", ["--version"]),
        ("kubectl", ["version", "--client"]),
    ],
)
def test_other_kubernetes_binaries_report_the_pinned_version(binary: str, args: list[str]) -> None:
    pinned = localcluster.versions()["KUBERNETES_VERSION"]

    out = subprocess.run(
        [str(localcluster.binaries()[binary]), *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout

    # "Kubernetes v1.35.4" / "Client Version: v1.35.4"
    assert re.search(rf"(?m)^(Kubernetes|Client Version:) {re.escape(pinned)}$", out), out


def test_pod_asking_more_gpus_than_any_node_has_stays_pending_as_unschedulable(
    api: client.ApiClient, namespace: str, pod: PodBuilder
) -> None:
    pod("huge").gpus(64).fairpack().create(api)

    scheduled = testkit.wait_for(
        lambda: testkit.condition(testkit.read_pod(api, namespace, "huge"), "PodScheduled"),
        30,
        what="the scheduler's PodScheduled condition",
    )

    assert scheduled.status == "False"
    assert scheduled.reason == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in scheduled.message
    assert testkit.read_pod(api, namespace, "huge").status.phase == "Pending"


def test_unreachable_extender_that_is_not_ignorable_blocks_scheduling(
    api: client.ApiClient,
    namespace: str,
    gpu_nodes: GpuNodes,
    pod: PodBuilder,
    fairpack_scheduler: Callable[[ExtenderConfig | None], None],
) -> None:
    group = gpu_nodes("h100")
    dead = f"http://127.0.0.1:{localcluster.free_ports(1)[0]}"
    fairpack_scheduler(ExtenderConfig(url_prefix=dead, ignorable=False, http_timeout_s=1.0))

    pod("gated").gpus(1).fairpack().on(group).create(api)

    scheduled = testkit.wait_for(
        lambda: testkit.condition(testkit.read_pod(api, namespace, "gated"), "PodScheduled"),
        30,
        what="the scheduler's verdict on the pod",
    )
    assert scheduled.status == "False"
    assert "connection refused" in scheduled.message


def test_deployment_pods_are_created_by_the_controller_manager_and_run(
    api: client.ApiClient, namespace: str, gpu_nodes: GpuNodes
) -> None:
    group = gpu_nodes("a100-40")
    template = testkit.Pod("x", namespace).on(group).label(app="web").manifest()
    body: Any = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": template["spec"]},
        },
    }
    client.AppsV1Api(api).create_namespaced_deployment(namespace, body)

    def three_running() -> list[Any]:
        found: Any = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=web")
        running = [p for p in found.items if p.status.phase == "Running"]
        return running if len(running) == 3 else []

    pods = testkit.wait_for(three_running, 60, what="3 Running pods of web")
    assert {p.metadata.owner_references[0].kind for p in pods} == {"ReplicaSet"}
    assert {p.spec.node_name for p in pods} == set(group.names)


def test_service_account_without_a_role_is_denied(
    api: client.ApiClient, kubeconfig: str, namespace: str, tmp_path: pathlib.Path
) -> None:
    core = client.CoreV1Api(api)
    account: Any = {"metadata": {"name": "nobody"}}
    core.create_namespaced_service_account(namespace, account)
    # A kubeconfig whose user is a TokenRequest token of the ServiceAccount.
    path = credentials.write_kubeconfig(
        pathlib.Path(kubeconfig), tmp_path / "nobody", namespace=namespace, service_account="nobody"
    )
    as_nobody = config.new_client_from_config(config_file=str(path))  # type: ignore[no-untyped-call]

    with as_nobody, pytest.raises(client.ApiException) as denied:
        client.CoreV1Api(as_nobody).list_namespaced_pod(namespace)

    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:nobody" in str(denied.value.body)
    core.list_namespaced_pod(namespace)  # the admin may


def test_pod_with_a_run_time_completes(
    api: client.ApiClient, namespace: str, gpu_nodes: GpuNodes, pod: PodBuilder
) -> None:
    group = gpu_nodes("h100")
    pod("job").gpus(1).fairpack().on(group).runs_for("2s").create(api)

    testkit.wait_for(testkit.phase_is(api, namespace, "job", "Running"), 30, what="the pod Running")
    testkit.wait_for(testkit.phase_is(api, namespace, "job", "Succeeded"), 30, what="the pod Succeeded")

    status = testkit.read_pod(api, namespace, "job").status.container_statuses[0]
    assert status.state.terminated.reason == "Completed"


def test_pod_without_a_run_time_keeps_running(
    api: client.ApiClient, namespace: str, gpu_nodes: GpuNodes, pod: PodBuilder
) -> None:
    group = gpu_nodes("h100")
    pod("server").gpus(1).on(group).create(api)
    pod("job").gpus(1).on(group).runs_for("1s").create(api)

    testkit.wait_for(testkit.phase_is(api, namespace, "job", "Succeeded"), 30, what="the timed pod done")

    assert testkit.read_pod(api, namespace, "server").status.phase == "Running"


def test_inventory_nodes_carry_gpu_operator_resources_labels_and_fairpack_annotations(
    api: client.ApiClient, gpu_nodes: GpuNodes
) -> None:
    group = gpu_nodes("a100-80-mig")

    node: Any = client.CoreV1Api(api).read_node(group.names[0])

    expected = {
        "nvidia.com/gpu": "5",
        "nvidia.com/mig-4g.40gb": "1",
        "nvidia.com/mig-3g.40gb": "2",
        "nvidia.com/mig-2g.20gb": "2",
        "nvidia.com/mig-1g.10gb": "7",
    }
    for source in (node.status.capacity, node.status.allocatable):
        assert {k: v for k, v in source.items() if k.startswith("nvidia.com/")} == expected
    assert node.metadata.labels[labels.GPU_PRODUCT_LABEL] == "NVIDIA-A100-SXM4-80GB"
    assert node.metadata.labels[labels.GPU_COUNT_LABEL] == "8"
    assert node.metadata.labels[labels.GPU_MEMORY_LABEL] == "81920"
    assert node.metadata.labels[labels.MIG_STRATEGY_LABEL] == "mixed"
    assert json.loads(node.metadata.annotations[labels.NVLINK_ISLANDS_ANNOTATION]) == [list(range(8))]
    layout = json.loads(node.metadata.annotations[labels.MIG_LAYOUT_ANNOTATION])
    assert sorted(layout) == ["0", "1", "2"]
    assert layout["0"] == [{"profile": "4g.40gb", "start": 0}, {"profile": "3g.40gb", "start": 4}]
    assert node.metadata.annotations["kwok.x-k8s.io/node"] == "fake"
    assert testkit.condition(node, "Ready").status == "True"


def test_mig_pod_runs_on_a_node_with_that_profile(
    api: client.ApiClient, namespace: str, gpu_nodes: GpuNodes, pod: PodBuilder
) -> None:
    gpu_nodes("h100")
    mig = gpu_nodes("a100-80-mig")
    pod("slice").mig("3g.40gb").fairpack().on(mig).create(api)
    pod("no-such").mig("3g.71gb").fairpack().on(mig).create(api)

    testkit.wait_for(testkit.phase_is(api, namespace, "slice", "Running"), 30, what="the MIG pod Running")
    unschedulable = testkit.wait_for(
        lambda: testkit.condition(testkit.read_pod(api, namespace, "no-such"), "PodScheduled"),
        30,
        what="the H200 MIG pod judged",
    )
    assert unschedulable.reason == "Unschedulable"
