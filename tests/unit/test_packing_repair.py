"""The one-move repair of the default scheduler's placement (solver/packing/repair.py)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairpack.solver import packing
from fairpack.solver.packing import greedy, repair, search, validate
from fairpack.solver.packing import instance as inst

RESOURCES = ("cpu", "memory", "pods")
EVERY = frozenset({0, 1, 2})
LATER = float("inf")


def pod(
    name: str,
    cpu: int,
    *,
    node: int | None = None,
    movable: bool = True,
    order: int = 0,
    eligible: frozenset[int] = EVERY,
) -> inst.PackPod:
    running = node is not None
    return inst.PackPod(
        f"ns/{name}",
        1,
        (cpu, cpu, 1),
        eligible,
        node=node,
        movable=running and movable,
        evictable=running and movable,
        order=order,
    )


def cluster(*pods: inst.PackPod, nodes: int = 3) -> inst.Instance:
    """Nodes of 1000 cpu and memory; each pod's eligible nodes cut to the ones that exist."""
    there = frozenset(range(nodes))
    pods = tuple(dataclasses.replace(p, eligible=p.eligible & there) for p in pods)
    return inst.Instance(
        RESOURCES, tuple(inst.PackNode(f"n{n}", (1000, 1000, 10)) for n in range(nodes)), pods
    )


def key(instance: inst.Instance, at: inst.Assignment) -> tuple[int, ...]:
    return validate.key(validate.score(instance, at))


def test_a_pod_that_fits_nowhere_is_placed_by_moving_one_pod_out_of_its_way() -> None:
    # 600 and 300 on two nodes: the 1000 pod fits on neither until the 300 joins the 600.
    c = cluster(pod("a", 600, node=0), pod("b", 300, node=1), pod("big", 1000, order=1), nodes=2)
    at = inst.Assignment.current(c)
    fixed = repair.improve(c, at, deadline=LATER)
    assert validate.problems(c, fixed) == []
    assert fixed.nodes[2] is not None
    assert key(c, fixed) > key(c, at)
    assert validate.score(c, fixed).moves == 1


def test_a_pod_the_plan_placed_itself_is_moved_before_a_running_one() -> None:
    # Room for "big" on n0 by moving running r, or on n1 by moving g, which was pending (no move).
    c = cluster(
        pod("r", 400, node=0),
        pod("g", 400, order=0),
        pod("t", 500, node=2, movable=False),
        pod("big", 1000, order=1),
    )
    at = inst.Assignment.of([0, 1, 2, None], [None] * 4)
    fixed = repair.improve(c, at, deadline=LATER)
    assert fixed.nodes == (0, 2, 2, 1)
    assert validate.score(c, fixed).moves == 0


def test_pods_that_may_not_move_stay_and_the_placement_comes_back_unchanged() -> None:
    c = cluster(
        pod("a", 600, node=0, movable=False), pod("b", 600, node=1, movable=False), pod("big", 1000), nodes=2
    )
    at = inst.Assignment.current(c)
    assert repair.improve(c, at, deadline=LATER) is at


def test_a_pod_is_only_moved_to_a_node_it_may_use() -> None:
    c = cluster(
        pod("a", 600, node=0, eligible=frozenset({0})),
        pod("b", 600, node=1, eligible=frozenset({1})),
        pod("big", 1000),
        nodes=2,
    )
    at = inst.Assignment.current(c)
    assert repair.improve(c, at, deadline=LATER) is at


def test_a_running_pod_greedy_evicted_is_not_placed_elsewhere_when_it_may_not_move() -> None:
    # Greedy preempts "low" (evictable, not movable) for "high", which may only use n0. n1 has
    # room for "low", but running there would move it.
    low = dataclasses.replace(pod("low", 600, node=0), priority=0, movable=False)
    high = dataclasses.replace(pod("high", 600, order=1, eligible=frozenset({0})), priority=10)
    c = cluster(low, high, nodes=2)
    default = greedy.schedule(c)
    assert default.nodes == (None, 0)
    assert repair.improve(c, default, deadline=LATER) is default


def test_nothing_is_tried_past_the_deadline() -> None:
    c = cluster(pod("a", 600, node=0), pod("b", 300, node=1), pod("big", 1000, order=1), nodes=2)
    at = inst.Assignment.current(c)
    assert repair.improve(c, at, deadline=time.monotonic() - 1) is at


def test_the_packer_returns_the_repair_when_cp_sat_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    c = cluster(pod("a", 600, node=0), pod("b", 300, node=1), pod("big", 1000, order=1), nodes=2)
    monkeypatch.setattr(search, "_stages", lambda *args, **kwargs: (None, []))
    plan = packing.solve(c, settings=packing.Settings(window_s=0.5, num_workers=1))
    assert plan.status is packing.Status.FEASIBLE
    assert plan.placements["ns/big"] == "n1"
    assert [(m.pod, m.source, m.target) for m in plan.moves] == [("ns/b", "n1", "n0")]


@st.composite
def free_and_requests(draw: st.DrawFn) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Free amounts (negative on an overcommitted node) and requests, from few values: ties abound."""
    resources, nodes, pods = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 6))
    free = [draw(st.lists(st.integers(-2, 3), min_size=resources, max_size=resources)) for _ in range(nodes)]
    requests = [
        draw(st.lists(st.integers(0, 3), min_size=resources, max_size=resources)) for _ in range(pods)
    ]
    return np.array(free, dtype=np.int64), np.array(requests, dtype=np.int64)


@settings(max_examples=300, deadline=None)
@given(free_and_requests())
def test_the_skyline_never_rules_out_a_request_some_node_holds(
    case: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
) -> None:
    free, requests = case
    found = repair._Skyline(free).holds(requests)
    holds = np.any(np.all(free[np.newaxis, :, :] >= requests[:, np.newaxis, :], axis=2), axis=1)
    assert not (holds & ~found).any()
    if free.shape[1] == 1:
        # With one resource the prefix is exactly the nodes that hold the request.
        assert (found == holds).all()
