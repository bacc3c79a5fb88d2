"""MIG geometry from NVIDIA's MIG user guide, and NVLink island selection."""

from __future__ import annotations

import pytest

from fairpack.solver import gpumodels, mig, model, topology

H100 = gpumodels.by_name("H100-80GB")


def held(*instances: tuple[str, int]) -> int:
    return mig.used_mask(H100, [model.MigInstance(0, p, s) for p, s in instances])


def test_a_4g_and_a_3g_share_a_gpu() -> None:
    assert mig.free_starts(H100.profile("3g.40gb"), held(("4g.40gb", 0))) == (4,)


def test_two_4g_never_share_a_gpu() -> None:
    assert not mig.fits(H100.profile("4g.40gb"), held(("4g.40gb", 0)))


def test_a_2g_cannot_start_at_slot_6() -> None:
    assert 6 not in mig.free_starts(H100.profile("2g.20gb"), 0)
    assert mig.free_starts(H100.profile("2g.20gb"), held(("4g.40gb", 0), ("2g.20gb", 4))) == ()


def test_1g_at_slots_0_and_4_blocks_every_3g() -> None:
    assert not mig.fits(H100.profile("3g.40gb"), held(("1g.10gb", 0), ("1g.10gb", 4)))


@pytest.mark.parametrize(
    "instances",
    [pytest.param((), id="empty"), pytest.param((("1g.10gb", 6),), id="one-1g")],
)
def test_7g_needs_an_empty_gpu(instances: tuple[tuple[str, int], ...]) -> None:
    assert mig.fits(H100.profile("7g.80gb"), held(*instances)) == (not instances)


def test_best_start_for_a_1g_keeps_the_4g_and_both_3g_starts_free() -> None:
    start = mig.best_start(H100, H100.profile("1g.10gb"), 0)
    assert start == 6
    after = mig.mask(H100.profile("1g.10gb"), start)
    assert mig.fits(H100.profile("4g.40gb"), after)
    assert mig.free_starts(H100.profile("3g.40gb"), after) == (0,)


def test_best_start_beside_a_4g_leaves_room_for_a_2g() -> None:
    used = held(("4g.40gb", 0))
    assert mig.best_start(H100, H100.profile("1g.10gb"), used) == 6  # 4 or 5 would block the 2g at 4
    assert mig.best_start(H100, H100.profile("2g.20gb"), used) == 4


def test_unusable_slots_counts_free_slots_no_wanted_profile_can_take() -> None:
    used = held(("1g.10gb", 0), ("1g.10gb", 4))
    assert mig.unusable_slots(H100, used, ["3g"]) == 6
    assert mig.unusable_slots(H100, used, ["1g"]) == 1  # slot 7: no 1g starts there
    assert mig.unusable_slots(H100, used, ["2g", "1g"]) == 1


def test_compute_part_names_resolve_per_model() -> None:
    assert mig.resolve(H100, "3g") == H100.profile("3g.40gb")
    a100 = gpumodels.by_name("A100-40GB")
    assert mig.resolve(a100, "3g") == a100.profile("3g.20gb")
    assert mig.resolve(a100, "3g.40gb") is None
    assert mig.smallest_covering(H100, 5) == H100.profile("7g.80gb")


def node_with(islands: tuple[tuple[int, ...], ...], gpus: int = 8) -> model.Node:
    island_of = {g: i for i, isl in enumerate(islands) for g in isl}
    return model.Node(
        "n", gpus=tuple(model.Gpu(i, H100, island=island_of.get(i)) for i in range(gpus)), islands=islands
    )


def test_dynamic_placement_prefers_a_partly_used_gpu_and_keeps_empty_ones_whole() -> None:
    node = node_with(())
    chosen = mig.choose(node.gpus, {3: held(("4g.40gb", 0))}, "3g")
    assert chosen == model.MigInstance(3, "3g.40gb", 4)
    assert mig.choose(node.gpus, dict.fromkeys(range(8), mig.FULL), "1g") is None


def test_static_placement_takes_a_configured_free_instance_of_the_profile() -> None:
    node = model.Node(
        "n",
        gpus=(model.Gpu(0, H100), model.Gpu(1, H100)),
        mig=(
            model.MigInstance(0, "3g.40gb", 4),
            model.MigInstance(1, "3g.40gb", 0),
            model.MigInstance(1, "3g.40gb", 4),
        ),
    )
    first = mig.free_instance(node, "3g.40gb", ())
    assert first == model.MigInstance(0, "3g.40gb", 4)
    assert mig.free_instance(node, "3g.40gb", (model.MigInstance(1, "3g.40gb", 0),)) == model.MigInstance(
        1, "3g.40gb", 4
    )
    assert mig.free_instance(node, "4g.40gb", ()) is None


def test_a_multi_gpu_pod_gets_the_smallest_island_that_holds_it() -> None:
    node = node_with(((0, 1, 2, 3), (4, 5), (6, 7)))
    assert topology.choose_gpus(node, set(range(8)), 2) == (4, 5)
    assert topology.choose_gpus(node, set(range(8)), 3) == (0, 1, 2)
    assert topology.choose_gpus(node, {0, 1, 2, 4, 6, 7}, 2) == (6, 7)


def test_an_island_with_fewer_free_gpus_wins_so_whole_islands_stay_whole() -> None:
    node = node_with(((0, 1, 2, 3), (4, 5, 6, 7)))
    assert topology.choose_gpus(node, {0, 1, 2, 3, 6, 7}, 2) == (6, 7)


def test_a_required_island_is_refused_with_the_largest_free_island() -> None:
    node = node_with(((0, 1, 2, 3), (4, 5, 6, 7)))
    free = {0, 1, 4, 5}
    assert topology.choose_gpus(node, free, 4, require_island=True) is None
    assert topology.choose_gpus(node, free, 4) == (0, 1, 4, 5)
    assert topology.shortfall(node, free, 4, require_island=True) == (
        "needs 4 GPUs in one NVLink island; largest free island has 2"
    )
    assert topology.shortfall(node, free, 4) is None
