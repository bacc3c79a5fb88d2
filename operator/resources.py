"""CPU, memory and GPUs as the queue counts them: node capacity, pod requests, what is free.

Pure: node and pod dicts in. Aggregate over the cluster (not per node): the queue decides
*whether* a job's pods may start; where they go is the scheduler's (and the packer's) job.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fairpack.solver import kube, labels, model, quantity

TERMINAL = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Resources:
    """Cores, bytes of memory and whole GPUs."""

    cpu: float = 0.0
    memory: float = 0.0
    gpus: float = 0.0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.memory + other.memory, self.gpus + other.gpus)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu - other.cpu, self.memory - other.memory, self.gpus - other.gpus)

    def fits_in(self, other: Resources) -> bool:
        """Whether every amount here is at most the one in ``other``."""
        eps = 1e-9
        return (
            self.cpu <= other.cpu + eps
            and self.memory <= other.memory + eps
            and self.gpus <= other.gpus + eps
        )

    def scaled(self, factor: int) -> Resources:
        return Resources(self.cpu * factor, self.memory * factor, self.gpus * factor)


def parse(amounts: Mapping[str, Any] | None, *, where: str = "") -> Resources:
    """A requests/allocatable map as Resources (other resources are ignored)."""
    counted = (model.CPU, model.MEMORY, labels.GPU_RESOURCE)
    parsed = {
        name: quantity.amount(name, value, where=f"{where}.{name}" if where else name)
        for name, value in (amounts or {}).items()
        if name in counted and value is not None
    }
    return _aggregate(model.Resources.of(parsed))


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    """The pod's effective request as Kubernetes computes it (init and sidecar containers, overhead)."""
    meta = pod.get("metadata") or {}
    where = f"pod {meta.get('namespace', '')}/{meta.get('name', '')}"
    return _aggregate(kube.effective_requests(pod.get("spec") or {}, where))


def _aggregate(amounts: model.Resources) -> Resources:
    # The solver counts cpu in millicores; the queue's shares are in cores.
    return Resources(
        cpu=amounts.amount(model.CPU) / 1000,
        memory=float(amounts.amount(model.MEMORY)),
        gpus=float(amounts.amount(labels.GPU_RESOURCE)),
    )


def is_gated(pod: Mapping[str, Any]) -> bool:
    """Whether the pod still waits for admission."""
    gates = pod.get("spec", {}).get("schedulingGates") or ()
    return any(g.get("name") == labels.ADMISSION_GATE for g in gates)


def holds_capacity(pod: Mapping[str, Any]) -> bool:
    """A pod counts against capacity once it may be scheduled and until it ends."""
    return (pod.get("status") or {}).get("phase") not in TERMINAL and not is_gated(pod)


def node_is_usable(node: Mapping[str, Any]) -> bool:
    if node.get("spec", {}).get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def parse_selector(text: str) -> dict[str, str]:
    """``key=value,key=value`` as a dict (the pool setting's format)."""
    return dict(part.split("=", 1) for part in text.split(",") if part.strip())


def matches(labels_: Mapping[str, str] | None, selector: Mapping[str, str]) -> bool:
    return all((labels_ or {}).get(k) == v for k, v in selector.items())


def pool_nodes(nodes: Iterable[Mapping[str, Any]], selector: Mapping[str, str]) -> list[Mapping[str, Any]]:
    """The Ready, schedulable nodes the selector picks (all of them for an empty selector)."""
    return [n for n in nodes if node_is_usable(n) and matches(n["metadata"].get("labels"), selector)]


def capacity(nodes: Iterable[Mapping[str, Any]]) -> Resources:
    """Allocatable resources of the nodes."""
    total = Resources()
    for node in nodes:
        where = f"node {node.get('metadata', {}).get('name', '')}: status.allocatable"
        total = total + parse((node.get("status") or {}).get("allocatable"), where=where)
    return total


def used(
    pods: Iterable[Mapping[str, Any]], *, nodes: Iterable[Mapping[str, Any]], selector: Mapping[str, str]
) -> Resources:
    """Requests of the pods that hold capacity of the pool: bound to one of its ``nodes``, or not yet
    bound and constrained to it by their nodeSelector. With an empty selector, every such pod."""
    names = {n["metadata"]["name"] for n in nodes}
    total = Resources()
    for pod in pods:
        if not holds_capacity(pod):
            continue
        node = pod.get("spec", {}).get("nodeName")
        bound_here = node in names if node else matches(pod.get("spec", {}).get("nodeSelector"), selector)
        if bound_here or not selector:
            total = total + pod_requests(pod)
    return total


def demand_units(request: Resources, total: Resources, *, units: float) -> int:
    """A job's UWFQ demand: its dominant share of the cluster in ``units`` (at least 1)."""
    shares = [
        need / have
        for need, have in (
            (request.cpu, total.cpu),
            (request.memory, total.memory),
            (request.gpus, total.gpus),
        )
        if have > 0
    ]
    return max(1, math.ceil(max(shares, default=1.0) * units - 1e-9))
