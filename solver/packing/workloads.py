"""Instance generators: the "Priority Matters" experiment and its scaled-up variant.

Christensen, Giallorenzo and Mauro (arXiv 2511.08373) build each scenario from ReplicaSets of 1 to
4 replicas whose pods request cpu uniform in 100m..1000m and memory uniform in 100MB..1000MB, with a
priority uniform in 1..K. The nodes are identical, each resource sized as
``max(largest pod request, ceil(total requests / utilisation / nodes))``. The default scheduler
places the pods; scenarios where it leaves some pending are the ones the solver is asked about.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from fairpack.solver.packing import greedy
from fairpack.solver.packing import instance as inst

RESOURCES = ("cpu", "memory", "pods")
MAX_PODS = 110
"""kubelet's default pod capacity."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One cell of the paper's grid with a seed."""

    nodes: int
    pods_per_node: int
    priorities: int
    """K: priorities are drawn uniformly from 1..K."""
    utilisation: float
    seed: int


def pending_instance(s: Scenario) -> inst.Instance:
    """All pods of the scenario pending on its empty nodes, in ReplicaSet creation order."""
    rng = random.Random(f"{s.nodes}/{s.pods_per_node}/{s.priorities}/{s.utilisation}/{s.seed}")
    total = s.nodes * s.pods_per_node
    everywhere = frozenset(range(s.nodes))
    pods: list[inst.PackPod] = []
    replica_set = 0
    while len(pods) < total:
        cpu, memory = rng.randint(100, 1000), rng.randint(100, 1000) * 1_000_000
        priority = rng.randint(1, s.priorities)
        for r in range(min(rng.randint(1, 4), total - len(pods))):
            key = f"default/rs{replica_set}-{r}"
            pods.append(inst.PackPod(key, priority, (cpu, memory, 1), everywhere, order=len(pods)))
        replica_set += 1
    sizes = [
        max(
            max(p.requests[r] for p in pods),
            math.ceil(sum(p.requests[r] for p in pods) / s.utilisation / s.nodes),
        )
        for r in range(2)
    ]
    nodes = tuple(inst.PackNode(f"node-{n}", (sizes[0], sizes[1], MAX_PODS)) for n in range(s.nodes))
    return inst.Instance(RESOURCES, nodes, tuple(pods))


def after_default_scheduler(
    s: Scenario, *, settings: greedy.Settings | None = None
) -> tuple[inst.Instance, inst.Assignment]:
    """The cluster once the default scheduler has placed what it could.

    Placed pods become running (movable and evictable: ReplicaSet pods), the rest stay pending.
    Returns the instance and its current assignment (the default scheduler's result).
    """
    fresh = pending_instance(s)
    placed = greedy.schedule(fresh, settings=settings or greedy.Settings())
    cluster = running(fresh, placed.nodes)
    return cluster, inst.Assignment.current(cluster)


def running(fresh: inst.Instance, nodes: Sequence[int | None]) -> inst.Instance:
    """``fresh`` once a scheduler put pod ``i`` on node ``nodes[i]`` (None: left pending).

    Placed pods become running, movable and evictable (ReplicaSet pods)."""
    pods = tuple(
        p if n is None else dataclasses.replace(p, node=n, movable=True, evictable=True)
        for p, n in zip(fresh.pods, nodes, strict=True)
    )
    return inst.Instance(fresh.resources, fresh.nodes, pods)
