"""The extender's cluster view takes in every change that matters, and only those."""

from __future__ import annotations

import copy
from typing import Any

from fairpack_dev import inventory

from fairpack.extender import view as cv
from fairpack.solver import labels

NODE = inventory.load(inventory.SMALL).pool("a100-40").node("gpu-0")


def gpu_pod(uid: str, *, node: str | None = None, gpus: str | None = None) -> dict[str, Any]:
    notes = {labels.GPU_INDICES_ANNOTATION: gpus} if gpus else {}
    spec: dict[str, Any] = {
        "containers": [{"name": "c", "resources": {"limits": {labels.GPU_RESOURCE: "1"}}}]
    }
    if node:
        spec["nodeName"] = node
    return {
        "metadata": {"name": uid, "namespace": "ns", "uid": uid, "annotations": notes},
        "spec": spec,
        "status": {"phase": "Running" if node else "Pending", "conditions": []},
    }


def test_each_pod_update_that_changes_its_placement_or_devices_is_taken_in() -> None:
    view = cv.ClusterView()
    view.replace([NODE], [gpu_pod("p")])
    assert view.nodes["gpu-0"].free_gpus == frozenset(range(8))
    view.upsert_pod(gpu_pod("p", node="gpu-0", gpus="3"))  # bound, with its device
    assert view.nodes["gpu-0"].free_gpus == frozenset(range(8)) - {3}
    status_only = gpu_pod("p", node="gpu-0", gpus="3")
    status_only["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    view.upsert_pod(status_only)
    assert view.nodes["gpu-0"].free_gpus == frozenset(range(8)) - {3}
    view.upsert_pod(gpu_pod("p", node="gpu-0", gpus="5"))  # its devices changed
    assert view.nodes["gpu-0"].free_gpus == frozenset(range(8)) - {5}
    finished = gpu_pod("p", node="gpu-0", gpus="5")
    finished["status"]["phase"] = "Succeeded"
    view.upsert_pod(finished)
    assert view.nodes["gpu-0"].free_gpus == frozenset(range(8))


def test_a_heartbeat_keeps_the_node_and_a_new_allocatable_replaces_it() -> None:
    view = cv.ClusterView()
    view.replace([NODE], [])
    before = view.nodes["gpu-0"].node
    heartbeat = copy.deepcopy(NODE)
    heartbeat["status"]["conditions"] = [{"type": "Ready", "status": "True", "lastHeartbeatTime": "now"}]
    view.upsert_node(heartbeat)
    assert view.nodes["gpu-0"].node is before
    shrunk = copy.deepcopy(NODE)
    shrunk["status"]["allocatable"][labels.GPU_RESOURCE] = "4"
    view.upsert_node(shrunk)
    assert view.nodes["gpu-0"].node.allocatable[labels.GPU_RESOURCE] == 4
    view.delete_node("gpu-0")
    view.upsert_node(shrunk)  # back, as it was: read again, not skipped
    assert view.nodes["gpu-0"].node.allocatable[labels.GPU_RESOURCE] == 4
