"""The "Priority Matters" seeds through the real kube-scheduler on KWOK nodes.

bench_packing_paper.py judges the CP-SAT packer against fairpack's *model* of kube-scheduler
(solver/packing/greedy.py). This bench runs the same scenarios through the real default
kube-scheduler of the local control plane (fairpack_dev.cluster, one for the whole run) and
compares three placements per scenario: the real scheduler's, the model's, and the packer's
(1 s window) starting from the real one.

Per scenario (the first kept seed of each cell, chosen as bench_packing_paper.kept_seeds does):
KWOK nodes sized exactly as workloads.pending_instance sizes them (cpu in millicores, memory in
bytes, 110 pods), labelled and tainted for this scenario only; one ReplicaSet per generated
ReplicaSet, in creation order, priorityClassName ``paper-<priority>``, schedulerName
default-scheduler (``--objects pods``: plain pods with the same requests instead, which the
default topology spreading leaves alone). ``--arrival batch`` (default) stops the scheduler while
they are created, so its queue holds every pod when it starts, as the model assumes: by priority,
then in the order the pods reached the queue (its informer's, not creation order as in the
model). ``--arrival live`` leaves it running: pods are scheduled as the ReplicaSet controller
creates them, and later higher-priority pods preempt. Once every pod is bound or Unschedulable
and nothing changed for ``--quiet`` seconds, the placement is read back: bound pods become running
(movable, evictable: ReplicaSet pods), unbound ones pending, and the packer gets that cluster.
Classes as in the paper (bench_packing_paper.outcome), over the seeds where the real scheduler
left pods pending.

Run (needs ``make binaries``; skipped with a message without them)::

    PYTHONPATH=hack .venv/bin/python -P bench/bench_packing_kube.py

Defaults: nodes {4,8,16} x pods per node {4,8} x K {1,2,4} x utilisation {0.95,1.00,1.05}, one
kept seed per cell (54 scenarios): about 12 minutes on two shared cores at load average 6 (7 with
``--objects pods``, 13 with ``--arrival live``), mostly the control plane (scheduler restart, nodes,
namespace, the quiet period), not the solver. Figures and their reading: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import pathlib
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from fairpack_dev import cluster as localcluster
from fairpack_dev import inventory, testkit
from kubernetes import client
from rich.console import Console
from rich.table import Table

from fairpack.solver import packing
from fairpack.solver.packing import instance as inst
from fairpack.solver.packing import validate, workloads

# Reuse the paper bench's seed choice and classes rather than restate them. ``python -P`` keeps the
# repo root (and the script's folder) off sys.path; appended, not prepended, so the root's
# ``operator`` folder cannot shadow the standard library's module.
sys.path.append(str(pathlib.Path(__file__).resolve().parent.parent))
from bench import bench_packing_paper as paper

PRIORITY_CLASS = "paper-{}"
"""PriorityClass of priority p (value p): the generator's priorities are 1..K."""
GPU_MODEL = "H100-80GB"
"""inventory.Pool needs one; the nodes get a GPU no pod asks for, which no default scorer reads."""


@dataclasses.dataclass(frozen=True, slots=True)
class Placement:
    """What one placement achieved: pods placed per priority and how many stayed pending."""

    placed: dict[int, int]
    pending: int

    @classmethod
    def of(cls, cluster: inst.Instance, assignment: inst.Assignment) -> Placement:
        placed = validate.score(cluster, assignment).placed_by_priority
        return cls(dict(sorted(placed.items())), sum(n is None for n in assignment.nodes))


def replica_sets(fresh: inst.Instance) -> list[tuple[str, list[int]]]:
    """(ReplicaSet name, its pods' positions) in creation order, named ``rs0000``, ``rs0001``..."""
    groups = itertools.groupby(range(len(fresh.pods)), key=lambda i: fresh.pods[i].key.rsplit("-", 1)[0])
    return [(f"rs{n:04d}", list(pods)) for n, (_, pods) in enumerate(groups)]


def manifests(
    objects: str, name: str, namespace: str, pod: inst.PackPod, replicas: int, group: testkit.NodeGroup
) -> list[Any]:
    """One generated ReplicaSet as a ReplicaSet, or as its pods (named ``<name>-<r>``, the same
    ``rs`` label, no owner): every pod selects and tolerates ``group`` only. Plain dicts, which
    the client accepts where it types its models."""
    cpu, memory, _ = pod.requests
    template = testkit.Pod(name, namespace).resources(cpu=f"{cpu}m", memory=str(memory)).on(group)
    spec = template.manifest()["spec"] | {"priorityClassName": PRIORITY_CLASS.format(pod.priority)}
    if objects == "pods":
        return [
            {
                "metadata": {"name": f"{name}-{r}", "namespace": namespace, "labels": {"rs": name}},
                "spec": spec,
            }
            for r in range(replicas)
        ]
    replica_set = {
        "replicas": replicas,
        "selector": {"matchLabels": {"rs": name}},
        "template": {"metadata": {"labels": {"rs": name}}, "spec": spec},
    }
    return [{"metadata": {"name": name, "namespace": namespace}, "spec": replica_set}]


