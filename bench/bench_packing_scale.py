"""Scale of the CP-SAT packer: time to a valid plan and quality versus the greedy default scheduler.

Clusters of 100, 1 000 and 5 000 nodes with 10 pods per node, generated as in the "Priority
Matters" experiment (ReplicaSets, cpu 100m..1000m, memory 100MB..1000MB, priorities 1..4,
utilisation 1.0). The default scheduler's model places the pods first; the packer then gets the
resulting cluster (placed pods movable and evictable, the rest pending) and one window.

"greedy s" and "plan s" are timed on fresh copies of the instance, so neither profits from arrays
the other built (the packer builds them inside its window too); "wall s" is the wall-clock time
around ``packing.solve``.

Run: ``.venv/bin/python -P bench/bench_packing_scale.py`` (defaults: --nodes 100,1000,5000
--windows 1 --workers 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from fairpack.solver import packing
from fairpack.solver.packing import greedy, validate, workloads


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", default="100,1000,5000")
    parser.add_argument("--pods-per-node", type=int, default=10)
    parser.add_argument("--utilisation", type=float, default=1.0)
    parser.add_argument("--windows", default="1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    console = Console(width=180)
    table = Table(title="CP-SAT packer at scale versus the default scheduler (greedy)")
    columns = (
        "nodes",
        "pods",
        "pending",
        "window s",
        "greedy s",
        "plan s",
        "wall s",
        "status",
        "model",
        "placed greedy",
        "placed plan",
        "Δ per priority 4..1",
        "moves",
        "evictions",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for nodes in [int(n) for n in args.nodes.split(",")]:
        scenario = workloads.Scenario(nodes, args.pods_per_node, 4, args.utilisation, args.seed)
        cluster, current = workloads.after_default_scheduler(scenario)
        pending = sum(1 for n in current.nodes if n is None)
        started = time.monotonic()
        hint = greedy.schedule(dataclasses.replace(cluster))
        greedy_s = time.monotonic() - started
        for window in [float(w) for w in args.windows.split(",")]:
            fresh = dataclasses.replace(cluster)  # no arrays cached from an earlier run
            started = time.monotonic()
            plan = packing.solve(fresh, settings=packing.Settings(window_s=window, num_workers=args.workers))
            wall_s = time.monotonic() - started
            assert validate.problems(cluster, plan.assignment) == []
            before = validate.score(cluster, hint).placed_by_priority
            tiers = sorted(before, reverse=True)
            delta = " ".join(f"{plan.placed_by_priority[p].after - before[p]:+d}" for p in tiers)
            after = sum(c.after for c in plan.placed_by_priority.values())
            table.add_row(
                str(nodes),
                str(len(cluster.pods)),
                str(pending),
                f"{window:g}",
                f"{greedy_s:.3f}",
                f"{plan.solve_s:.3f}",
                f"{wall_s:.3f}",
                str(plan.status),
                _model(plan),
                str(sum(before.values())),
                str(after),
                delta,
                str(len(plan.moves)),
                str(len(plan.evictions)),
            )
            console.log(f"{nodes} nodes, window {window:g}: {plan.status} in {plan.solve_s:.2f}s")
    console.print(table)
    return 0


def _model(plan: packing.Plan) -> str:
    """What CP-SAT modelled: no stage ran (the repair took the window), the whole instance, or a cut."""
    if not plan.stages:
        return "none"
    return "whole" if plan.complete else "neighbourhood"


if __name__ == "__main__":
    sys.exit(main())
