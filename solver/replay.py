"""Replay a stream of pods against a cluster, one placement policy at a time.

Pods are offered one by one in creation order; a pod whose deletion time has passed releases
what it held before the next pod is offered. Each pod goes to the node and devices its policy
chooses among the nodes where it fits now, or stays pending for good (no retries: the figure of
merit is what each policy leaves unplaced). Figures are taken when the last pod has been
offered; deletions after that are not applied.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fairpack.solver import fragmentation, model, policies
from fairpack.solver import occupancy as occ


@dataclass(frozen=True, slots=True)
class Settings:
    """How the replay treats the cluster."""

    dynamic_mig: bool = False
    """Treat every MIG-capable GPU outside the node's MIG layout as repartitionable on demand.
    Off by default: a Kubernetes node serves MIG only from the instances it advertises."""
    honour_deletions: bool = True
    """Release a pod's resources at its deletion time, if it has one."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one policy achieved."""

    placed: int
    pending: int
    gpus: float
    """GPUs of the cluster (whole GPUs, MIG GPUs counted by the slots their layout configures)."""
    allocated_gpus: float
    fragmented_gpus: float
    """Free GPU capacity a task drawn from the workload could not use (FGD's measure), in GPUs."""

    @property
    def gpu_allocation_ratio(self) -> float:
        return self.allocated_gpus / self.gpus if self.gpus else 0.0

    @property
    def unallocated_gpus(self) -> float:
        return self.gpus - self.allocated_gpus

    def as_json(self) -> dict[str, float | int]:
        return {
            "placed": self.placed,
            "pending": self.pending,
            "gpu_allocation_ratio": round(self.gpu_allocation_ratio, 6),
            "fragmented_gpus": round(self.fragmented_gpus, 6),
        }


def replay(
    nodes: Sequence[model.Node],
    pods: Sequence[model.Pod],
    policy: str,
    *,
    settings: Settings = Settings(),
    progress: Callable[[int], None] | None = None,
) -> tuple[Outcome, occ.Occupancy]:
    """Offer ``pods`` to ``policy`` on ``nodes``; the outcome and the final occupancy."""
    occupancy = occ.Occupancy(nodes, pods, dynamic_mig=settings.dynamic_mig)
    demands = [occupancy.demand(p) for p in pods]
    workload = fragmentation.Workload.of(demands, resources=occupancy.resources)
    chooser = policies.make(policy, occupancy, workload)
    order = sorted(range(len(pods)), key=lambda i: (pods[i].created, i))
    departures: list[tuple[float, int]] = []
    placed = 0
    for offered, i in enumerate(order):
        pod = pods[i]
        while departures and departures[0][0] <= pod.created:
            occupancy.remove(pods[heapq.heappop(departures)[1]].key)
        candidates = occupancy.candidates(demands[i])
        if len(candidates):
            occupancy.place(demands[i], chooser.choose(occupancy, demands[i], candidates))
            placed += 1
            if settings.honour_deletions and pod.deleted is not None:
                heapq.heappush(departures, (pod.deleted, i))
        if progress is not None:
            progress(offered + 1)
    total = float(occupancy.gpu_total.sum())
    outcome = Outcome(
        placed=placed,
        pending=len(pods) - placed,
        gpus=total,
        allocated_gpus=total - float(occupancy.gpu_free.sum()),
        fragmented_gpus=fragmentation.Table(occupancy, workload).total(),
    )
    return outcome, occupancy
