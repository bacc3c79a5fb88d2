"""``fairpack plan SNAPSHOT``: what the CP-SAT fallback would do with a cluster snapshot.

SNAPSHOT is a Kubernetes ``kind: List`` of Nodes and Pods exactly as
``kubectl get nodes,pods -A -o json`` prints it (``-`` reads standard input); pods with
``spec.nodeName`` are running there, the others are pending. The plan is printed as tables
(moves, evictions, newly placed pods, pods placed per priority before and after) or, with
``--output json``, as one object::

    {"status": "OPTIMAL"|"FEASIBLE"|"GREEDY", "window_s": f, "solve_s": f,
     "placements": [{"pod": "ns/name", "node": "n"}, ...],
     "moves": [{"pod": "ns/name", "from": "a", "to": "b"}], "evictions": ["ns/name", ...],
     "placed_by_priority": {"<priority>": {"before": n, "after": n}}}

Exit status: 0 with a plan (whatever its status), 2 when the snapshot cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from fairpack.solver import kube, packing
from fairpack.solver.packing import adapter


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``plan`` to the ``fairpack`` command."""
    parser = subparsers.add_parser(
        "plan",
        help="re-plan a cluster snapshot with the CP-SAT packer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("snapshot", metavar="SNAPSHOT", help="kubectl get nodes,pods -A -o json output, or -")
    parser.add_argument(
        "--window", type=float, default=1.0, metavar="SECONDS", help="solver time budget (1.0)"
    )
    parser.add_argument("--output", choices=("table", "json"), default="table")
    parser.add_argument(
        "--max-evictions", type=int, default=None, metavar="N", help="most pods left unplaced"
    )
    parser.add_argument("--workers", type=int, default=2, help="CP-SAT search workers (2)")
    parser.add_argument(
        "--keep-in-place",
        action="store_true",
        help="tier stages prefer plans that leave running pods where they are (fewer moves)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Read the snapshot, solve, print; the ``handler`` of ``fairpack plan``."""
    errors = Console(stderr=True)
    try:
        document = _read(args.snapshot)
        instance = adapter.instance_from_snapshot(kube.snapshot_from_list(document))
    except (OSError, ValueError) as error:  # kube.InvalidObjectError and JSON errors are ValueErrors
        errors.print(f"[red]fairpack plan: {error}[/red]")
        return 2
    settings = packing.Settings(
        window_s=args.window,
        max_evictions=args.max_evictions,
        num_workers=args.workers,
        keep_in_place=args.keep_in_place,
    )
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    ) as progress:
        task = progress.add_task("greedy hint and model", total=None)

        def stage(name: str, number: int, count: int) -> None:
            progress.update(
                task, description=f"stage {number}/{count}: {name}", completed=number - 1, total=count
            )

        plan = packing.solve(instance, settings=settings, progress=stage)
    if args.output == "json":
        print(json.dumps(plan.to_json(), indent=2))
    else:
        _print_tables(Console(), plan)
    return 0


def _read(path: str) -> Any:
    if path == "-":
        return json.load(sys.stdin)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _print_tables(console: Console, plan: packing.Plan) -> None:
    console.print(
        f"[bold]{plan.status}[/bold] in {plan.solve_s:.2f}s of a {plan.window_s:g}s window"
        f" (gap {plan.gap:.1%}, {'whole cluster' if plan.complete else 'neighbourhood of a large cluster'})"
    )
    tiers = Table(title="Pods placed per priority")
    for column in ("priority", "before", "after", "change"):
        tiers.add_column(column, justify="right")
    for priority, count in sorted(plan.placed_by_priority.items(), reverse=True):
        tiers.add_row(str(priority), str(count.before), str(count.after), f"{count.after - count.before:+d}")
    console.print(tiers)
    if plan.moves:
        moves = Table(title="Moves")
        for column in ("pod", "from", "to"):
            moves.add_column(column)
        for move in plan.moves:
            moves.add_row(move.pod, move.source, move.target)
        console.print(moves)
    if plan.evictions:
        evictions = Table(title="Evictions")
        evictions.add_column("pod")
        for pod in plan.evictions:
            evictions.add_row(pod)
        console.print(evictions)
    if plan.started:
        started = Table(title="Pending pods placed")
        for column in ("pod", "node", "MIG instance"):
            started.add_column(column)
        for pod in plan.started:
            started.add_row(pod, plan.placements[pod], plan.mig_instances.get(pod, ""))
        console.print(started)
