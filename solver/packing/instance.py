"""The packer's typed input: nodes and pods reduced to integer resource vectors and node indices.

An :class:`Instance` is what the greedy scheduler, the CP-SAT model and the validator share. It
holds no Kubernetes objects: the adapter in :mod:`fairpack.solver.packing.adapter` builds it from
the cluster model. Quantities are integers in the resource's base unit (milli-CPU, bytes, counts),
so capacity sums are exact. MIG profiles are not scalar resources here: a MIG pod needs a run of
free memory slots of its profile's geometry on one MIG-mode GPU of its node.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

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


@dataclass(frozen=True, slots=True)
class PodColumns:
    """Fields of every pod of an instance, position by position, as arrays."""

    node: npt.NDArray[np.int64]
    """Current node, -1 for a pending pod."""
    priority: npt.NDArray[np.int64]
    movable: npt.NDArray[np.bool_]
    evictable: npt.NDArray[np.bool_]
    mig: npt.NDArray[np.bool_]
    """Needs a MIG instance."""
    slotted: npt.NDArray[np.bool_]
    """Runs in a MIG instance now (``PackPod.mig_slot`` set)."""
    eligible: npt.NDArray[np.int64]
    """Position of the pod's eligible nodes in ``eligible_sets``."""
    eligible_sets: tuple[frozenset[int], ...]
    """The distinct ``PackPod.eligible`` sets."""
    shape: npt.NDArray[np.int64]
    """Pods with the same value here have the same priority, requests, MIG profile and eligible
    nodes: the model cannot tell them apart but by where they run and whether they may move."""

    @property
    def pinned(self) -> npt.NDArray[np.bool_]:
        """Running pods the plan must leave where they are (``PackPod.pinned``)."""
        return (self.node >= 0) & ~self.movable & ~self.evictable


