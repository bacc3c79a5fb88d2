"""FGD's fragmentation score, the placement policies, the replay's invariants, and ``fairpack replay``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairpack.cli import main as cli
from fairpack.solver import fragmentation, gpumodels, mig, model, openb, policies, replay
from fairpack.solver import occupancy as occ

H100 = gpumodels.by_name("H100-80GB")
A100 = gpumodels.by_name("A100-40GB")


def node(name: str, gpus: int = 1, *, gpu_model: gpumodels.GpuModel = H100, **kw: object) -> model.Node:
    islands = kw.pop("islands", ())
    assert isinstance(islands, tuple)
    island_of = {g: n for n, island in enumerate(islands) for g in island}
    return model.Node(
        name,
        allocatable=model.Resources.of(cpu=64_000, memory=512 * 2**30, pods=110),
        gpus=tuple(model.Gpu(i, gpu_model, gpu_model.product, island=island_of.get(i)) for i in range(gpus)),
        islands=islands,
        **kw,  # type: ignore[arg-type]
    )


def pod(name: str, gpu: model.GpuRequest | None = None, *, cpu: int = 1000, **kw: object) -> model.Pod:
    return model.Pod("t", name, requests=model.Resources.of(cpu=cpu, memory=2**30, pods=1), gpu=gpu, **kw)  # type: ignore[arg-type]


ONE_GPU = model.GpuRequest(1)
SLICE = model.GpuRequest(mig_profile="1g")


def test_a_mig_slice_on_an_empty_gpu_grows_fragmentation_more_than_beside_another_slice() -> None:
    nodes = [node("empty"), node("sliced")]
    cluster = occ.Occupancy(nodes, [], dynamic_mig=True)
    first = cluster.demand(pod("first", SLICE))
    cluster.place(first, occ.Assignment(1, mig=(0, 0, 6)))
    workload = fragmentation.Workload((fragmentation.TaskType(1, -1, 1.0),))  # whole-GPU tasks only
    table = fragmentation.Table(cluster, workload)
    candidates = np.array([0, 1], dtype=np.int64)
    before = table.of(cluster.key_id[candidates], candidates)
    assert list(before) == [0.0, 7 / 8]  # the sliced GPU is useless to a whole-GPU task
    policy = policies.Fgd(table)
    second = cluster.demand(pod("second", SLICE))
    assert policy.choose(cluster, second, candidates).node == 1
    assert policies.FirstFit().choose(cluster, second, candidates).node == 0


def test_fgd_puts_a_1g_where_a_4g_and_3g_still_fit() -> None:
    cluster = occ.Occupancy([node("n")], [], dynamic_mig=True)
    workload = fragmentation.Workload(
        (
            fragmentation.TaskType(0, 4, 0.5),
            fragmentation.TaskType(0, 3, 0.5),
            fragmentation.TaskType(0, 0, 0.0),
        )
    )
    chosen = policies.Fgd(fragmentation.Table(cluster, workload)).choose(
        cluster, cluster.demand(pod("p", SLICE)), np.array([0], dtype=np.int64)
    )
    assert chosen.mig is not None
    assert chosen.mig[2] >= 4  # slots 0-3 stay free for the 4g


def test_a_node_too_small_for_a_task_counts_all_its_free_gpus_as_fragments() -> None:
    cluster = occ.Occupancy([node("two", 2), node("eight", 8)], [], dynamic_mig=False)
    workload = fragmentation.Workload((fragmentation.TaskType(4, -1, 1.0),))
    assert fragmentation.Table(cluster, workload).total() == 2.0


def test_a_node_without_cpu_left_strands_its_gpus() -> None:
    cluster = occ.Occupancy([node("n", 2)], [], dynamic_mig=False)
    cluster.place(cluster.demand(pod("cpu-hog", cpu=64_000)), occ.Assignment(0))
    workload = fragmentation.Workload((fragmentation.TaskType(1, -1, 1.0, cpu=1000),))
    assert fragmentation.Table(cluster, workload).total() == 2.0


def test_two_gpu_pods_share_an_island_so_a_four_gpu_pod_still_finds_one_whole() -> None:
    nodes = [node("n", 8, islands=((0, 1, 2, 3), (4, 5, 6, 7)))]
    pods = [
        pod("a", model.GpuRequest(2), created=0, deleted=10),
        pod("b", model.GpuRequest(2), created=1),
        pod("c", model.GpuRequest(4, require_island=True), created=2),
        pod("d", model.GpuRequest(4, require_island=True), created=11),  # 2 + 2 free GPUs: no island
    ]
    outcome, cluster = replay.replay(nodes, pods, "first-fit")
    assert (outcome.placed, outcome.pending) == (3, 1)
    assert set(cluster.holdings) == {"t/b", "t/c"}
    assert cluster.holdings["t/c"][0].gpus == (4, 5, 6, 7)


# --- replay invariants ------------------------------------------------------------------------

LAYOUTS = {
    # Valid on each model (layouts are validated against the node's model on reading).
    H100: (
        (),
        (model.MigInstance(0, "4g.40gb", 0), model.MigInstance(0, "3g.40gb", 4)),
        (
            model.MigInstance(1, "1g.10gb", 0),
            model.MigInstance(1, "1g.10gb", 1),
            model.MigInstance(1, "2g.20gb", 2),
        ),
    ),
    A100: (
        (),
        (model.MigInstance(0, "4g.20gb", 0), model.MigInstance(0, "3g.20gb", 4)),
        (
            model.MigInstance(1, "1g.10gb", 0),  # the two-slot 1g on this model
            model.MigInstance(1, "1g.5gb", 2),
            model.MigInstance(1, "2g.10gb", 4),
        ),
    ),
}
REQUESTS = st.sampled_from(
    [
        None,
        model.GpuRequest(1),
        model.GpuRequest(2),
        model.GpuRequest(3, require_island=True),
        model.GpuRequest(mig_profile="1g"),
        model.GpuRequest(mig_profile="2g"),
        model.GpuRequest(mig_profile="3g"),
        model.GpuRequest(mig_profile="4g"),
        model.GpuRequest(mig_profile="7g"),
        model.GpuRequest(mig_profile="1g.10gb"),  # one slot on the H100, two on the A100-40GB
    ]
)


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[model.Node], list[model.Pod]]:
    nodes = []
    for i in range(draw(st.integers(1, 4))):
        gpus = draw(st.sampled_from([0, 2, 4]))
        gpu_model = draw(st.sampled_from([H100, A100]))
        layout = draw(st.sampled_from(LAYOUTS[gpu_model])) if gpus else ()
        islands = ((0, 1), (2, 3)) if gpus == 4 and draw(st.booleans()) else ()
        nodes.append(node(f"n{i}", gpus, gpu_model=gpu_model, mig=layout, islands=islands))
    pods = []
    for i in range(draw(st.integers(0, 25))):
        created = draw(st.integers(0, 20))
        lifetime = draw(st.none() | st.integers(0, 10))
        pods.append(
            pod(
                f"p{i}",
                draw(REQUESTS),
                cpu=draw(st.integers(0, 40_000)),
                created=created,
                deleted=None if lifetime is None else created + lifetime,
            )
        )
    return nodes, pods


@settings(max_examples=60, deadline=None)
@given(clusters(), st.sampled_from(policies.NAMES), st.booleans())
def test_no_policy_overcommits_a_resource_or_a_mig_slot_and_every_pod_is_placed_or_pending(
    case: tuple[list[model.Node], list[model.Pod]], policy: str, dynamic: bool
) -> None:
    nodes, pods = case
    outcome, cluster = replay.replay(nodes, pods, policy, settings=replay.Settings(dynamic_mig=dynamic))
    assert outcome.placed + outcome.pending == len(pods)
    assert outcome.placed >= len(cluster.holdings)
    by_key = {p.key: p for p in pods}
    used = np.zeros_like(cluster.allocatable)
    slots: dict[tuple[int, int], int] = {}
    for key, (assignment, requests) in cluster.holdings.items():
        n, p = assignment.node, by_key[key]
        assert model.pod_fits_node_statically(p, nodes[n])
        used[n] += requests
        taken = [(g, mig.FULL) for g in assignment.gpus]
        if assignment.mig is not None:
            g, cls, start = assignment.mig
            kind = cluster.kinds[n][g]
            assert kind != occ.Kind.WHOLE
            if kind == occ.Kind.STATIC:
                assert (cls, start) in cluster.layouts[n][g]
            assert p.gpu is not None
            assert p.gpu.mig_profile is not None
            gpu_model = nodes[n].gpus[g].model
            assert gpu_model is not None
            assert gpu_model.mig_profiles[cls] == mig.resolve(gpu_model, p.gpu.mig_profile)
            taken.append((g, mig.mask(H100.mig_profiles[cls], start)))
        for g, bits in taken:
            assert not slots.get((n, g), 0) & bits, f"{key} overlaps on node {n} GPU {g}"
            slots[(n, g)] = slots.get((n, g), 0) | bits
        assert len(assignment.gpus) == (p.gpu.count if p.gpu else 0)
        if p.gpu is not None and p.gpu.require_island and nodes[n].islands:
            island = {nodes[n].gpus[g].island for g in assignment.gpus}
            assert len(island) == 1
    assert (used <= cluster.allocatable).all()
    assert (used == cluster.used).all()
    assert all(cluster.held[n][g] == bits for (n, g), bits in slots.items())
    assert 0.0 <= outcome.gpu_allocation_ratio <= 1.0


# --- openb --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_gpu", "gpu_milli", "expected"),
    [
        pytest.param("0", "0", None, id="cpu-only"),
        pytest.param("1", "1000", model.GpuRequest(1), id="whole"),
        pytest.param("8", "1000", model.GpuRequest(8), id="eight"),
        pytest.param("1", "470", model.GpuRequest(mig_profile="4g"), id="470-is-4-slices"),
        pytest.param("1", "140", model.GpuRequest(mig_profile="1g"), id="140-is-1-slice"),
        pytest.param("1", "230", model.GpuRequest(mig_profile="2g"), id="230-is-2-slices"),
        pytest.param("1", "810", model.GpuRequest(mig_profile="7g"), id="810-takes-the-7g"),
    ],
)
def test_openb_tasks_become_whole_gpus_or_the_smallest_covering_mig_profile(
    num_gpu: str, gpu_milli: str, expected: model.GpuRequest | None
) -> None:
    row = {"name": "t", "cpu_milli": "4000", "memory_mib": "1024", "num_gpu": num_gpu, "gpu_milli": gpu_milli}
    assert openb.pod_from_row(row).gpu == expected


def test_inflation_draws_until_the_target_share_of_gpus_and_is_seeded() -> None:
    tasks = [
        openb.pod_from_row(
            {"name": f"t{i}", "cpu_milli": "1", "memory_mib": "1", "num_gpu": str(i % 3), "gpu_milli": "1000"}
        )
        for i in range(9)
    ]
    drawn = openb.inflate(tasks, gpus=100, target=1.3, seed=7)
    demand = sum(openb.gpu_demand(p) for p in drawn)
    assert 130 <= demand < 130 + 2
    assert drawn == openb.inflate(tasks, gpus=100, target=1.3, seed=7)
    assert len({p.name for p in drawn}) == len(drawn)


# --- the command line -------------------------------------------------------------------------


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_replay_json_has_exactly_the_promised_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = write_csv(
        tmp_path / "nodes.csv",
        [
            {"sn": f"n{i}", "cpu_milli": "32000", "memory_mib": "65536", "gpu": "2", "model": "T4"}
            for i in range(3)
        ],
    )
    pods = write_csv(
        tmp_path / "pods.csv",
        [
            {"name": f"p{i}", "cpu_milli": "1000", "memory_mib": "1024", "num_gpu": "1", "gpu_milli": m}
            for i, m in enumerate(["1000", "470", "230", "1000", "1000", "1000", "1000", "1000"])
        ],
    )
    assert cli.main(["replay", "--nodes", str(nodes), "--pods", str(pods), "--output", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert list(document) == ["policies"]
    assert list(document["policies"]) == list(policies.NAMES)
    for figures in document["policies"].values():
        assert set(figures) == {"placed", "pending", "gpu_allocation_ratio", "fragmented_gpus"}
        assert figures["placed"] + figures["pending"] == 8
        assert isinstance(figures["placed"], int)
        assert isinstance(figures["gpu_allocation_ratio"], float)
    # 6 GPUs: the two MIG slices share one GPU under every policy but need it; one whole task waits.
    assert document["policies"]["first-fit"]["pending"] == 1


def test_replay_reads_kubernetes_lists_and_rejects_unknown_policies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items: list[dict[str, Any]] = [
        {
            "kind": "Node",
            "metadata": {"name": "n1", "labels": {}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "nvidia.com/gpu": "1"}},
        },
        *(
            {
                "kind": "Pod",
                "metadata": {
                    "name": f"p{i}",
                    "namespace": "d",
                    "creationTimestamp": f"2026-11-23T10:00:0{i}Z",
                },
                "spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
            }
            for i in range(2)
        ),
    ]
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    args = ["replay", "--nodes", str(path), "--pods", str(path), "--output", "json", "--policies", "fairpack"]
    assert cli.main(args) == 0
    assert json.loads(capsys.readouterr().out)["policies"]["fairpack"]["placed"] == 1
    assert cli.main([*args[:-1], "fairpack,round-robin"]) == 2
    items[1]["spec"]["containers"][0]["resources"]["limits"] = {"nvidia.com/mig-9g.99gb": "1"}
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert cli.main(args) == 2
    assert "no GPU model has a MIG profile '9g.99gb'" in capsys.readouterr().err


def test_replay_table_lists_every_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = write_csv(
        tmp_path / "nodes.csv",
        [{"sn": "n0", "cpu_milli": "8000", "memory_mib": "8192", "gpu": "1", "model": "G2"}],
    )
    pods = write_csv(
        tmp_path / "pods.csv",
        [{"name": "p0", "cpu_milli": "1000", "memory_mib": "1024", "num_gpu": "1", "gpu_milli": "320"}],
    )
    assert cli.main(["replay", "--nodes", str(nodes), "--pods", str(pods)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in policies.NAMES)
    assert "1 pods on 1 nodes" in out
