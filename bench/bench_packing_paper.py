"""Reproduce "Priority Matters" (arXiv 2511.08373): CP-SAT fallback versus the default scheduler.

For every cell of the paper's grid (nodes x pods per node x priorities K x utilisation) and every
seed where the default scheduler (fairpack's model of kube-scheduler) leaves pods pending, run
the packer with each window and sort the outcome into the paper's classes:

- better: more pods of some priority placed, no fewer of any higher one;
- better and proven optimal: ... and CP-SAT proved it (status OPTIMAL);
- default proven optimal: not better, and the default's placement proven optimal;
- failure: neither better nor proven.

Run: ``.venv/bin/python bench/bench_packing_paper.py`` (defaults: the full grid, 1 kept seed per
cell, a 1 s window, num_workers 2: about 2 minutes, what ``make bench`` runs); the figures in
docs/benchmarks.md come from ``--seeds 3 --windows 1`` and ``--seeds 1 --windows 10 --nodes 16,32``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from fairpack.solver import packing
from fairpack.solver.packing import validate, workloads

CLASSES = ("better", "better+optimal", "default optimal", "failure")


def outcome(cluster: packing.instance.Instance, plan: packing.Plan) -> str:
    """The paper's class of one run (tiers only: the default disturbs nothing)."""
    default = validate.score(cluster, packing.instance.Assignment.current(cluster))
    found = validate.score(cluster, plan.assignment)
    tiers = sorted(default.placed_by_priority, reverse=True)
    better = [found.placed_by_priority[p] for p in tiers] > [default.placed_by_priority[p] for p in tiers]
    proven = plan.status is packing.Status.OPTIMAL
    if better:
        return "better+optimal" if proven else "better"
    return "default optimal" if proven else "failure"


def kept_seeds(cell: tuple[int, int, int, float], count: int, *, tries: int) -> list[workloads.Scenario]:
    """The first ``count`` seeds whose default placement leaves pods pending."""
    kept = []
    for seed in range(tries):
        scenario = workloads.Scenario(*cell, seed=seed)
        _cluster, current = workloads.after_default_scheduler(scenario)
        if any(n is None for n in current.nodes):
            kept.append(scenario)
        if len(kept) == count:
            break
    return kept


def add_grid_arguments(parser: argparse.ArgumentParser, *, nodes: str, utilisation: str) -> None:
    """The grid's options (comma-separated values per axis) and how many seeds to keep per cell."""
    parser.add_argument("--nodes", default=nodes)
    parser.add_argument("--pods-per-node", default="4,8")
    parser.add_argument("--priorities", default="1,2,4")
    parser.add_argument("--utilisation", default=utilisation)
    parser.add_argument("--seeds", type=int, default=1, help="kept seeds per cell")
    parser.add_argument("--tries", type=int, default=30, help="seeds tried per cell to find them")


def grid(args: argparse.Namespace) -> list[tuple[int, int, int, float]]:
    """The cells (nodes, pods per node, K, utilisation) the grid options name."""
    return list(
        itertools.product(
            [int(x) for x in args.nodes.split(",")],
            [int(x) for x in args.pods_per_node.split(",")],
            [int(x) for x in args.priorities.split(",")],
            [float(x) for x in args.utilisation.split(",")],
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_grid_arguments(parser, nodes="4,8,16,32", utilisation="0.90,0.95,1.00,1.05")
    parser.add_argument("--windows", default="1", help="solver windows in seconds, comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="also write every run to this file")
    parser.add_argument(
        "--keep-in-place",
        action="store_true",
        help="Settings.keep_in_place: tier stages prefer pods left in place",
    )
    args = parser.parse_args(argv)
    windows = [float(w) for w in args.windows.split(",")]
    console = Console(width=160)
    runs = []
    started = time.monotonic()
    for cell in grid(args):
        for scenario in kept_seeds(cell, args.seeds, tries=args.tries):
            cluster, _ = workloads.after_default_scheduler(scenario)
            for window in windows:
                settings = packing.Settings(
                    window_s=window, num_workers=args.workers, keep_in_place=args.keep_in_place
                )
                plan = packing.solve(cluster, settings=settings)
                runs.append(
                    {
                        "cell": cell,
                        "seed": scenario.seed,
                        "window": window,
                        "class": outcome(cluster, plan),
                        "solve_s": plan.solve_s,
                        # what the plan costs the running pods (a fallback controller evicts to move)
                        "moves": len(plan.moves),
                        "evictions": len(plan.evictions),
                        "placed": {str(p): c.after for p, c in plan.placed_by_priority.items()},
                        # which stage a plan that is not OPTIMAL left unproven
                        "stages": [[st.name, st.status, st.value, st.bound] for st in plan.stages],
                    }
                )
        console.log(f"{cell} done, {time.monotonic() - started:.0f}s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)
    console.print(_cells(runs))
    console.print(_table(runs, windows))
    return 0


def _cells(runs: list[dict[str, object]]) -> Table:
    """The paper's classes per cell of the grid and window, as the paper reports them."""
    table = Table(title="Per cell: runs in each class (better / better+optimal / default optimal / failure)")
    for column in ("nodes", "pods/node", "K", "utilisation", "window s", "runs", *CLASSES):
        table.add_column(column, justify="right")
    keys = sorted({(*r["cell"], r["window"]) for r in runs})  # type: ignore[misc]
    for key in keys:
        chosen = [r for r in runs if (*r["cell"], r["window"]) == key]  # type: ignore[misc]
        counts = Counter(str(r["class"]) for r in chosen)
        nodes, per_node, priorities, utilisation, window = key
        table.add_row(
            str(nodes),
            str(per_node),
            str(priorities),
            f"{utilisation:.2f}",
            f"{window:g}",
            str(len(chosen)),
            *(str(counts[c]) for c in CLASSES),
        )
    return table


def _table(runs: list[dict[str, object]], windows: list[float]) -> Table:
    table = Table(title="Priority Matters grid: CP-SAT fallback vs default scheduler (share of kept seeds)")
    for column in ("nodes", "window s", "runs", *CLASSES, "improved %", "moves", "evictions"):
        table.add_column(column, justify="right")
    by_size = sorted({(r["cell"][0], r["window"]) for r in runs})  # type: ignore[index]
    for nodes, window in [*by_size, *[("all", w) for w in windows]]:
        chosen = [r for r in runs if r["window"] == window and (nodes == "all" or r["cell"][0] == nodes)]  # type: ignore[index]
        counts = Counter(str(r["class"]) for r in chosen)
        improved = counts["better"] + counts["better+optimal"]
        table.add_row(
            str(nodes),
            f"{window:g}",
            str(len(chosen)),
            *(str(counts[c]) for c in CLASSES),
            f"{100 * improved / max(1, len(chosen)):.0f}",
            str(sum(int(r["moves"]) for r in chosen)),  # type: ignore[call-overload]
            str(sum(int(r["evictions"]) for r in chosen)),  # type: ignore[call-overload]
        )
    return table


if __name__ == "__main__":
    sys.exit(main())