def create_priority_classes(api: client.ApiClient, highest: int) -> None:
    scheduling = client.SchedulingV1Api(api)
    for p in range(1, highest + 1):
        body: Any = {"metadata": {"name": PRIORITY_CLASS.format(p)}, "value": p}
        scheduling.create_priority_class(body)


def decided(pod: Any) -> bool:
    """Bound, or the scheduler tried and found no node."""
    if pod.spec.node_name:
        return True
    scheduled = testkit.condition(pod, "PodScheduled")
    return scheduled is not None and scheduled.status == "False" and scheduled.reason == "Unschedulable"


def settle(
    core: client.CoreV1Api, namespace: str, total: int | None, *, quiet_s: float, timeout_s: float
) -> list[Any]:
    """The namespace's pods once there are ``total`` (None: plain pods, which a preemption deletes
    for good), all decided, none being deleted (a preemption victim), and no binding changed for
    ``quiet_s`` seconds."""
    last: object = None
    since = time.monotonic()
    deadline = since + timeout_s
    while True:
        pods: list[Any] = core.list_namespaced_pod(namespace).items
        snapshot = sorted(
            (p.metadata.name, p.spec.node_name, p.metadata.deletion_timestamp is None) for p in pods
        )
        now = time.monotonic()
        if snapshot != last:
            last, since = snapshot, now
        ready = total in (None, len(pods)) and all(
            p.metadata.deletion_timestamp is None and decided(p) for p in pods
        )
        if ready and now - since >= quiet_s:
            return pods
        if now > deadline:
            raise TimeoutError(f"{namespace}: not settled after {timeout_s} s")
        time.sleep(0.5)


def real_instance(
    fresh: inst.Instance, sets: list[tuple[str, list[int]]], pods: list[Any], group: testkit.NodeGroup
) -> inst.Instance:
    """``fresh`` with the real placement: bound pods running (movable, evictable) on their node.

    Replicas of one ReplicaSet are identical, so which generated pod a real one stands for is
    arbitrary; each ReplicaSet's bound pods fill its first positions."""
    node_of = {name: n for n, name in enumerate(group.names)}
    bound: dict[str, list[int]] = {name: [] for name, _ in sets}
    for p in pods:
        if p.spec.node_name:
            bound[p.metadata.labels["rs"]].append(node_of[p.spec.node_name])
    placed: list[int | None] = [None] * len(fresh.pods)
    for name, positions in sets:
        for position, node in zip(positions, sorted(bound[name]), strict=False):
            placed[position] = node
    return workloads.running(fresh, placed)


