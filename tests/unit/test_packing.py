"""The packer on hand-made clusters: evictions, limits, MIG geometry, and the validator's verdicts."""

from __future__ import annotations

import pytest
from ortools.sat.python import cp_model_helper

from fairpack.solver import gpumodels, packing
from fairpack.solver.packing import greedy, objectives, validate
from fairpack.solver.packing import instance as inst
from fairpack.solver.packing.model import PackingModel

RESOURCES = ("cpu", "memory", "pods")
SETTINGS = packing.Settings(window_s=1.0, num_workers=1)
H100 = gpumodels.by_name("H100-80GB")


def node(name: str, cpu: int = 1000, *, gpus: int = 0) -> inst.PackNode:
    return inst.PackNode(name, (cpu, 1 << 30, 110), tuple(inst.MigGpu(g, H100) for g in range(gpus)))


def pod(
    name: str,
    cpu: int,
    priority: int = 0,
    *,
    on: int | None = None,
    where: frozenset[int] = frozenset({0}),
    mig: str | None = None,
    slot: inst.MigSlot | None = None,
    controller: bool = True,
) -> inst.PackPod:
    return inst.PackPod(
        f"ns/{name}", priority, (cpu, 1, 1), where, mig, on, slot, movable=controller, evictable=controller
    )


def solve(cluster: inst.Instance, settings: packing.Settings = SETTINGS) -> packing.Plan:
    """The plan, after checking that the validator had nothing against the solver's own plan."""
    plan = packing.solve(cluster, settings=settings)
    assert plan.rejected == ()
    return plan


def test_evicting_a_low_priority_pod_lets_a_high_priority_one_in() -> None:
    cluster = inst.Instance(RESOURCES, (node("n0"),), (pod("low", 800, 1, on=0), pod("high", 800, 100)))
    plan = solve(cluster)
    assert plan.placements == {"ns/high": "n0"}
    assert plan.evictions == ("ns/low",)
    assert plan.placed_by_priority[100] == packing.plan.TierCount(before=0, after=1)
    assert plan.status is packing.Status.OPTIMAL


def test_max_evictions_is_honoured() -> None:
    cluster = inst.Instance(RESOURCES, (node("n0"),), (pod("low", 800, 1, on=0), pod("high", 800, 100)))
    plan = solve(cluster, packing.Settings(window_s=1.0, num_workers=1, max_evictions=0))
    assert plan.placements == {"ns/low": "n0"}
    assert plan.evictions == ()
    assert plan.status in (packing.Status.OPTIMAL, packing.Status.GREEDY)


def test_a_pod_without_controller_is_never_moved_nor_evicted() -> None:
    cluster = inst.Instance(
        RESOURCES,
        (node("n0"), node("n1")),
        (pod("bare", 600, 1, on=0, where=frozenset({0, 1}), controller=False), pod("high", 800, 100)),
    )
    plan = solve(cluster)
    assert plan.placements == {"ns/bare": "n0"}
    assert plan.moves == ()


def test_moving_is_preferred_to_evicting() -> None:
    both = frozenset({0, 1})
    cluster = inst.Instance(
        RESOURCES,
        (node("n0"), node("n1", 500)),
        (pod("low", 400, 1, on=0, where=both), pod("high", 800, 100)),
    )
    plan = solve(cluster)
    assert plan.placements == {"ns/high": "n0", "ns/low": "n1"}
    assert plan.moves == (packing.plan.Move("ns/low", "n0", "n1"),)
    assert plan.evictions == ()


def test_higher_tier_is_never_traded_for_several_lower_ones() -> None:
    both = frozenset({0})
    lows = tuple(pod(f"low-{i}", 300, 1, where=both) for i in range(3))
    cluster = inst.Instance(RESOURCES, (node("n0"),), (*lows, pod("high", 700, 2, where=both)))
    plan = solve(cluster)
    assert plan.placed_by_priority[2].after == 1
    assert plan.placed_by_priority[1].after == 1


def _at(cluster: inst.Instance, where: dict[str, int]) -> inst.Assignment:
    nodes = [where.get(p.key.removeprefix("ns/")) for p in cluster.pods]
    return inst.Assignment.of(nodes, [None] * len(cluster.pods))


