"""GPU fragmentation benchmark: placement policies side by side on the openb trace and a MIG stream.

1. openb (Alibaba's GPU trace, the FGD paper's): ``default`` and ``multigpu50`` task lists,
   inflated to 100% and 130% of the cluster's 6,212 GPUs (tasks drawn with replacement, seeded,
   arriving in the order drawn and never leaving, as in the paper), replayed on the 1,213 nodes
   with dynamic MIG (single-GPU shares below a whole GPU become MIG instances; see
   ``fairpack.solver.openb``). Figures are taken after the last arrival.
2. A synthetic MIG stream on 240 nodes (H100 with two NVLink islands of 4, A100-80GB and
   A100-40GB): whole-GPU, multi-GPU (some requiring one island) and MIG requests arrive as a
   Poisson stream and leave after exponential lifetimes, at about 110% of the GPUs offered.

Every policy (least-allocated, best-fit, first-fit, fairpack's FGD score) runs on the same
stream in one run. Columns: pods placed and pending, GPU allocation, unallocated and fragmented
GPUs (free capacity a task drawn from the workload could not use), and fairpack's unallocated
GPUs as a ratio of the best baseline's (< 1 is better; the FGD paper reports down to 0.51 at 130%).

    .venv/bin/python bench/bench_fragmentation.py [--seed N]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fairpack.cli import replay as replay_cli
from fairpack.solver import gpumodels, labels, model, openb, policies, replay

OPENB = Path("/work/shared/data/openb")
"""Where the openb CSVs are (the trace may not be shipped inside the product); ``--openb`` overrides."""
BASELINES = ("least-allocated", "best-fit", "first-fit")


def openb_rows(folder: Path, name: str) -> list[dict[str, str]]:
    with (folder / name).open(newline="") as f:
        return list(csv.DictReader(f))


def run_all(
    nodes: Sequence[model.Node], pods: Sequence[model.Pod], *, dynamic_mig: bool
) -> dict[str, tuple[replay.Outcome, float]]:
    results = {}
    for name in policies.NAMES:
        start = time.perf_counter()
        outcome, _ = replay.replay(nodes, pods, name, settings=replay.Settings(dynamic_mig=dynamic_mig))
        results[name] = (outcome, time.perf_counter() - start)
    return results


def add_rows(table: Table, case: str, results: dict[str, tuple[replay.Outcome, float]]) -> float:
    """Rows of one case; returns fairpack's unallocated GPUs over the best baseline's."""
    best = min(results[b][0].unallocated_gpus for b in BASELINES)
    ratio = results["fairpack"][0].unallocated_gpus / best if best else 1.0
    for i, (name, (o, seconds)) in enumerate(results.items()):
        table.add_row(
            case if i == 0 else "",
            name,
            *replay_cli.outcome_cells(o),
            f"{o.unallocated_gpus / best:.2f}" if best else "-",
            f"{seconds:.1f}",
            end_section=i == len(results) - 1,
        )
    return ratio


def mig_cluster() -> list[model.Node]:
    """240 nodes: 80 H100 x8 in two NVLink islands, 80 A100-80GB x8, 80 A100-40GB x4."""
    nodes = []
    for i in range(240):
        kind = ("H100-80GB", "A100-80GB", "A100-40GB")[i % 3]
        gpu_model = gpumodels.by_name(kind)
        count = 4 if kind == "A100-40GB" else 8
        islands = ((0, 1, 2, 3), (4, 5, 6, 7)) if kind == "H100-80GB" else ()
        island_of = {g: n for n, island in enumerate(islands) for g in island}
        nodes.append(
            model.Node(
                name=f"{kind.lower()}-{i:03d}",
                allocatable=model.Resources.of(cpu=128_000, memory=1024 * 2**30, pods=110),
                labels={labels.GPU_PRODUCT_LABEL: gpu_model.product},
                gpus=tuple(
                    model.Gpu(g, gpu_model, gpu_model.product, gpu_model.memory_mib, island_of.get(g))
                    for g in range(count)
                ),
                islands=islands,
            )
        )
    return nodes


MIG_MIX: tuple[tuple[float, model.GpuRequest], ...] = (
    (0.30, model.GpuRequest(1)),
    (0.08, model.GpuRequest(2)),
    (0.05, model.GpuRequest(4, require_island=True)),
    (0.03, model.GpuRequest(8)),
    (0.20, model.GpuRequest(mig_profile="1g")),
    (0.14, model.GpuRequest(mig_profile="2g")),
    (0.12, model.GpuRequest(mig_profile="3g")),
    (0.08, model.GpuRequest(mig_profile="4g")),
)
"""Request mix of the synthetic stream: share of pods, request."""


def mig_stream(
    nodes: Sequence[model.Node], *, seed: int, load: float = 1.1, pods: int = 6000
) -> list[model.Pod]:
    """A Poisson stream whose mean GPUs in use would be ``load`` x the cluster's with no rejections."""
    rng = random.Random(seed)
    weights = [w for w, _ in MIG_MIX]
    mean_gpus = sum(w * openb.gpu_demand(model.Pod("x", "x", gpu=r)) for w, r in MIG_MIX)
    gpus = sum(len(n.gpus) for n in nodes)
    lifetime = 1000.0
    rate = load * gpus / (mean_gpus * lifetime)  # Little's law: in use = rate x lifetime x mean size
    now, stream = 0.0, []
    for i in range(pods):
        now += rng.expovariate(rate)
        request = rng.choices([r for _, r in MIG_MIX], weights)[0]
        cpu = 4000 * max(1, request.count)
        stream.append(
            model.Pod(
                "mig",
                f"pod-{i}",
                requests=model.Resources.of(cpu=cpu, memory=16 * 2**30 * max(1, request.count), pods=1),
                gpu=request,
                created=now,
                deleted=now + rng.expovariate(1 / lifetime),
            )
        )
    return stream


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--openb", type=Path, default=OPENB, help="folder of the openb CSVs")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    console = Console(width=130)  # the table is wider than a pipe's default 80 columns
    table = Table(title="GPU fragmentation: placement policies side by side")
    for column in (
        "case",
        "policy",
        "placed",
        "pending",
        "GPU alloc",
        "unalloc GPUs",
        "frag GPUs",
        "vs best",
        "s",
    ):
        table.add_column(column, justify="left" if column in ("case", "policy") else "right")
    nodes = openb.nodes_from_rows(openb_rows(args.openb, "openb_node_list_gpu_node.csv"))
    gpus = float(sum(len(n.gpus) for n in nodes))
    figures: dict[str, dict[str, object]] = {}
    for trace in ("default", "multigpu50"):
        tasks = openb.pods_from_rows(openb_rows(args.openb, f"openb_pod_list_{trace}.csv"))
        for target in (1.0, 1.3):
            pods = openb.inflate(tasks, gpus=gpus, target=target, seed=args.seed)
            case = f"openb {trace} {target:.0%}"
            console.print(f"{case}: {len(pods)} tasks on {len(nodes)} nodes ({gpus:.0f} GPUs)")
            results = run_all(nodes, pods, dynamic_mig=True)
            figures[case] = {"vs_best": add_rows(table, case, results)} | {
                n: o.as_json() | {"unallocated_gpus": round(o.unallocated_gpus, 3)}
                for n, (o, _) in results.items()
            }
    mig_nodes = mig_cluster()
    stream = mig_stream(mig_nodes, seed=args.seed)
    case = "MIG stream 110%"
    console.print(f"{case}: {len(stream)} pods on {len(mig_nodes)} nodes")
    results = run_all(mig_nodes, stream, dynamic_mig=True)
    figures[case] = {"vs_best": add_rows(table, case, results)} | {
        n: o.as_json() | {"unallocated_gpus": round(o.unallocated_gpus, 3)} for n, (o, _) in results.items()
    }
    console.print(table)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
