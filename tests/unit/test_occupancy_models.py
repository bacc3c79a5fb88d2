"""The occupancy resolves a MIG profile name on each GPU's own model.

``1g.10gb`` is the single-slot 1g (starts 0..6) on an A100-80GB and an H100, the double-memory
two-slot 1g (starts 0, 2, 4, 6) on an A100-40GB: the same pods fit 7 or 4 to a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from fairpack.solver import fragmentation, gpumodels, mig, model, replay
from fairpack.solver import occupancy as occ

A100_40 = gpumodels.by_name("A100-40GB")
A100_80 = gpumodels.by_name("A100-80GB")
H100 = gpumodels.by_name("H100-80GB")


def node(
    name: str, gpu_model: gpumodels.GpuModel, *, mig_layout: tuple[model.MigInstance, ...] = ()
) -> model.Node:
    return model.Node(
        name,
        allocatable=model.Resources.of(cpu=64_000, memory=512 * 2**30, pods=110),
        gpus=(model.Gpu(0, gpu_model, gpu_model.product),),
        mig=mig_layout,
    )


def pods(profile: str, count: int) -> list[model.Pod]:
    return [
        model.Pod(
            "t",
            f"{profile}-{i}",
            requests=model.Resources.of(cpu=100, memory=2**20, pods=1),
            gpu=model.GpuRequest(mig_profile=profile),
            created=float(i),
        )
        for i in range(count)
    ]


def fill(cluster: occ.Occupancy, wanted: list[model.Pod]) -> list[occ.Assignment]:
    """Place each pod first-fit where it fits now; the assignments made."""
    placed = []
    for p in wanted:
        demand = cluster.demand(p)
        candidates = cluster.candidates(demand)
        if len(candidates):
            assignment = cluster.first_fit(int(candidates[0]), demand)
            cluster.place(demand, assignment)
            placed.append(assignment)
    return placed


@pytest.mark.parametrize(
    ("gpu_model", "fitting", "slots_each"),
    [
        pytest.param(A100_80, 7, 1, id="a100-80gb-single-slot"),
        pytest.param(H100, 7, 1, id="h100-single-slot"),
        pytest.param(A100_40, 4, 2, id="a100-40gb-double-memory"),
    ],
)
def test_1g_10gb_pods_on_an_empty_dynamic_gpu_take_the_slots_of_that_models_1g_10gb(
    gpu_model: gpumodels.GpuModel, fitting: int, slots_each: int
) -> None:
    cluster = occ.Occupancy([node("n", gpu_model)], [], dynamic_mig=True)
    placed = fill(cluster, pods("1g.10gb", 9))
    assert len(placed) == fitting
    assert cluster.held[0][0].bit_count() == fitting * slots_each
    assert cluster.gpu_free[0] == pytest.approx(
        (gpumodels.MIG_SLOTS - fitting * slots_each) / gpumodels.MIG_SLOTS
    )


def test_static_1g_10gb_instances_are_measured_with_the_gpus_own_geometry() -> None:
    seven = tuple(model.MigInstance(0, "1g.10gb", s) for s in range(7))
    four = tuple(model.MigInstance(0, "1g.10gb", s) for s in (0, 2, 4, 6))
    nodes = [node("a100-80", A100_80, mig_layout=seven), node("a100-40", A100_40, mig_layout=four)]
    cluster = occ.Occupancy(nodes, [], dynamic_mig=False)
    assert cluster.layouts[0][0] == tuple((0, s) for s in range(7))
    assert cluster.layouts[1][0] == tuple((1, s) for s in (0, 2, 4, 6))
    # Seven one-slot instances leave slot 7 unconfigured; four two-slot ones cover the GPU.
    assert list(cluster.gpu_total) == [7 / 8, 1.0]
    placed = fill(cluster, pods("1g.10gb", 12))
    assert sorted((a.node, a.mig) for a in placed) == sorted(
        [(0, (0, 0, s)) for s in range(7)] + [(1, (0, 1, s)) for s in (0, 2, 4, 6)]
    )
    assert cluster.held == [[0b0111_1111], [mig.FULL]]


def test_a_mixed_cluster_resolves_the_request_per_node_model() -> None:
    nodes = [node("a100-40", A100_40), node("a100-80", A100_80)]
    cluster = occ.Occupancy(nodes, [], dynamic_mig=True)
    demand = cluster.demand(pods("1g.10gb", 1)[0])
    assert [demand.mig_class(i) for i in range(2)] == [1, 0]
    outcome, after = replay.replay(
        nodes, pods("1g.10gb", 14), "first-fit", settings=replay.Settings(dynamic_mig=True)
    )
    assert (outcome.placed, outcome.pending) == (4 + 7, 3)
    assert after.held == [[mig.FULL], [0b0111_1111]]


@pytest.mark.parametrize(
    ("profile", "hosts"),
    [
        pytest.param("1g.5gb", [0], id="a100-40gb-only"),
        pytest.param("3g.40gb", [1], id="80gb-only"),
        pytest.param("1g.10gb", [0, 1], id="both-with-different-geometry"),
        pytest.param("3g", [0, 1], id="compute-part-on-any-model"),
    ],
)
def test_a_node_whose_model_lacks_the_profile_is_no_candidate(profile: str, hosts: list[int]) -> None:
    cluster = occ.Occupancy([node("a100-40", A100_40), node("a100-80", A100_80)], [], dynamic_mig=True)
    demand = cluster.demand(pods(profile, 1)[0])
    assert list(cluster.candidates(demand)) == hosts
    assert [i for i in range(2) if demand.mig_class(i) >= 0] == hosts


def test_a_profile_no_model_has_is_refused() -> None:
    cluster = occ.Occupancy([node("n", A100_80)], [], dynamic_mig=True)
    with pytest.raises(ValueError, match=r"no GPU model has a MIG profile '9g\.99gb'"):
        cluster.demand(pods("9g.99gb", 1)[0])


def test_fragmentation_of_a_named_profile_uses_each_nodes_geometry() -> None:
    # On empty GPUs, a 1g.10gb task could take every slot of an A100-40GB (two slots from 0, 2,
    # 4 or 6) but not slot 7 of an A100-80GB (one slot from 0..6).
    nodes = [node("a100-40", A100_40), node("a100-80", A100_80)]
    cluster = occ.Occupancy(nodes, [], dynamic_mig=True)
    workload = fragmentation.Workload.of([cluster.demand(pods("1g.10gb", 1)[0])], resources=cluster.resources)
    assert [t.mig_profile for t in workload.types] == ["1g.10gb"]
    every = np.array([0, 1], dtype=np.int64)
    assert list(fragmentation.Table(cluster, workload).of(cluster.key_id, every)) == [0.0, 1 / 8]
