"""The CP-SAT fallback on the real control plane: a high-priority pod kube-scheduler leaves pending
(neither node has room, preemption cannot help between equal priorities) runs after the
fallback moves one pod, the minimum, through the Eviction API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fairpack_dev.operator_fixtures import Kube, kube, ns, run_operator
from fairpack_dev.testkit import Pod, wait_for

from fairpack.solver import labels

pytestmark = pytest.mark.cluster
__all__ = ["kube", "ns", "run_operator"]


def running_node(kube: Kube, ns: str, name: str) -> str | None:
    pod = kube.get("v1", "Pod", name, ns) or {}
    if (pod.get("status") or {}).get("phase") == "Running":
        return str(pod["spec"]["nodeName"])
    return None


def test_fallback_moves_one_pod_so_a_pending_high_priority_pod_runs(
    kube: Kube, ns: str, gpu_nodes: Callable[..., Any], run_operator: Callable[..., Any]
) -> None:
    group = gpu_nodes("h100", count=2)  # 8 GPUs each, tainted for this test only
    priority = f"{ns}-high"
    kube.create(
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": priority},
            "value": 1000,
        }
    )
    try:

        def deployment(name: str, avoid: str | None = None) -> dict[str, Any]:
            pod = Pod(name, ns).fairpack().gpus(4).on(group).label(app="half").manifest()
            pod["spec"]["priorityClassName"] = priority
            if avoid:
                term = {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [avoid]}
                pod["spec"]["affinity"] = {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [term]}]
                        }
                    }
                }
            return {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "half", "name": name}},
                    "template": {"metadata": {"labels": {"app": "half", "name": name}}, "spec": pod["spec"]},
                },
            }

        def halves() -> dict[str, str]:
            pods = kube.list("v1", "Pod", ns, "app=half")
            return {
                p["metadata"]["uid"]: p["spec"].get("nodeName", "")
                for p in pods
                if (p.get("status") or {}).get("phase") == "Running"
            }

        def running(count: int) -> dict[str, str]:
            found = halves()
            return found if len(found) == count else {}

        # One 4-GPU pod per node: the second avoids the first's node (the default scoring does
        # not look at GPUs, so left alone both would share a node).
        kube.create(deployment("half-a"))
        first = wait_for(lambda: running(1), 60, what="the first 4-GPU pod running")
        kube.create(deployment("half-b", avoid=next(iter(first.values()))))
        before = wait_for(lambda: running(2), 60, what="both 4-GPU pods running")
        assert len(set(before.values())) == 2

        big = Pod("big", ns).fairpack().gpus(8).on(group).manifest()
        big["spec"]["priorityClassName"] = priority
        kube.create(big)

        def unschedulable() -> bool:
            conds = ((kube.get("v1", "Pod", "big", ns) or {}).get("status") or {}).get("conditions") or ()
            return any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conds)

        wait_for(unschedulable, 60, what="kube-scheduler to leave the 8-GPU pod Unschedulable")

        run_operator(
            FAIRPACK_NAMESPACE=ns,
            FAIRPACK_FALLBACK_PENDING_DELAY_S="3",
            FAIRPACK_FALLBACK_INTERVAL_S="2",
            FAIRPACK_FALLBACK_SOLVER_WINDOW_S="3",
            FAIRPACK_FALLBACK_MAX_EVICTIONS="2",
        )
        node = wait_for(lambda: running_node(kube, ns, "big"), 120, what="the 8-GPU pod running")

        plans = (kube.get("v1", "ConfigMap", "fairpack-fallback-plans", ns) or {}).get("data") or {}
        executed = [p for p in map(json.loads, plans.values()) if p["outcome"] == "executed"]
        assert len(executed) == 1, plans
        plan = executed[0]
        assert plan["high_priority_placed"] == {"before": 2, "after": 3}
        assert plan["pins"] == {f"{ns}/big": node}
        assert len(plan["evictions"]) == 1  # one move: the fewest that can make room
        pinned = (kube.get("v1", "Pod", "big", ns) or {})["metadata"]["annotations"]
        assert pinned[labels.PLANNED_NODE_ANNOTATION] == node
        # Exactly the promised pod was evicted; its Deployment's replacement runs on the other node.
        after = wait_for(lambda: running(2), 60, what="the moved pod's replacement")
        assert len(set(before) - set(after)) == 1
        assert node not in after.values()
        events = [e for e in kube.list("v1", "Event", ns) if e.get("reason") == "FallbackPlan"]
        assert events
    finally:
        kube.delete("scheduling.k8s.io/v1", "PriorityClass", priority)