@dataclass(frozen=True)
class Instance:
    """A packing problem: every node, every pod, and the resources they are measured in."""

    resources: tuple[str, ...]
    nodes: tuple[PackNode, ...]
    pods: tuple[PackPod, ...]

    @functools.cached_property
    def requests(self) -> npt.NDArray[np.int64]:
        """Pods x resources matrix of requests (built once: large clusters have 50 000 pods)."""
        # fromiter over one flat stream: np.array over 50 000 tuples takes four times as long.
        flat = itertools.chain.from_iterable([p.requests for p in self.pods])
        matrix = np.fromiter(flat, dtype=np.int64, count=len(self.pods) * len(self.resources))
        return _frozen(matrix.reshape(len(self.pods), len(self.resources)))

    @functools.cached_property
    def allocatable(self) -> npt.NDArray[np.int64]:
        """Nodes x resources matrix of allocatable amounts."""
        matrix = np.array([n.allocatable for n in self.nodes], dtype=np.int64)
        return _frozen(matrix.reshape(len(self.nodes), len(self.resources)))

    @functools.cached_property
    def current(self) -> Assignment:
        """The assignment of the cluster as it is (built once: see :meth:`Assignment.current`)."""
        return Assignment(tuple([p.node for p in self.pods]), tuple([p.mig_slot for p in self.pods]))

    @functools.cached_property
    def columns(self) -> PodColumns:
        """The pods' scalar fields as arrays, for the checks that run over every pod."""
        # One list per field, not a tuple per pod: 50 000 new tuples wake the garbage collector,
        # which then walks every pod (measured: 0.2 s instead of 0.03 s).
        pods = self.pods
        node = [p.node for p in pods]
        priority = [p.priority for p in pods]
        movable = [p.movable for p in pods]
        evictable = [p.evictable for p in pods]
        profiles = [p.mig_profile for p in pods]
        slots = [p.mig_slot for p in pods]
        sets = [p.eligible for p in pods]
        eligible, distinct_sets = _positions(sets)
        profile, _ = _positions(profiles)
        priorities = np.array(priority, dtype=np.int64)
        keys = [priorities, *self.requests.T, profile, eligible]
        return PodColumns(
            node=np.array([-1 if n is None else n for n in node], dtype=np.int64),
            priority=priorities,
            movable=np.array(movable, dtype=np.bool_),
            evictable=np.array(evictable, dtype=np.bool_),
            mig=np.array([p is not None for p in profiles], dtype=np.bool_),
            slotted=np.array([s is not None for s in slots], dtype=np.bool_),
            eligible=eligible,
            eligible_sets=tuple(distinct_sets),  # type: ignore[arg-type]
            shape=_combined(keys, len(self.pods)),
        )

    @functools.cached_property
    def eligible_matrix(self) -> npt.NDArray[np.bool_]:
        """Row k marks the nodes of ``columns.eligible_sets[k]``: eligibility of every pod in one lookup."""
        sets = self.columns.eligible_sets
        matrix = np.zeros((len(sets), len(self.nodes)), dtype=np.bool_)
        for k, nodes in enumerate(sets):
            matrix[k, list(nodes)] = True
        return matrix

    def resource(self, name: str) -> int | None:
        """Position of resource ``name`` in the vectors, or None if no node or pod has it."""
        return self.resources.index(name) if name in self.resources else None


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where every pod of an instance is, position by position with ``Instance.pods``."""

    nodes: tuple[int | None, ...]
    mig_slots: tuple[MigSlot | None, ...]
    _where: npt.NDArray[np.int64] | None = field(default=None, init=False, compare=False, repr=False)
    """``nodes`` as an array, once :func:`node_array` was asked for it (the assignment never changes)."""

    @classmethod
    def current(cls, instance: Instance) -> Assignment:
        """The assignment of the cluster as it is: running pods where they run, pending unplaced."""
        return instance.current

    @classmethod
    def of(cls, nodes: Sequence[int | None], mig_slots: Sequence[MigSlot | None]) -> Assignment:
        """An assignment from lists (the builders' working form)."""
        return cls(tuple(nodes), tuple(mig_slots))


def _frozen(array: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``array``, read-only: it is cached on the instance and shared by every step of a solve."""
    array.flags.writeable = False
    return array


def _positions(things: Sequence[object]) -> tuple[npt.NDArray[np.int64], list[object]]:
    """Position of each of ``things`` among their distinct values, and those values.

    Pods built by one adapter share their eligible sets and profile strings, so objects are told
    apart by identity first (an array sort), by value only once per distinct object.
    """
    if not things:
        return np.zeros(0, dtype=np.int64), []
    ids = np.array([id(t) for t in things], dtype=np.uint64)
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    values: dict[object, int] = {}
    position = np.array([values.setdefault(things[i], len(values)) for i in first.tolist()], dtype=np.int64)
    return position[inverse.reshape(-1)], list(values)


def _combined(keys: Sequence[npt.NDArray[np.int64]], size: int) -> npt.NDArray[np.int64]:
    """One integer per row of the columns ``keys``, equal exactly where the rows are equal."""
    combined = np.zeros(size, dtype=np.int64)
    if size == 0:
        return combined
    order = np.lexsort(keys)
    # A new value starts wherever a sorted row differs from the one before it in any column.
    starts = np.zeros(size, dtype=np.bool_)
    for column in keys:
        starts[1:] |= column[order][1:] != column[order][:-1]
    combined[order] = np.cumsum(starts)
    return combined


def node_array(assignment: Assignment) -> npt.NDArray[np.int64]:
    """``assignment.nodes`` as a read-only array, -1 for an unplaced pod (built once per assignment:
    the solve loop asks five times, at 50 000 pods 10 ms each)."""
    if assignment._where is None:
        where = np.array([-1 if n is None else n for n in assignment.nodes], dtype=np.int64)
        where.flags.writeable = False
        object.__setattr__(assignment, "_where", where)
    assert assignment._where is not None
    return assignment._where


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
