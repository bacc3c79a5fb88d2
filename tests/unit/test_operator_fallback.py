"""The fallback controller's pure steps: which pods are stuck, what it may touch, when a plan pays."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fairpack.operator import admission, fallback
from fairpack.operator.settings import FallbackSettings
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


def owned(kind: str, api_version: str, *, controller: bool = True) -> dict[str, Any]:
    ref = {"apiVersion": api_version, "kind": kind, "name": "o", "uid": "u", "controller": controller}
    return {"metadata": {"name": "p", "namespace": "ns", "ownerReferences": [ref]}}


@pytest.mark.parametrize(
    ("pod", "moves"),
    [
        pytest.param(owned("ReplicaSet", "apps/v1"), True, id="replicaset"),
        pytest.param(owned("StatefulSet", "apps/v1"), True, id="statefulset"),
        pytest.param(owned("Job", "batch/v1"), True, id="job"),
        pytest.param(owned("ReplicationController", "v1"), True, id="replicationcontroller"),
        pytest.param(owned("SparkJob", "fairpack.io/v1alpha1"), False, id="sparkjob"),
        pytest.param(owned("SparkApplication", "sparkoperator.k8s.io/v1beta2"), False, id="sparkapplication"),
        pytest.param(owned("DaemonSet", "apps/v1"), False, id="daemonset"),
        pytest.param(owned("ReplicaSet", "apps/v1", controller=False), False, id="not-the-controller"),
        pytest.param({"metadata": {"name": "p", "namespace": "ns"}}, False, id="bare"),
    ],
)
def test_only_pods_whose_owner_recreates_them_count_as_movable(pod: dict[str, Any], moves: bool) -> None:
    assert fallback.recreated(pod) is moves


def two_nodes() -> inst.Instance:
    """Two 4-core nodes, each with a 2-core low-priority pod; a 4-core high-priority pod pending:
    moving one low pod next to the other makes room."""
    return inst.Instance(
        resources=("cpu",),
        nodes=(inst.PackNode("n0", (4000,)), inst.PackNode("n1", (4000,))),
        pods=(
            inst.PackPod("ns/a", 0, (2000,), frozenset({0, 1}), node=0, movable=True, evictable=True),
            inst.PackPod("ns/b", 0, (2000,), frozenset({0, 1}), node=1, movable=True, evictable=True),
            inst.PackPod("ns/high", 2000, (4000,), frozenset({0, 1})),
        ),
    )


def solve(instance: inst.Instance) -> packing.Plan:
    return packing.solve(instance, settings=packing.Settings(window_s=2.0, max_evictions=2))


def test_a_pod_whose_owner_does_not_recreate_it_is_evicted_not_moved() -> None:
    ours = {"ns/a", "ns/b", "ns/high"}
    moving = solve(fallback.protect(two_nodes(), ours, movable=ours))
    assert len(moving.moves) == 1
    assert not moving.evictions
    evicting = solve(fallback.protect(two_nodes(), ours, movable={"ns/high"}))
    assert not evicting.moves
    assert len(evicting.evictions) == 1
    assert fallback.high_priority_placed(evicting, 1000) == (0, 1)


def pod_dict(name: str, labels_: dict[str, str], namespace: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels_}}


def pdb(name: str, selector: dict[str, Any] | None, allowed: int, *, counted: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "generation": 2},
        "spec": {"selector": selector},
        "status": {"disruptionsAllowed": allowed, "observedGeneration": 2 if counted else 1},
    }


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        pytest.param({"matchLabels": {"app": "x"}}, {"ns/a"}, id="match-labels"),
        pytest.param({}, {"ns/a", "ns/b", "ns/c"}, id="empty-selects-all"),
        pytest.param(None, set(), id="null-selects-none"),
        pytest.param(
            {"matchExpressions": [{"key": "app", "operator": "In", "values": ["x", "y"]}]},
            {"ns/a", "ns/b"},
            id="in",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x"]}]},
            {"ns/b", "ns/c"},
            id="not-in",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {"ns/a", "ns/b"}, id="exists"
        ),
        pytest.param(
            {"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {"ns/c"}, id="does-not-exist"
        ),
    ],
)
def test_a_budget_covers_the_pods_its_selector_selects_in_its_namespace(
    selector: dict[str, Any] | None, selected: set[str]
) -> None:
    pods = [
        pod_dict("a", {"app": "x"}),
        pod_dict("b", {"app": "y"}),
        pod_dict("c", {}),
        pod_dict("a", {"app": "x"}, namespace="other"),
    ]
    (budget,) = fallback.budgets([pdb("b", selector, 1)], pods)
    assert budget.pods == selected


def test_pods_of_a_spent_uncounted_or_overlapping_budget_are_held() -> None:
    pods = [pod_dict("a", {"app": "a"}), pod_dict("b", {"app": "b"}), pod_dict("c", {"app": "c"})]
    found = fallback.budgets(
        [
            pdb("spent", {"matchLabels": {"app": "a"}}, 0),
            pdb("uncounted", {"matchLabels": {"app": "b"}}, 3, counted=False),
            pdb("c1", {"matchLabels": {"app": "c"}}, 1),
            pdb("c2", {"matchExpressions": [{"key": "app", "operator": "Exists"}]}, 5),
        ],
        pods,
    )
    # c is covered by two budgets: the Eviction API refuses such pods.
    assert fallback.held(found) == {"ns/a", "ns/b", "ns/c"}
    assert fallback.held(found[2:3]) == set()


def test_a_plan_that_overdraws_a_budget_is_solved_again_without_its_pods() -> None:
    """Two 2-core low pods on each of two 4-core nodes; a 4-core high pod pending needs both pods
    of one node evicted."""
    instance = inst.Instance(
        resources=("cpu",),
        nodes=(inst.PackNode("n0", (4000,)), inst.PackNode("n1", (4000,))),
        pods=(
            *(
                inst.PackPod(f"ns/l{i}", 0, (2000,), frozenset({0, 1}), node=i // 2, evictable=True)
                for i in range(4)
            ),
            inst.PackPod("ns/high", 2000, (4000,), frozenset({0, 1})),
        ),
    )
    settings = FallbackSettings(solver_window_s=2.0, max_evictions=4)
    free = fallback.plan_within_budgets(instance, [], settings)
    assert len(fallback.displaced(free)) == 2
    # One budget per node: n0's allows one disruption, n1's two: only n1 can make room.
    per_node = [
        fallback.Budget("ns/n0", 1, frozenset({"ns/l0", "ns/l1"})),
        fallback.Budget("ns/n1", 2, frozenset({"ns/l2", "ns/l3"})),
    ]
    within = fallback.plan_within_budgets(instance, per_node, settings)
    assert sorted(fallback.displaced(within)) == ["ns/l2", "ns/l3"]
    assert within.placements["ns/high"] == "n1"
    # One budget over all four allowing one disruption: no plan places the high pod.
    overall = [fallback.Budget("ns/all", 1, frozenset(f"ns/l{i}" for i in range(4)))]
    kept = fallback.plan_within_budgets(instance, overall, settings)
    assert fallback.displaced(kept) == []
    assert fallback.high_priority_placed(kept, 1000) == (0, 0)


def test_the_rounds_of_one_plan_share_one_solver_window(monkeypatch: pytest.MonkeyPatch) -> None:
    instance = inst.Instance(
        resources=("cpu",),
        nodes=(inst.PackNode("n0", (4000,)),),
        pods=(
            *(inst.PackPod(f"ns/l{i}", 0, (2000,), frozenset({0}), node=0, evictable=True) for i in range(2)),
            inst.PackPod("ns/high", 2000, (4000,), frozenset({0})),
        ),
    )
    windows: list[float] = []
    solve = packing.solve

    def spy(instance: inst.Instance, *, settings: packing.Settings) -> packing.Plan:
        windows.append(settings.window_s)
        return solve(instance, settings=settings)

    monkeypatch.setattr(packing, "solve", spy)
    budget = [fallback.Budget("ns/all", 1, frozenset({"ns/l0", "ns/l1"}))]
    fallback.plan_within_budgets(instance, budget, FallbackSettings(solver_window_s=0.5, max_evictions=4))
    assert len(windows) == 2  # the first plan overdraws the budget, the second keeps its pods
    # The second round gets what the first left of the window, not a window of its own.
    assert windows[0] <= 0.5
    assert windows[1] < windows[0], windows


def test_a_recorded_plan_is_bounded_in_bytes_and_keeps_the_counts() -> None:
    many = [f"namespace-{i:05d}/pod-with-a-fairly-long-name-{i:05d}" for i in range(5000)]
    plan = packing.solve(cluster(), settings=packing.Settings(window_s=2.0, max_evictions=1))
    recorded = fallback.entry(
        now=0.0,
        outcome="executed",
        plan=plan,
        counts=(0, 1),
        pending=many,
        targets=dict.fromkeys(many, "node-0"),
        victims=many[:300],
        execution=fallback.Execution("blocked", "x" * 5000, tuple(many[:100])),
    )
    assert (recorded["pending_count"], recorded["pins_count"], recorded["evictions_count"]) == (
        5000,
        5000,
        300,
    )
    assert recorded["pending"] == many[: fallback.RECORD_LIST_LIMIT]
    assert len(recorded["pins"]) == fallback.RECORD_LIST_LIMIT
    assert len(json.dumps(recorded)) < 16 * 1024


def test_the_record_keeps_the_newest_plans_that_fit_its_byte_budget() -> None:
    data = {f"plan-{t}": "x" * 100 for t in range(1000, 1050)}
    assert list(fallback.trimmed(data, history=10, max_bytes=10**6)) == [
        f"plan-{t}" for t in range(1049, 1039, -1)
    ]
    # 109 bytes each: three fit in 400.
    assert list(fallback.trimmed(data, history=10, max_bytes=400)) == ["plan-1049", "plan-1048", "plan-1047"]
    # The newest plan is kept even when it alone is too big.
    assert list(fallback.trimmed(data, history=10, max_bytes=10)) == ["plan-1049"]


class FakeApi:
    """Records pins and evictions; refuses the evictions of the pods in ``refuse`` (dry-run or not)."""

    def __init__(self, refuse: set[str], *, only_for_real: bool = False) -> None:
        self.refuse = refuse
        self.only_for_real = only_for_real
        self.pins: dict[str, str | None] = {}
        self.evicted: list[str] = []

    def evict(self, pod: dict[str, Any], *, dry_run: bool = False) -> str | None:
        name = fallback.key(pod)
        if name in self.refuse and not (dry_run and self.only_for_real):
            return "429 Too Many Requests"
        if not dry_run:
            self.evicted.append(name)
        return None

    def pin(self, pod: dict[str, Any], node: str | None, now: float) -> None:
        self.pins[fallback.key(pod)] = node


@pytest.mark.parametrize(
    ("api", "outcome", "pins", "evicted"),
    [
        pytest.param(FakeApi(set()), "executed", {"ns/high": "n0"}, ["ns/a", "ns/b"], id="all-evicted"),
        pytest.param(FakeApi({"ns/b"}), "blocked", {}, [], id="refused-in-dry-run-touches-nothing"),
        pytest.param(
            FakeApi({"ns/b"}, only_for_real=True),
            "blocked",
            {"ns/high": None},
            ["ns/a"],
            id="refused-for-real-removes-the-pins",
        ),
    ],
)
def test_an_eviction_refused_blocks_the_plan_and_leaves_no_pins(
    monkeypatch: pytest.MonkeyPatch, api: FakeApi, outcome: str, pins: dict[str, Any], evicted: list[str]
) -> None:
    monkeypatch.setattr(fallback, "evict", api.evict)
    monkeypatch.setattr(fallback, "pin", api.pin)
    pods = {name: {"metadata": {"name": name[3:], "namespace": "ns"}} for name in ("ns/a", "ns/b", "ns/high")}
    done = fallback.execute({"ns/high": "n0"}, ["ns/a", "ns/b"], pods, 0.0)
    assert done.outcome == outcome
    assert api.pins == pins
    assert api.evicted == evicted
    assert list(done.evicted) == evicted
    assert (done.refusal is None) is (outcome == "executed")
