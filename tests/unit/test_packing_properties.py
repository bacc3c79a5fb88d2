"""Properties of the CP-SAT packer on random small clusters, with the validator and brute force as oracles."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairpack.solver import gpumodels, packing
from fairpack.solver.packing import greedy, repair, validate, workloads
from fairpack.solver.packing import instance as inst

A100 = gpumodels.by_name("A100-40GB")
RESOURCES = ("cpu", "memory", "pods", "nvidia.com/gpu")
PROFILES = ("1g.5gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb")
FAST = packing.Settings(window_s=0.5, num_workers=1)


@st.composite
def clusters(draw: st.DrawFn, *, max_nodes: int = 4, max_pods: int = 10) -> inst.Instance:
    """A random cluster whose running pods form a valid placement (greedy put them there)."""
    node_count = draw(st.integers(1, max_nodes))
    nodes = tuple(
        inst.PackNode(
            f"n{n}",
            (
                draw(st.integers(1, 8)) * 500,
                draw(st.integers(1, 8)) * 1024,
                draw(st.integers(1, 6)),
                draw(st.integers(0, 2)),
            ),
            tuple(
                inst.MigGpu(g, A100, frozenset(draw(st.sets(st.integers(0, 7), max_size=2))))
                for g in range(draw(st.integers(0, 2)))
            ),
        )
        for n in range(node_count)
    )
    subsets = [
        frozenset(range(node_count)),
        *(frozenset(draw(st.sets(st.integers(0, node_count - 1)))) for _ in range(2)),
    ]
    pods = []
    for i in range(draw(st.integers(1, max_pods))):
        mig = draw(st.sampled_from((None, None, *PROFILES)))
        pods.append(
            inst.PackPod(
                f"ns/p{i}",
                draw(st.integers(1, 3)),
                (
                    draw(st.integers(0, 6)) * 250,
                    draw(st.integers(0, 6)) * 512,
                    1,
                    draw(st.integers(0, 1)) if mig is None else 0,
                ),
                draw(st.sampled_from(subsets)),
                mig_profile=mig,
                movable=draw(st.booleans()),
                evictable=draw(st.booleans()),
                order=i,
            )
        )
    fresh = inst.Instance(RESOURCES, nodes, tuple(pods))
    # Some pods were there first: greedy places a random subset, which becomes the running state.
    first = draw(st.sets(st.integers(0, len(pods) - 1)))
    early = inst.Instance(RESOURCES, nodes, tuple(p for i, p in enumerate(pods) if i in first))
    start = greedy.schedule(early)
    placed = dict(zip(sorted(first), zip(start.nodes, start.mig_slots, strict=True), strict=True))
    running = []
    for i, pod in enumerate(pods):
        node, slot = placed.get(i, (None, None))
        running.append(
            inst.PackPod(
                pod.key,
                pod.priority,
                pod.requests,
                pod.eligible,
                pod.mig_profile,
                node,
                slot,
                pod.movable,
                pod.evictable,
                pod.order,
            )
        )
    return inst.Instance(fresh.resources, fresh.nodes, tuple(running))


def solve(cluster: inst.Instance, settings: packing.Settings = FAST) -> packing.Plan:
    """The plan, after checking that the validator had nothing against the solver's own plan."""
    plan = packing.solve(cluster, settings=settings)
    assert plan.rejected == ()
    return plan


PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(clusters(), st.one_of(st.none(), st.integers(0, 2)), st.booleans())
def test_every_plan_is_valid(cluster: inst.Instance, max_evictions: int | None, keep_in_place: bool) -> None:
    """No resource or MIG slot overcommitted, no pod where selector, affinity or taints forbid."""
    settings = packing.Settings(
        window_s=0.3, num_workers=1, max_evictions=max_evictions, keep_in_place=keep_in_place
    )
    plan = packing.solve(cluster, settings=settings)
    assert plan.rejected == ()
    assert validate.problems(cluster, plan.assignment, max_evictions=max_evictions) == []
    for pod, node in zip(cluster.pods, plan.assignment.nodes, strict=True):
        assert node is None or node in pod.eligible


@PROPERTY
@given(clusters())
def test_plan_never_places_fewer_top_tier_pods_than_the_greedy_hint(cluster: inst.Instance) -> None:
    plan = solve(cluster)
    ours = validate.key(validate.score(cluster, plan.assignment))
    default = greedy.schedule(cluster)
    repaired = repair.improve(cluster, default, deadline=float("inf"))
    assert (
        ours
        >= validate.key(validate.score(cluster, repaired))
        >= validate.key(validate.score(cluster, default))
    )


