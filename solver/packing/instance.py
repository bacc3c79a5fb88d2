"""The packer's typed input: nodes and pods reduced to integer resource vectors and node indices.

An :class:`Instance` is what the greedy scheduler, the CP-SAT model and the validator share. It
holds no Kubernetes objects: the adapter in :mod:`fairpack.solver.packing.adapter` builds it from
the cluster model. Quantities are integers in the resource's base unit (milli-CPU, bytes, counts),
so capacity sums are exact. MIG profiles are not scalar resources here: a MIG pod needs a run of
free memory slots of its profile's geometry on one MIG-mode GPU of its node.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fairpack.solver import gpumodels, mig

MigSlot = tuple[int, int]
"""Where a MIG pod runs on its node: (position of the GPU in ``PackNode.mig_gpus``, start slot)."""


@dataclass(frozen=True, slots=True)
class MigGpu:
    """A MIG-mode GPU of a node."""

    index: int
    """The GPU's index on its node (``nvidia-smi`` numbering)."""
    model: gpumodels.GpuModel
    """Its model, which fixes the profile names and their slot geometry."""
    blocked: frozenset[int] = frozenset()
    """Slots no pod of the instance may use (held by something the packer does not see)."""


@dataclass(frozen=True, slots=True)
class PackNode:
    """A node as the packer sees it."""

    name: str
    allocatable: tuple[int, ...]
    """Allocatable amount of each of ``Instance.resources``."""
    mig_gpus: tuple[MigGpu, ...] = ()


@dataclass(frozen=True, slots=True)
class PackPod:
    """A pod, running or pending. Pending pods have ``node`` None."""

    key: str
    """``namespace/name``."""
    priority: int
    requests: tuple[int, ...]
    """Requested amount of each of ``Instance.resources`` (``pods`` counts 1)."""
    eligible: frozenset[int]
    """Indices of the nodes its selector, required affinity and tolerations allow."""
    mig_profile: str | None = None
    """Name of the MIG profile it needs (one instance), if any."""
    node: int | None = None
    """Current node of a running pod."""
    mig_slot: MigSlot | None = None
    """Current MIG instance of a running MIG pod."""
    movable: bool = False
    """A running pod that may be recreated on another node (it has a controller that recreates it)."""
    evictable: bool = False
    """A running pod that may be left unplaced by the plan."""
    order: int = 0
    """Queue position among pods of equal priority (creation order), as kube-scheduler's queue sorts."""

    @property
    def pinned(self) -> bool:
        """A running pod the plan must leave where it is."""
        return self.node is not None and not self.movable and not self.evictable


@dataclass(frozen=True)
class Instance:
    """A packing problem: every node, every pod, and the resources they are measured in."""

    resources: tuple[str, ...]
    nodes: tuple[PackNode, ...]
    pods: tuple[PackPod, ...]

    @functools.cached_property
    def requests(self) -> npt.NDArray[np.int64]:
        """Pods x resources matrix of requests (built once: large clusters have 50 000 pods)."""
        matrix = np.array([p.requests for p in self.pods], dtype=np.int64)
        return matrix.reshape(len(self.pods), len(self.resources))

    def resource(self, name: str) -> int | None:
        """Position of resource ``name`` in the vectors, or None if no node or pod has it."""
        return self.resources.index(name) if name in self.resources else None


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where every pod of an instance is, position by position with ``Instance.pods``."""

    nodes: tuple[int | None, ...]
    mig_slots: tuple[MigSlot | None, ...]

    @classmethod
    def current(cls, instance: Instance) -> Assignment:
        """The assignment of the cluster as it is: running pods where they run, pending unplaced."""
        return cls(tuple(p.node for p in instance.pods), tuple(p.mig_slot for p in instance.pods))

    @classmethod
    def of(cls, nodes: Sequence[int | None], mig_slots: Sequence[MigSlot | None]) -> Assignment:
        """An assignment from lists (the builders' working form)."""
        return cls(tuple(nodes), tuple(mig_slots))


def usage(instance: Instance, placed: Sequence[tuple[int, int]]) -> npt.NDArray[np.int64]:
    """Per node and resource, what the pods of ``placed`` ((pod, node) pairs) request together."""
    total = np.zeros((len(instance.nodes), len(instance.resources)), dtype=np.int64)
    if placed:
        pairs = np.array(placed, dtype=np.int64)
        np.add.at(total, pairs[:, 1], instance.requests[pairs[:, 0]])
    return total


def profile_on(gpu: MigGpu, name: str) -> gpumodels.MigProfile | None:
    """The profile ``name`` (full, or its compute part like ``3g``) on ``gpu``'s model, or None."""
    return mig.resolve(gpu.model, name)


def runs(gpu: MigGpu, name: str) -> list[tuple[int, range]]:
    """(start, slots) of every place an instance of profile ``name`` may take on ``gpu``."""
    profile = profile_on(gpu, name)
    if profile is None:
        return []
    return [(start, range(start, start + profile.size)) for start in profile.starts]


def slots_of(gpu: MigGpu, name: str, start: int) -> range:
    """The memory slots an instance of profile ``name`` starting at ``start`` occupies on ``gpu``."""
    profile = profile_on(gpu, name)
    size = profile.size if profile is not None else gpumodels.MIG_SLOTS
    return range(start, start + size)
