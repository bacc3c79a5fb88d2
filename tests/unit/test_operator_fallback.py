"""The fallback controller's pure steps: which pods are stuck, what it may touch, when a plan pays."""

from __future__ import annotations

from typing import Any

import pytest

from fairpack.operator import admission, fallback
from fairpack.solver import labels, packing
from fairpack.solver.packing import instance as inst


def pending(
    name: str,
    *,
    scheduler: str = labels.SCHEDULER_NAME,
    namespace: str = "ns",
    since: str = "2027-01-15T08:00:00Z",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "annotations": annotations or {},
        },
        "spec": {"schedulerName": scheduler},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "lastTransitionTime": since,
                }
            ],
        },
    }


@pytest.mark.parametrize(
    ("pod", "is_stuck"),
    [
        pytest.param(pending("p"), True, id="ours-long-enough"),
        pytest.param(pending("p", since="2027-01-15T08:00:10Z"), False, id="too-recent"),
        pytest.param(pending("p", scheduler="default-scheduler"), False, id="other-scheduler"),
        pytest.param(pending("p", namespace="kube-system"), False, id="kube-system"),
        pytest.param(
            pending("p", annotations={labels.PLANNED_AT_ANNOTATION: "2027-01-15T08:00:20Z"}),
            False,
            id="fresh-plan",
        ),
        pytest.param(
            pending("p", annotations={labels.PLANNED_AT_ANNOTATION: "2027-01-15T07:00:00Z"}),
            True,
            id="stale-plan",
        ),
    ],
)
def test_only_our_pods_unschedulable_past_the_delay_are_stuck(pod: dict[str, Any], is_stuck: bool) -> None:
    now = admission.seconds("2027-01-15T08:00:30Z") or 0.0
    assert (fallback.stuck([pod], now=now, delay_s=30.0, freshness_s=30.0) == [pod]) is is_stuck


def cluster() -> inst.Instance:
    """One 4-core node full with a low-priority pod; a high-priority 4-core pod pending."""
    return inst.Instance(
        resources=("cpu",),
        nodes=(inst.PackNode("n0", (4000,)),),
        pods=(
            inst.PackPod("ns/low", 0, (4000,), frozenset({0}), node=0, evictable=True),
            inst.PackPod("ns/high", 2000, (4000,), frozenset({0})),
        ),
    )


def test_a_plan_that_evicts_a_low_priority_pod_places_the_high_priority_one() -> None:
    plan = packing.solve(cluster(), settings=packing.Settings(window_s=2.0, max_evictions=1))
    assert fallback.high_priority_placed(plan, 1000) == (0, 1)
    assert fallback.displaced(plan) == ["ns/low"]
    assert fallback.pinned(plan, ["ns/high"]) == {"ns/high": "n0"}


def test_pods_that_are_not_ours_are_never_displaced() -> None:
    protected = fallback.protect(cluster(), ours={"ns/high"})
    plan = packing.solve(protected, settings=packing.Settings(window_s=2.0, max_evictions=1))
    assert fallback.displaced(plan) == []
    assert fallback.high_priority_placed(plan, 1000) == (0, 0)