@PROPERTY
@given(clusters())
def test_the_one_move_repair_keeps_a_placement_valid_and_places_only_pending_pods_more(
    cluster: inst.Instance,
) -> None:
    default = greedy.schedule(cluster)
    repaired = repair.improve(cluster, default, deadline=float("inf"))
    assert validate.problems(cluster, repaired) == validate.problems(cluster, default)
    before, after = validate.score(cluster, default), validate.score(cluster, repaired)
    assert after.evictions == before.evictions
    # Every pod placed before still is, MIG pods where they were.
    for pod, old, new, old_slot, new_slot in zip(
        cluster.pods, default.nodes, repaired.nodes, default.mig_slots, repaired.mig_slots, strict=True
    ):
        if old is not None:
            assert new is not None
        if pod.mig_profile is not None:
            assert (new, new_slot) == (old, old_slot)


def _options(cluster: inst.Instance, i: int) -> list[tuple[int | None, inst.MigSlot | None]]:
    pod = cluster.pods[i]
    found: list[tuple[int | None, inst.MigSlot | None]] = [(None, None)]
    for n in sorted(pod.eligible):
        if pod.mig_profile is None:
            found.append((n, None))
            continue
        for g, gpu in enumerate(cluster.nodes[n].mig_gpus):
            found += [(n, (g, start)) for start, _ in inst.runs(gpu, pod.mig_profile)]
    return found


def _brute_force_best(cluster: inst.Instance) -> tuple[int, ...]:
    best: tuple[int, ...] | None = None
    for choice in itertools.product(*(_options(cluster, i) for i in range(len(cluster.pods)))):
        candidate = inst.Assignment.of([c[0] for c in choice], [c[1] for c in choice])
        if validate.problems(cluster, candidate):
            continue
        value = validate.key(validate.score(cluster, candidate))
        best = value if best is None or value > best else best
    assert best is not None  # leaving every pod where it is is always valid
    return best


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(max_nodes=2, max_pods=4), st.booleans())
def test_optimal_plans_are_lexicographically_optimal_by_brute_force(
    cluster: inst.Instance, keep_in_place: bool
) -> None:
    """Also with pods kept in place as the tier stages' last tie-breaker: it must never outweigh a pod."""
    plan = solve(cluster, packing.Settings(window_s=2.0, num_workers=1, keep_in_place=keep_in_place))
    best = _brute_force_best(cluster)
    ours = validate.key(validate.score(cluster, plan.assignment))
    assert ours <= best
    if plan.status is packing.Status.OPTIMAL:
        assert ours == best


def test_brute_force_oracle_sees_the_better_packing() -> None:
    """The brute force itself can fail: it finds the swap greedy misses."""
    cluster = _spread_trap()
    assert _brute_force_best(cluster) > validate.key(validate.score(cluster, greedy.schedule(cluster)))


def _spread_trap() -> inst.Instance:
    # LeastAllocated spreads two small pods over two nodes; the big pod then fits nowhere.
    nodes = tuple(inst.PackNode(f"n{n}", (1000, 1000, 10, 0)) for n in range(2))
    every = frozenset({0, 1})
    pods = (
        inst.PackPod("ns/small-0", 1, (400, 400, 1, 0), every, order=0),
        inst.PackPod("ns/small-1", 1, (400, 400, 1, 0), every, order=1),
        inst.PackPod("ns/big", 1, (1000, 1000, 1, 0), every, order=2),
    )
    return inst.Instance(RESOURCES, nodes, pods)


def test_packing_beats_the_spreading_default_scheduler() -> None:
    cluster = _spread_trap()
    assert greedy.schedule(cluster).nodes.count(None) == 1
    plan = solve(cluster)
    assert plan.status is packing.Status.OPTIMAL
    assert None not in plan.assignment.nodes