def _objective(model: PackingModel, goal: objectives.Goal, at: inst.Assignment) -> int:
    """What a stage maximising ``goal`` scores for the assignment ``at`` (read from its complete hint)."""
    model.hint(at)
    hint = model.cp.proto.solution_hint
    values = dict(zip(hint.vars, hint.values, strict=True))
    flat = cp_model_helper.FlatIntExpr(goal.scale * goal.primary + goal.secondary)
    return int(flat.offset + sum(c * values[v.index] for v, c in zip(flat.vars, flat.coeffs, strict=True)))


def test_with_keep_in_place_a_tier_stage_ranks_lower_tiers_first_then_pods_left_in_place() -> None:
    # Two identical nodes, a and b on one each; "big" (lower tier) needs a whole node; c fits beside b.
    both = frozenset({0, 1})
    cluster = inst.Instance(
        RESOURCES,
        (node("n0"), node("n1")),
        (
            pod("a", 500, 1, on=0, where=both),
            pod("b", 400, 1, on=1, where=both),
            pod("big", 1000, 0, where=both),
            pod("c", 600, 1, where=both),
        ),
    )
    kept, swapped = _at(cluster, {"a": 0, "b": 1}), _at(cluster, {"a": 1, "b": 0})
    packed = _at(cluster, {"a": 1, "b": 1, "big": 0})
    more = _at(cluster, {"a": 0, "b": 1, "c": 1})
    model = PackingModel(cluster)
    tier = objectives.goals(model, stays=True)[0]
    assert tier.name == "priority 1"
    # Moving a and b for nothing loses; moving a so that "big" fits wins; one more pod of the tier wins
    # over any number of lower-tier pods and pods in place.
    scores = [_objective(model, tier, at) for at in (swapped, kept, packed, more)]
    assert scores == sorted(set(scores))  # strictly increasing
    plain = objectives.goals(model)[0]
    assert _objective(model, plain, swapped) == _objective(model, plain, kept)  # without it: a tie


def test_a_running_mig_pod_keeps_its_instance_and_new_ones_get_free_slots() -> None:
    cluster = inst.Instance(
        RESOURCES,
        (node("n0", 10_000, gpus=1),),
        (
            pod("old", 1, 1, on=0, mig="3g.40gb", slot=(0, 4)),
            pod("new", 1, 1, mig="4g.40gb"),
        ),
    )
    plan = solve(cluster)
    assert plan.mig_instances == {"ns/old": "0:3g.40gb@4", "ns/new": "0:4g.40gb@0"}
    assert plan.moves == ()


@pytest.mark.parametrize(
    ("running", "pending", "fits"),
    [
        pytest.param(("4g.40gb", 0), "3g.40gb", True, id="4g+3g-fit"),
        pytest.param(("4g.40gb", 0), "4g.40gb", False, id="two-4g-never"),
        pytest.param(("1g.10gb", 4), "3g.40gb", True, id="1g-at-4-leaves-3g-at-0"),
        pytest.param(("1g.10gb", 0), "7g.80gb", False, id="any-instance-blocks-7g"),
    ],
)
def test_mig_geometry_decides_what_fits(running: tuple[str, int], pending: str, fits: bool) -> None:
    profile, start = running
    cluster = inst.Instance(
        RESOURCES,
        (node("n0", 10_000, gpus=1),),
        (
            pod("old", 1, 1, on=0, mig=profile, slot=(0, start), controller=False),
            pod("new", 1, 1, mig=pending),
        ),
    )
    plan = solve(cluster)
    assert ("ns/new" in plan.placements) is fits
    assert ("ns/new" in plan.placements) is (greedy.schedule(cluster).nodes[1] is not None)


def test_the_greedy_model_spreads_like_least_allocated() -> None:
    both = frozenset({0, 1})
    cluster = inst.Instance(
        RESOURCES, (node("n0"), node("n1")), (pod("a", 100, where=both), pod("b", 100, where=both))
    )
    assert sorted(greedy.schedule(cluster).nodes) == [0, 1]  # type: ignore[type-var]


