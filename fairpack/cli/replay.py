"""``fairpack replay``: offer a stream of pods to each placement policy and compare what they leave.

    fairpack replay --nodes FILE --pods FILE
                    [--policies least-allocated,best-fit,first-fit,fairpack] [--output table|json]
                    [--dynamic-mig | --static-mig] [--inflate FRACTION --seed N]

FILEs are Kubernetes Lists (JSON or YAML, as ``kubectl get nodes,pods -A -o json`` prints them;
the nodes file's Nodes and the pods file's Pods are used, finished pods are left out and a pod's
``spec.nodeName`` is ignored: the replay places it) or the openb trace's CSVs (node list and pod
list, see ``fairpack.solver.openb`` for how its tasks and GPU models are mapped). Pods arrive in
creation order and leave at their deletion time when they have one; a pod that fits nowhere
when it arrives stays pending. MIG: openb GPUs are repartitioned on demand (``--dynamic-mig``,
the default for CSVs); Kubernetes nodes serve MIG from their ``fairpack.io/mig-layout``
(``--static-mig``, the default for Lists). ``--inflate 1.3`` replaces the pods by tasks drawn
from them with replacement (seeded by ``--seed``) until they ask for 130% of the cluster's GPUs,
arriving in the order drawn and never leaving: the FGD paper's experiment.

``--output json`` prints only {"policies": {"<name>": {"placed": n, "pending": n,
"gpu_allocation_ratio": f, "fragmented_gpus": f}}} on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from fairpack.cli import options
from fairpack.solver import kube, model, openb, policies, replay

PROGRESS_EVERY = 200
"""Pods between progress-bar refreshes (a refresh per pod would cost more than the placement)."""


def register(subparsers: Any) -> None:
    """Add the ``replay`` sub-command."""
    parser = subparsers.add_parser(
        "replay",
        help="replay pods against nodes under each placement policy: placed, pending, GPU fragmentation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--nodes", required=True, type=Path, help="Kubernetes List or openb node CSV")
    parser.add_argument("--pods", required=True, type=Path, help="Kubernetes List or openb pod CSV")
    parser.add_argument(
        "--policies",
        default=",".join(policies.NAMES),
        help=f"comma-separated, from {','.join(policies.NAMES)}",
    )
    parser.add_argument("--output", choices=("table", "json"), default="table")
    mig = parser.add_mutually_exclusive_group()
    mig.add_argument("--dynamic-mig", dest="dynamic_mig", action="store_true", default=None)
    mig.add_argument("--static-mig", dest="dynamic_mig", action="store_false")
    parser.add_argument(
        "--inflate", type=float, metavar="FRACTION", help="draw tasks until this share of GPUs"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --inflate's draws")
    parser.set_defaults(handler=run)


def load_nodes(path: Path) -> list[model.Node]:
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return openb.nodes_from_rows(csv.DictReader(f))
    return list(kube.snapshot_from_list(_document(path)).nodes)


def load_pods(path: Path) -> list[model.Pod]:
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return openb.pods_from_rows(csv.DictReader(f))
    return list(kube.snapshot_from_list(_document(path)).pods)


def _document(path: Path) -> Mapping[str, Any]:
    text = path.read_text()
    document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(document, dict) or document.get("kind") != "List":
        raise ValueError(f"{path}: expected a Kubernetes List (kind: List)")
    return document


def run(args: argparse.Namespace) -> int:
    """Handler of ``fairpack replay``."""
    err = Console(stderr=True)
    try:
        names = options.choices(args.policies, known=policies.NAMES)
    except options.UnknownChoiceError as exc:
        err.print(f"[red]{exc}")
        return 2
    try:
        nodes, pods = load_nodes(args.nodes), load_pods(args.pods)
    except (OSError, ValueError, KeyError, yaml.YAMLError) as exc:
        err.print(f"[red]cannot read the inputs: {exc}")
        return 2
    if args.inflate is not None:
        gpus = float(sum(len(n.gpus) for n in nodes))
        pods = openb.inflate(pods, gpus=gpus, target=args.inflate, seed=args.seed)
    dynamic = args.dynamic_mig if args.dynamic_mig is not None else args.nodes.suffix == ".csv"
    try:
        results = replay_all(nodes, pods, names, settings=replay.Settings(dynamic_mig=dynamic), console=err)
    except ValueError as exc:  # a pod asking for a MIG profile no GPU model has
        err.print(f"[red]cannot replay: {exc}")
        return 2
    if args.output == "json":
        sys.stdout.write(json.dumps(as_json(results), indent=2) + "\n")
    else:
        Console().print(table(results, title=f"{len(pods)} pods on {len(nodes)} nodes"))
    return 0


def replay_all(
    nodes: Sequence[model.Node],
    pods: Sequence[model.Pod],
    names: Sequence[str],
    *,
    settings: replay.Settings,
    console: Console,
) -> dict[str, replay.Outcome]:
    """Every named policy on the same stream, with a progress bar on ``console``."""
    results: dict[str, replay.Outcome] = {}
    with Progress(console=console, transient=True) as progress:
        for name in names:
            task = progress.add_task(f"replaying {name}", total=len(pods))

            def advance(done: int, task: Any = task) -> None:
                if done % PROGRESS_EVERY == 0 or done == len(pods):
                    progress.update(task, completed=done)

            results[name], _ = replay.replay(nodes, pods, name, settings=settings, progress=advance)
    return results


def as_json(results: Mapping[str, replay.Outcome]) -> dict[str, Any]:
    """The ``--output json`` document."""
    return {"policies": {name: outcome.as_json() for name, outcome in results.items()}}


def table(results: Mapping[str, replay.Outcome], *, title: str) -> Table:
    out = Table(title=title)
    out.add_column("policy", no_wrap=True, min_width=max(map(len, results), default=6))
    for column in ("placed", "pending", "GPU allocation", "unallocated GPUs", "fragmented GPUs"):
        out.add_column(column, justify="right")
    for name, o in results.items():
        out.add_row(name, *outcome_cells(o))
    return out


def outcome_cells(o: replay.Outcome) -> tuple[str, ...]:
    """An outcome's placed, pending, GPU allocation, unallocated and fragmented GPUs, formatted."""
    return (
        str(o.placed),
        str(o.pending),
        f"{o.gpu_allocation_ratio:.1%}",
        f"{o.unallocated_gpus:.1f}",
        f"{o.fragmented_gpus:.1f}",
    )