@pytest.mark.parametrize("window", [pytest.param(0.0, id="no-time"), pytest.param(0.5, id="half-second")])
def test_a_pod_that_fits_nowhere_leaves_a_sane_plan(window: float) -> None:
    nodes = (inst.PackNode("n0", (1000, 1000, 10, 0)),)
    pods = (
        inst.PackPod("ns/huge", 5, (5000, 10, 1, 0), frozenset({0})),
        inst.PackPod("ns/nowhere", 5, (10, 10, 1, 0), frozenset()),
        inst.PackPod("ns/fine", 1, (10, 10, 1, 0), frozenset({0})),
    )
    cluster = inst.Instance(RESOURCES, nodes, pods)
    plan = packing.solve(cluster, settings=packing.Settings(window_s=window, num_workers=1))
    assert plan.placements == {"ns/fine": "n0"}
    assert plan.evictions == ()
    assert plan.moves == ()
    assert plan.placed_by_priority[5].after == 0
    assert plan.status in (packing.Status.OPTIMAL, packing.Status.GREEDY)


@pytest.mark.parametrize("seed", range(4))
def test_a_large_cluster_cut_to_a_neighbourhood_still_gets_a_valid_plan_never_below_greedy(seed: int) -> None:
    cluster, _ = workloads.after_default_scheduler(workloads.Scenario(16, 8, 2, 1.05, seed))
    tiny = packing.Settings(window_s=0.5, num_workers=1, pairs_per_second=400, max_evictions=3)
    plan = solve(cluster, tiny)
    assert not plan.complete
    assert plan.status is not packing.Status.OPTIMAL
    assert validate.problems(cluster, plan.assignment, max_evictions=3) == []
    hint = greedy.schedule(cluster, settings=greedy.Settings(max_evictions=3))
    assert validate.key(validate.score(cluster, plan.assignment)) >= validate.key(
        validate.score(cluster, hint)
    )


@st.composite
def any_assignment(draw: st.DrawFn, cluster: inst.Instance) -> inst.Assignment:
    """Any assignment of ``cluster``'s pods, valid or not: nodes, MIG GPUs and starts at random."""
    nodes = [draw(st.one_of(st.none(), st.integers(0, len(cluster.nodes) - 1))) for _ in cluster.pods]
    slots = [
        draw(st.one_of(st.none(), st.tuples(st.integers(0, 2), st.integers(0, 7)))) if n is not None else None
        for n in nodes
    ]
    return inst.Assignment.of(nodes, slots)


@PROPERTY
@given(st.data(), clusters(), st.one_of(st.none(), st.integers(0, 2)))
def test_the_array_checker_finds_exactly_what_the_reference_validator_finds(
    data: st.DataObject, cluster: inst.Instance, max_evictions: int | None
) -> None:
    """``check`` and ``tally`` (what the packer runs) against ``problems`` and ``score`` (per pod)."""
    candidates = [
        data.draw(any_assignment(cluster)),
        greedy.schedule(cluster),
        inst.Assignment.current(cluster),
    ]
    for assignment in candidates:
        reference = validate.problems(cluster, assignment, max_evictions=max_evictions)
        found = validate.check(cluster, assignment, max_evictions=max_evictions)
        assert sorted(found) == sorted(reference)
        assert validate.tally(cluster, assignment) == validate.score(cluster, assignment)
    assert validate.tally_current(cluster) == validate.score(cluster, inst.Assignment.current(cluster))


@PROPERTY
@given(clusters())
def test_pods_share_a_shape_exactly_when_they_have_the_same_priority_requests_profile_and_nodes(
    cluster: inst.Instance,
) -> None:
    columns = cluster.columns
    for i, a in enumerate(cluster.pods):
        assert columns.eligible_sets[columns.eligible[i]] == a.eligible
        for j, b in enumerate(cluster.pods):
            same = (a.priority, a.requests, a.mig_profile, a.eligible) == (
                b.priority,
                b.requests,
                b.mig_profile,
                b.eligible,
            )
            assert bool(columns.shape[i] == columns.shape[j]) is same


def test_a_window_spent_before_cp_sat_returns_greedys_plan_without_stages() -> None:
    """The window is a deadline: with nothing left after greedy no stage starts, and the plan is valid."""
    cluster, _ = workloads.after_default_scheduler(workloads.Scenario(16, 8, 2, 1.05, 0))
    plan = packing.solve(cluster, settings=packing.Settings(window_s=0.0, num_workers=1))
    assert plan.stages == ()
    assert plan.status is packing.Status.GREEDY
    assert plan.assignment == greedy.schedule(cluster)
    assert validate.problems(cluster, plan.assignment) == []