def test_the_greedy_model_preempts_the_lowest_priority_victim() -> None:
    both = frozenset({0, 1})
    cluster = inst.Instance(
        RESOURCES,
        (node("n0"), node("n1")),
        (
            pod("mid", 900, 5, on=0, where=both),
            pod("low", 900, 1, on=1, where=both),
            pod("high", 900, 9, where=both),
        ),
    )
    assert greedy.schedule(cluster).nodes == (0, None, 1)


@pytest.mark.parametrize(
    ("nodes", "slots", "problem"),
    [
        pytest.param((0, 0), (None, None), "overcommits cpu", id="overcommit"),
        pytest.param((1, None), (None, None), "may not run on", id="ineligible-node"),
        pytest.param((None, None), (None, None), "may not be evicted", id="unevictable"),
        pytest.param((0, None), ((0, 0), None), "MIG instance if and only if", id="slot-without-profile"),
    ],
)
def test_the_validator_names_each_broken_rule(
    nodes: tuple[int | None, ...], slots: tuple[inst.MigSlot | None, ...], problem: str
) -> None:
    cluster = inst.Instance(
        RESOURCES,
        (node("n0"), node("n1")),
        (pod("a", 600, on=0, controller=False), pod("b", 600)),
    )
    found = validate.problems(cluster, inst.Assignment.of(nodes, slots))
    assert any(problem in p for p in found), found


def test_the_validator_catches_overlapping_mig_instances_and_the_eviction_limit() -> None:
    cluster = inst.Instance(
        RESOURCES,
        (node("n0", 10_000, gpus=1),),
        (pod("a", 1, on=0, mig="3g.40gb", slot=(0, 0)), pod("b", 1, mig="4g.40gb")),
    )
    overlapping = inst.Assignment.of((0, 0), ((0, 0), (0, 0)))
    assert any("overlapping" in p for p in validate.problems(cluster, overlapping))
    evicted = inst.Assignment.of((None, None), (None, None))
    assert any("exceed the limit" in p for p in validate.problems(cluster, evicted, max_evictions=0))


def test_the_plan_json_has_the_cli_contract_shape() -> None:
    cluster = inst.Instance(RESOURCES, (node("n0"),), (pod("low", 800, 1, on=0), pod("high", 800, 100)))
    out = solve(cluster).to_json()
    assert set(out) == {
        "status",
        "window_s",
        "solve_s",
        "placements",
        "moves",
        "evictions",
        "placed_by_priority",
    }
    assert out["placements"] == [{"pod": "ns/high", "node": "n0"}]
    assert out["evictions"] == ["ns/low"]
    assert out["placed_by_priority"] == {"100": {"before": 0, "after": 1}, "1": {"before": 1, "after": 0}}


def test_new_mig_instances_go_to_a_gpu_already_in_use() -> None:
    cluster = inst.Instance(
        RESOURCES,
        (node("n0", 10_000, gpus=2),),
        (pod("old", 1, 1, on=0, mig="3g.40gb", slot=(0, 0)), pod("new", 1, 1, mig="1g.10gb")),
    )
    plan = solve(cluster)
    assert plan.mig_instances["ns/new"].startswith("0:")
    assert [s.name for s in plan.stages][-1] == "fragmentation"


def test_a_pod_left_on_a_node_that_no_longer_admits_it_does_not_sink_the_plan() -> None:
    """Required affinity and NoSchedule taints are IgnoredDuringExecution: the pod may stay.

    The adapter pins such a pod where it runs; the validator used to reject every plan that kept it
    there (so the packer fell back to greedy's plan, which keeps it there too).
    """
    tainted = pod("tainted", 300, on=0, where=frozenset(), controller=False)
    cluster = inst.Instance(RESOURCES, (node("n0"),), (tainted, pod("new", 300)))
    plan = solve(cluster)
    assert plan.placements == {"ns/tainted": "n0", "ns/new": "n0"}
    assert plan.status is packing.Status.OPTIMAL
    moved = inst.Assignment.of((None, 0), (None, None))
    assert any("may not be evicted" in p for p in validate.problems(cluster, moved))
