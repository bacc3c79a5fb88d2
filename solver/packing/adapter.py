"""From the cluster model (:mod:`fairpack.solver.model`) to a packing instance, and who may be moved.

Which running pods the plan may disturb, and why:

- **pinned** (stay where they are): pods in ``kube-system``, pods without a controller (nobody
  would recreate them), DaemonSet-style pods (required affinity on ``metadata.name``: they
  belong to their node), system-critical priorities (>= 2 000 000 000), pods being deleted, and
  running pods their node no longer admits (a label or taint changed since: required affinity is
  IgnoredDuringExecution, so they may stay, but the model cannot re-place them there);
- **movable and evictable**: every other running pod. A move is an eviction whose replacement
  the plan puts on another node; an eviction leaves the replacement pending.

MIG: GPUs the node's ``fairpack.io/mig-layout`` lists are in MIG mode and repartitionable (the
dynamic model of :mod:`fairpack.solver.mig`): a MIG pod needs a free slot run of its profile's
geometry. A running MIG pod holds the instance its ``fairpack.io/mig-instance`` annotation
names, or else a configured instance of its profile on its node. MIG extended resources are
therefore not counted as scalar resources.

Not modelled, said here: NVLink islands beyond pruning (a pod that requires one island of k
GPUs is only offered nodes that have such an island), preferred affinity, pod (anti-)affinity
and topology spread constraints.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fairpack.solver import kube, labels, mig, model
from fairpack.solver.packing import instance as inst

logger = logging.getLogger(__name__)

SYSTEM_NAMESPACE = "kube-system"
SYSTEM_PRIORITY = 2_000_000_000
"""``system-cluster-critical`` and above: never moved by fairpack."""


def instance_from_snapshot(snapshot: model.Snapshot) -> inst.Instance:
    """The packing instance of a cluster snapshot (pods sorted by creation, nodes as listed)."""
    nodes = snapshot.nodes
    resources = _resources(nodes, snapshot.pods)
    names = {n.name: i for i, n in enumerate(nodes)}
    pods = sorted(snapshot.pods, key=lambda p: (p.created, p.key))
    eligible: dict[object, frozenset[int]] = {}
    packed = []
    for order, pod in enumerate(pods):
        signature = _signature(pod)
        if signature not in eligible:
            eligible[signature] = frozenset(
                i for i, n in enumerate(nodes) if not n.unschedulable and model.static_misfit(pod, n) is None
            )
        packed.append(_pod(pod, order, resources, eligible[signature], nodes, names))
    return inst.Instance(
        resources,
        tuple(_node(n, resources) for n in nodes),
        tuple(_claim_configured_instances(packed, nodes)),
    )


def instance_from_dicts(
    nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]]
) -> inst.Instance:
    """The packing instance of listed Node and Pod objects (the fallback controller's builder)."""
    return instance_from_snapshot(kube.snapshot_from_dicts(nodes, pods))


def _resources(nodes: Iterable[model.Node], pods: Iterable[model.Pod]) -> tuple[str, ...]:
    found = {name for n in nodes for name in n.allocatable} | {name for p in pods for name in p.requests}
    found |= {model.CPU, model.MEMORY, model.PODS}
    scalar = sorted(r for r in found if not r.startswith(labels.MIG_RESOURCE_PREFIX))
    # cpu and memory first: the greedy scorer and the symmetry rule look for them by name anyway.
    return tuple(sorted(scalar, key=lambda r: (r not in (model.CPU, model.MEMORY), r)))


def _signature(pod: model.Pod) -> object:
    return (tuple(sorted(pod.node_selector.items())), pod.affinity, pod.tolerations, pod.gpu)


def _node(node: model.Node, resources: tuple[str, ...]) -> inst.PackNode:
    gpus = tuple(
        inst.MigGpu(g.index, g.model) for g in node.gpus if g.index in node.mig_gpus and g.model is not None
    )
    return inst.PackNode(node.name, tuple(node.allocatable.amount(r) for r in resources), gpus)


def _pod(
    pod: model.Pod,
    order: int,
    resources: tuple[str, ...],
    eligible: frozenset[int],
    nodes: tuple[model.Node, ...],
    names: dict[str, int],
) -> inst.PackPod:
    profile = pod.gpu.mig_profile if pod.gpu is not None else None
    eligible = _with_islands(pod, eligible, nodes)
    node = names.get(pod.node_name) if pod.node_name is not None else None
    if pod.node_name is not None and node is None:
        logger.warning("%s runs on unknown node %s: treated as pending", pod.key, pod.node_name)
    slot = _mig_slot(pod, nodes[node]) if node is not None and profile is not None else None
    free = node is not None and _may_disturb(pod, node in eligible)
    return inst.PackPod(
        key=pod.key,
        priority=pod.priority,
        requests=tuple(pod.requests.amount(r) for r in resources),
        eligible=eligible,
        mig_profile=profile,
        node=node,
        mig_slot=slot,
        movable=free,
        evictable=free,
        order=order,
    )


def _with_islands(pod: model.Pod, eligible: frozenset[int], nodes: tuple[model.Node, ...]) -> frozenset[int]:
    if pod.gpu is None or not pod.gpu.require_island:
        return eligible
    count = pod.gpu.count
    kept = frozenset(i for i in eligible if any(len(island) >= count for island in nodes[i].islands))
    return kept if kept != eligible else eligible  # keep sharing the set when nothing changed


def _may_disturb(pod: model.Pod, admitted: bool) -> bool:
    own_node = pod.affinity is not None and any(
        r.key == "metadata.name" for term in pod.affinity for r in term.match_fields
    )
    return (
        pod.controlled
        and admitted
        and not own_node
        and pod.namespace != SYSTEM_NAMESPACE
        and pod.priority < SYSTEM_PRIORITY
        and pod.deleted is None
    )


def _mig_slot(pod: model.Pod, node: model.Node) -> inst.MigSlot | None:
    """The pod's instance from its bind annotation, as (GPU position, start); None if it has none."""
    raw = pod.annotations.get(labels.MIG_INSTANCE_ANNOTATION)
    if raw is None:
        return None
    try:
        gpu_text, rest = raw.split(":", 1)
        start = int(rest.rsplit("@", 1)[1])
        gpu = int(gpu_text)
    except (ValueError, IndexError):
        logger.warning("%s: unreadable %s %r", pod.key, labels.MIG_INSTANCE_ANNOTATION, raw)
        return None
    return _position(node, gpu, start)


def _position(node: model.Node, gpu: int, start: int) -> inst.MigSlot | None:
    positions = [g.index for g in node.gpus if g.index in node.mig_gpus and g.model is not None]
    return (positions.index(gpu), start) if gpu in positions else None


def _claim_configured_instances(
    pods: list[inst.PackPod], nodes: tuple[model.Node, ...]
) -> list[inst.PackPod]:
    """Give running MIG pods without an annotation a configured instance of their node, or pin them."""
    taken: dict[int, list[model.MigInstance]] = {}
    for pod in pods:
        if pod.node is not None and pod.mig_slot is not None:
            gpu = [g.index for g in nodes[pod.node].gpus if g.index in nodes[pod.node].mig_gpus][
                pod.mig_slot[0]
            ]
            taken.setdefault(pod.node, []).append(
                model.MigInstance(gpu, pod.mig_profile or "", pod.mig_slot[1])
            )
    found = []
    for pod in pods:
        if pod.node is None or pod.mig_profile is None or pod.mig_slot is not None:
            found.append(pod)
            continue
        node = nodes[pod.node]
        claimed = mig.free_instance(node, pod.mig_profile, taken.get(pod.node, []))
        slot = _position(node, claimed.gpu, claimed.start) if claimed is not None else None
        if claimed is None or slot is None:
            # Where it runs is unknown: keep it, and let its slots stay unknown to the plan.
            logger.warning("%s: no MIG instance known on %s; pinned and not counted", pod.key, node.name)
            found.append(dataclasses.replace(pod, mig_profile=None, movable=False, evictable=False))
            continue
        taken.setdefault(pod.node, []).append(claimed)
        found.append(dataclasses.replace(pod, mig_slot=slot))
    return found
