"""The per-shape indexes answer exactly as judging every node afresh would, whatever changed.

Random sequences of cluster changes (pods bound and deleted, assumed placements, nodes removed
and re-added) interleaved with filter and prioritize calls; after each call the answer is
compared with the verdicts of every node judged from scratch.
"""

from __future__ import annotations

from typing import Any

from fairpack_dev import inventory
from hypothesis import given, settings
from hypothesis import strategies as st

from fairpack.extender import index, verbs
from fairpack.extender import view as cv
from fairpack.solver import kube, labels, model

SMALL = inventory.load(inventory.SMALL)
NODES = [
    SMALL.pool(pool).node(f"{pool}-{i}") for pool in ("a100-40", "a100-80-mig", "h200-mig") for i in (0, 1)
]
NAMES = [n["metadata"]["name"] for n in NODES]


def pod(name: str, limits: dict[str, str], node_name: str | None = None, **notes: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schedulerName": labels.SCHEDULER_NAME,
        "containers": [{"name": "c", "resources": {"limits": {"cpu": "1", **limits}}}],
    }
    if node_name:
        spec["nodeName"] = node_name
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "uid": name, "annotations": notes},
        "spec": spec,
        "status": {"phase": "Running" if node_name else "Pending"},
    }


LIMITS = [
    {labels.GPU_RESOURCE: "1"},
    {labels.GPU_RESOURCE: "4"},
    {labels.MIG_RESOURCE_PREFIX + "1g.10gb": "1"},
    {labels.MIG_RESOURCE_PREFIX + "3g.40gb": "1"},
]
SHAPES = [
    pod("one", LIMITS[0]),
    pod("four", LIMITS[1], **{labels.REQUIRE_NVLINK_ANNOTATION: "true"}),
    pod("mig1g", LIMITS[2]),
    pod("mig3g", LIMITS[3]),
]

operations = st.one_of(
    st.tuples(st.just("bind"), st.integers(0, 3), st.sampled_from(NAMES)),
    st.tuples(st.just("delete-pod"), st.integers(0, 40), st.just("")),
    st.tuples(st.just("drop-node"), st.integers(0, 0), st.sampled_from(NAMES)),
    st.tuples(st.just("add-node"), st.integers(0, 0), st.sampled_from(NAMES)),
    st.tuples(st.just("filter"), st.integers(0, 3), st.just("")),
)


def fresh_truth(view: cv.ClusterView, the_pod: model.Pod) -> dict[str, index.Verdict]:
    """Every node judged now from a copy of its state: no index, no memo, the view untouched."""
    return {
        name: verbs.judge(cv.NodeState(state.node, dict(state.pods), dict(state.assumed)), the_pod)
        for name, state in view.nodes.items()
    }


@settings(max_examples=60, deadline=None)
@given(st.lists(operations, min_size=1, max_size=40))
def test_filter_and_prioritize_match_judging_every_node_afresh(ops: list[tuple[str, int, str]]) -> None:
    view = cv.ClusterView()
    view.replace(NODES, [])
    bound: list[str] = []
    for step, (kind, number, node_name) in enumerate(ops):
        if kind == "bind" and node_name in view.nodes:
            the_pod = kube.pod_from_dict(pod(f"b{step}", LIMITS[number]))
            with view.lock:
                placement = verbs.choose(view.nodes[node_name], the_pod)
            if placement is not None:
                # As bind does: hold the devices, then the watch shows the pod bound.
                view.assume(the_pod, placement)
                view.upsert_pod(pod(f"b{step}", LIMITS[number], node_name))
                bound.append(f"b{step}")
        elif kind == "delete-pod" and bound:
            view.delete_pod(bound.pop(number % len(bound)))
        elif kind == "drop-node":
            view.delete_node(node_name)
        elif kind == "add-node":
            view.upsert_node(NODES[NAMES.index(node_name)])
        elif kind == "filter":
            check(view, kube.pod_from_dict(SHAPES[number]))
    for shape in SHAPES:
        check(view, kube.pod_from_dict(shape))


def check(view: cv.ClusterView, the_pod: model.Pod) -> None:
    found = verbs.filter_nodes(view, the_pod, NAMES, plan_freshness_s=60.0)
    groups = verbs.prioritize(view, the_pod, found.passed, strategy="fgd")
    scores = {name: score for score, names in groups.items() for name in names}
    assert len(scores) == sum(len(names) for names in groups.values()), "a node scored twice"
    truth = fresh_truth(view, the_pod)
    assert sorted(found.passed) == sorted(n for n, v in truth.items() if v.placement is not None)
    assert found.unresolvable == {
        n: v.reason for n, v in truth.items() if v.placement is None and v.unresolvable
    }
    assert {n: r for n, r in found.failed.items() if n in truth} == {
        n: v.reason for n, v in truth.items() if v.placement is None and not v.unresolvable
    }
    assert set(found.failed) - set(truth) == set(NAMES) - set(view.nodes)
    raw = {n: verbs.RAW_SCORES["fgd"](truth[n]) for n in found.passed}
    if len(set(raw.values())) <= 1:
        assert scores == {}
        return
    low, high = min(raw.values()), max(raw.values())
    assert all(scores[n] == verbs.MAX_SCORE for n in raw if raw[n] == high)
    assert all(n not in scores for n in raw if raw[n] == low)
    ranked = sorted(raw, key=raw.__getitem__)
    assert [scores.get(n, 0) for n in ranked] == sorted(scores.get(n, 0) for n in ranked)


def test_the_least_recently_used_shape_is_dropped_and_no_longer_marked_dirty() -> None:
    view = cv.ClusterView()
    view.replace(NODES, [])
    judge = lambda state: index.Verdict(None, "never")  # noqa: E731
    first = view.indexes.get("first", view.nodes, judge)
    oldest = view.indexes.get(0, view.nodes, judge)
    for shape in range(1, index.MAX_INDEXES - 1):
        view.indexes.get(shape, view.nodes, judge)
    view.indexes.get("first", view.nodes, judge)  # used again: now the most recent
    view.indexes.get("one more", view.nodes, judge)  # drops shape 0, the least recent
    assert len(view.sinks) == index.MAX_INDEXES
    assert any(sink is first.dirty for sink in view.sinks)
    assert not any(sink is oldest.dirty for sink in view.sinks)
    assert view.indexes.get("first", view.nodes, judge) is first
    assert view.indexes.get(0, view.nodes, judge) is not oldest  # rebuilt on demand