def run_scenario(
    local: localcluster.LocalCluster,
    api: client.ApiClient,
    scenario: workloads.Scenario,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Schedule one scenario for real, read the placement back, compare, clean up."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    fresh = workloads.pending_instance(scenario)
    cpu, memory, max_pods = fresh.nodes[0].allocatable
    pool = inventory.Pool(
        name="paper", model=GPU_MODEL, gpus=1, cpu=f"{cpu}m", memory=str(memory), pods=max_pods
    )
    sets = replica_sets(fresh)
    namespace = testkit.unique(f"paper-{scenario.nodes}-{scenario.seed}")
    paused = local.scheduler_paused() if args.arrival == "batch" else contextlib.nullcontext()
    with contextlib.ExitStack() as cleanup:
        with paused:
            group = testkit.create_group(api, pool, count=scenario.nodes, taint=True, timeout_s=120)
            cleanup.callback(testkit.delete_group, api, group)
            # The node lifecycle controller taints a new node not-ready until it sees it Ready.
            testkit.wait_for(lambda: only_own_taints(core, group), 60, what="nodes without not-ready taints")
            namespace_body: Any = {"metadata": {"name": namespace}}
            core.create_namespace(namespace_body)
            cleanup.callback(core.delete_namespace, namespace)
            testkit.wait_for(
                lambda: (
                    core.list_namespaced_service_account(
                        namespace, field_selector="metadata.name=default"
                    ).items
                ),
                60,
                what="the default ServiceAccount",
            )
            create = (
                core.create_namespaced_pod if args.objects == "pods" else apps.create_namespaced_replica_set
            )
            for name, positions in sets:
                pod = fresh.pods[positions[0]]
                for body in manifests(args.objects, name, namespace, pod, len(positions), group):
                    create(namespace, body)
            if args.arrival == "batch":
                testkit.wait_for(
                    lambda: len(core.list_namespaced_pod(namespace).items) == len(fresh.pods),
                    120,
                    what="every ReplicaSet's pods",
                )
        started = time.monotonic()
        total = len(fresh.pods) if args.objects == "replicasets" else None
        pods = settle(core, namespace, total, quiet_s=args.quiet, timeout_s=300)
        settled_s = time.monotonic() - started - args.quiet
        preempted = len(core.list_namespaced_event(namespace, field_selector="reason=Preempted").items)
    cluster = real_instance(fresh, sets, pods, group)
    real = Placement.of(cluster, inst.Assignment.current(cluster))
    model = Placement.of(*workloads.after_default_scheduler(scenario))
    plan = packing.solve(cluster, settings=packing.Settings(window_s=args.window, num_workers=args.workers))
    return {
        "cell": [scenario.nodes, scenario.pods_per_node, scenario.priorities, scenario.utilisation],
        "seed": scenario.seed,
        "real": dataclasses.asdict(real),
        "model": dataclasses.asdict(model),
        "packer": dataclasses.asdict(Placement.of(cluster, plan.assignment)),
        "class": paper.outcome(cluster, plan),
        "preempted": preempted,
        "settle_s": round(settled_s, 1),
        "solve_s": plan.solve_s,
    }


def only_own_taints(core: client.CoreV1Api, group: testkit.NodeGroup) -> bool:
    nodes: list[Any] = core.list_node(label_selector=f"{testkit.GROUP_LABEL}={group.key}").items
    return all([t.key for t in (n.spec.taints or ())] == [testkit.GROUP_LABEL] for n in nodes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    paper.add_grid_arguments(parser, nodes="4,8,16", utilisation="0.95,1.00,1.05")
    parser.add_argument("--arrival", choices=("batch", "live"), default="batch")
    parser.add_argument(
        "--objects",
        choices=("replicasets", "pods"),
        default="replicasets",
        help="pods: plain pods instead (no owner, so no default topology spreading)",
    )
    parser.add_argument("--quiet", type=float, default=4.0, help="seconds without a change that mean settled")
    parser.add_argument("--window", type=float, default=1.0, help="the packer's window in seconds")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="also write every run to this file")
    args = parser.parse_args(argv)
    scenarios = [s for cell in paper.grid(args) for s in paper.kept_seeds(cell, args.seeds, tries=args.tries)]
    console = Console(width=160)
    try:
        localcluster.binaries()
    except localcluster.BinariesMissingError as e:
        console.print(f"skipped: {e}")
        return 0
    runs = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as state:
        settings = localcluster.Settings(state_dir=pathlib.Path(state), inventory=None, verbosity=0)
        with localcluster.LocalCluster(settings) as local, local.api_client() as api:
            create_priority_classes(api, max(s.priorities for s in scenarios))
            for scenario in scenarios:
                run = run_scenario(local, api, scenario, args)
                runs.append(run)
                console.log(
                    f"{tuple(run['cell'])} seed {scenario.seed}: pending real {run['real']['pending']}"
                    f" model {run['model']['pending']}, {run['class']}, settled in {run['settle_s']} s,"
                    f" {time.monotonic() - started:.0f} s"
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)
    console.print(_table(runs, args))
    return 0


def _table(runs: list[dict[str, Any]], args: argparse.Namespace) -> Table:
    table = Table(
        title=f"Real kube-scheduler ({args.arrival} arrival) vs fairpack's model vs CP-SAT {args.window:g} s"
        " from the real placement; classes over the seeds the real scheduler left pods pending"
    )
    columns = ("nodes", "runs", "real left pending", "pending real", "pending model", "same as model")
    for column in (*columns, "preempted", *paper.CLASSES, "improved %"):
        table.add_column(column, justify="right")
    for nodes in [*sorted({r["cell"][0] for r in runs}), "all"]:
        chosen = [r for r in runs if nodes == "all" or r["cell"][0] == nodes]
        pending = [r for r in chosen if r["real"]["pending"]]
        counts = Counter(str(r["class"]) for r in pending)
        improved = counts["better"] + counts["better+optimal"]
        table.add_row(
            str(nodes),
            str(len(chosen)),
            str(len(pending)),
            str(sum(r["real"]["pending"] for r in chosen)),
            str(sum(r["model"]["pending"] for r in chosen)),
            str(sum(r["real"]["placed"] == r["model"]["placed"] for r in chosen)),
            str(sum(r["preempted"] for r in chosen)),
            *(str(counts[c]) for c in paper.CLASSES),
            f"{100 * improved / max(1, len(pending)):.0f}",
        )
    return table


if __name__ == "__main__":
    sys.exit(main())
