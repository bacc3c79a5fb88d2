"""The CP-SAT fallback on the real control plane. The scenario: two 4-GPU pods, one on each of two
8-GPU nodes, and a high-priority 8-GPU pod kube-scheduler leaves pending (neither node has room,
preemption cannot help between equal priorities). The fallback moves one pod, the minimum, through
the Eviction API; in dry-run it only records; a PodDisruptionBudget that allows no disruption keeps
it from planning any eviction; a standby replica of a peered pair does nothing until it leads;
and pods of another scheduler are never moved."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fairpack_dev.operator_fixtures import Kube, kube, ns, priority_class, run_operator, single_replica
from fairpack_dev.testkit import Pod, wait_for

from fairpack.solver import labels

pytestmark = pytest.mark.cluster
__all__ = ["kube", "ns", "run_operator"]

FAST = {
    "FAIRPACK_FALLBACK_PENDING_DELAY_S": "3",
    "FAIRPACK_FALLBACK_INTERVAL_S": "2",
    "FAIRPACK_FALLBACK_SOLVER_WINDOW_S": "3",
    "FAIRPACK_FALLBACK_MAX_EVICTIONS": "2",
}
"""Fallback settings that plan within seconds."""


@dataclass
class Scenario:
    kube: Kube
    ns: str
    before: dict[str, str]
    """uid -> node of the two running 4-GPU pods."""

    def halves(self) -> dict[str, str]:
        pods = self.kube.list("v1", "Pod", self.ns, "app=half")
        return {
            p["metadata"]["uid"]: p["spec"].get("nodeName", "")
            for p in pods
            if (p.get("status") or {}).get("phase") == "Running"
        }

    def running(self, count: int) -> dict[str, str]:
        found = self.halves()
        return found if len(found) == count else {}

    def big(self) -> dict[str, Any]:
        return self.kube.get("v1", "Pod", "big", self.ns) or {}

    def big_node(self) -> str | None:
        pod = self.big()
        return str(pod["spec"]["nodeName"]) if (pod.get("status") or {}).get("phase") == "Running" else None

    def plans(self) -> list[dict[str, Any]]:
        found = self.kube.get("v1", "ConfigMap", "fairpack-fallback-plans", self.ns) or {}
        return [json.loads(v) for _, v in sorted((found.get("data") or {}).items())]

    def assert_untouched(self) -> None:
        """Nothing was evicted and the pending pod carries no pin."""
        assert self.halves() == self.before
        big = self.big()
        assert labels.PLANNED_NODE_ANNOTATION not in (big["metadata"].get("annotations") or {})
        assert not (big.get("status") or {}).get("nominatedNodeName")
        assert self.big_node() is None


def assert_not_planned_again(scenario: Scenario) -> None:
    """Five passes later (interval 2 s) nothing was evicted or pinned, and a plan that did not act
    was not made again for the same situation: at most one more record, for a change while the
    cluster settled (without the guard every pass records one)."""
    time.sleep(10)
    assert len(scenario.plans()) <= 2, scenario.plans()
    scenario.assert_untouched()


@pytest.fixture
def scenario(
    request: pytest.FixtureRequest, kube: Kube, ns: str, gpu_nodes: Callable[..., Any]
) -> Iterator[Scenario]:
    """The scenario; the 4-GPU pods use the scheduler given as the fixture's param (fairpack's)."""
    scheduler = getattr(request, "param", labels.SCHEDULER_NAME)
    group = gpu_nodes("h100", count=2)  # 8 GPUs each, tainted for this test only
    priority = f"{ns}-high"
    kube.create(priority_class(priority, 1000))

    def deployment(name: str, avoid: str | None = None) -> dict[str, Any]:
        pod = Pod(name, ns).fairpack().gpus(4).on(group).label(app="half").manifest()
        pod["spec"]["priorityClassName"] = priority
        pod["spec"]["schedulerName"] = scheduler
        return single_replica(pod, app="half", avoid=avoid)

    try:
        found = Scenario(kube, ns, {})
        # One 4-GPU pod per node: the second avoids the first's node (the default scoring does
        # not look at GPUs, so left alone both would share a node).
        kube.create(deployment("half-a"))
        first = wait_for(lambda: found.running(1), 60, what="the first 4-GPU pod running")
        kube.create(deployment("half-b", avoid=next(iter(first.values()))))
        found.before = wait_for(lambda: found.running(2), 60, what="both 4-GPU pods running")
        assert len(set(found.before.values())) == 2

        big = Pod("big", ns).fairpack().gpus(8).on(group).manifest()
        big["spec"]["priorityClassName"] = priority
        kube.create(big)

        def unschedulable() -> bool:
            conds = (found.big().get("status") or {}).get("conditions") or ()
            return any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conds)

        wait_for(unschedulable, 60, what="kube-scheduler to leave the 8-GPU pod Unschedulable")
        yield found
    finally:
        kube.delete("scheduling.k8s.io/v1", "PriorityClass", priority)


def assert_moved_one_pod(scenario: Scenario) -> None:
    """The plan executed once, placed the 8-GPU pod where it runs, and moved exactly one pod."""
    node = wait_for(scenario.big_node, 120, what="the 8-GPU pod running")
    # The record is written after the evictions, so the pod may run before the plan is recorded.
    executed = wait_for(
        lambda: [p for p in scenario.plans() if p["outcome"] == "executed"], 30, what="the executed plan"
    )
    assert len(executed) == 1, scenario.plans()
    plan = executed[0]
    assert plan["high_priority_placed"] == {"before": 2, "after": 3}
    assert plan["pins"] == {f"{scenario.ns}/big": node}
    assert len(plan["evictions"]) == 1  # one move: the fewest that can make room
    assert plan["evictions_count"] == 1
    pinned = scenario.big()["metadata"]["annotations"]
    assert pinned[labels.PLANNED_NODE_ANNOTATION] == node
    # Exactly the promised pod was evicted; its Deployment's replacement runs on the other node.
    after = wait_for(lambda: scenario.running(2), 60, what="the moved pod's replacement")
    assert len(set(scenario.before) - set(after)) == 1
    assert node not in after.values()


def test_fallback_moves_one_pod_so_a_pending_high_priority_pod_runs(
    scenario: Scenario, run_operator: Callable[..., Any]
) -> None:
    run_operator(FAIRPACK_NAMESPACE=scenario.ns, **FAST)
    assert_moved_one_pod(scenario)
    events = [e for e in scenario.kube.list("v1", "Event", scenario.ns) if e.get("reason") == "FallbackPlan"]
    assert events


def test_in_dry_run_the_fallback_records_the_plan_and_touches_nothing(
    scenario: Scenario, run_operator: Callable[..., Any]
) -> None:
    run_operator(FAIRPACK_NAMESPACE=scenario.ns, FAIRPACK_FALLBACK_DRY_RUN="true", **FAST)
    plans = wait_for(scenario.plans, 60, what="a recorded plan")
    assert {p["outcome"] for p in plans} == {"dry_run"}
    assert plans[0]["high_priority_placed"] == {"before": 2, "after": 3}
    assert plans[0]["evictions_count"] == 1
    assert list(plans[0]["pins"]) == [f"{scenario.ns}/big"]
    assert_not_planned_again(scenario)


def test_a_disruption_budget_that_allows_none_keeps_the_fallback_from_evicting(
    scenario: Scenario, run_operator: Callable[..., Any]
) -> None:
    kube, ns = scenario.kube, scenario.ns
    kube.create(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "halves", "namespace": ns},
            "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "half"}}},
        }
    )

    def counted() -> bool:
        pdb = kube.get("policy/v1", "PodDisruptionBudget", "halves", ns) or {}
        status = pdb.get("status") or {}
        return (
            status.get("observedGeneration") == pdb["metadata"]["generation"]
            and status.get("currentHealthy") == 2
        )

    wait_for(counted, 60, what="the disruption controller to count the budget")
    run_operator(FAIRPACK_NAMESPACE=ns, **FAST)
    plans = wait_for(scenario.plans, 60, what="a recorded plan")
    # The budget's pods stay put: no plan places more, so none is executed (nor blocked halfway).
    assert plans[0]["outcome"] == "no_gain", plans
    assert plans[0]["high_priority_placed"] == {"before": 2, "after": 2}
    assert plans[0]["evictions"] == []
    assert_not_planned_again(scenario)
    # Once the budget allows one disruption, the plan goes ahead.
    kube.patch("policy/v1", "PodDisruptionBudget", "halves", {"spec": {"maxUnavailable": 1}}, namespace=ns)
    assert_moved_one_pod(scenario)


def test_a_standby_replica_neither_plans_nor_evicts_until_it_leads(
    scenario: Scenario, run_operator: Callable[..., Any]
) -> None:
    kube, ns = scenario.kube, scenario.ns
    peering = f"fairpack-{ns}"
    kube.create({"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": peering}})
    try:
        # The active replica runs without the fallback: any plan would be the standby's.
        active = run_operator(
            FAIRPACK_NAMESPACE=ns,
            FAIRPACK_PEERING=peering,
            FAIRPACK_PEERING_PRIORITY="100",
            FAIRPACK_FALLBACK_ENABLED="false",
        )
        wait_for(
            lambda: (kube.get("kopf.dev/v1", "ClusterKopfPeering", peering) or {}).get("status"),
            60,
            what="the active replica in the peering object",
        )
        standby = run_operator(
            FAIRPACK_NAMESPACE=ns, FAIRPACK_PEERING=peering, FAIRPACK_PEERING_PRIORITY="10", **FAST
        )

        def standby_listed() -> bool:
            peers = (kube.get("kopf.dev/v1", "ClusterKopfPeering", peering) or {}).get("status") or {}
            return len(peers) >= 2

        wait_for(standby_listed, 60, what="the standby in the peering object")
        # The 8-GPU pod has been stuck past the 3 s delay all along; passes are 2 s apart.
        time.sleep(12)
        assert scenario.plans() == []
        scenario.assert_untouched()
        assert "fallback plan" not in standby.log.read_text()
        active.stop()
        wait_for(lambda: "Resuming operations" in standby.log.read_text(), 90, what="the standby to resume")
        assert_moved_one_pod(scenario)
    finally:
        kube.delete("kopf.dev/v1", "ClusterKopfPeering", peering)


@pytest.mark.parametrize("scenario", ["default-scheduler"], indirect=True)
def test_pods_of_another_scheduler_are_never_moved(
    scenario: Scenario, run_operator: Callable[..., Any]
) -> None:
    run_operator(FAIRPACK_NAMESPACE=scenario.ns, **FAST)
    plans = wait_for(scenario.plans, 60, what="a recorded plan")
    assert plans[0]["outcome"] == "no_gain", plans
    assert plans[0]["evictions"] == []
    assert_not_planned_again(scenario)
