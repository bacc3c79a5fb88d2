"""GPU fragmentation in the spirit of FGD (Weng et al., USENIX ATC'23, "Beware of Fragmentation").

Given a target workload (task types with their popularity), a node's fragmentation is the
expected free GPU capacity that a task drawn from the workload could not use:

- a task the node cannot host at all (too little cpu or memory left, too few whole GPUs for a
  multi-GPU task) finds every free GPU of the node useless;
- otherwise a whole-GPU task cannot use what is free on partly used GPUs, and a MIG task cannot
  use a whole-mode GPU, nor the free slots of a MIG GPU where its profile has no free start;
  where it has one, the slots that no profile of the workload could ever take (MIG's geometry
  strands them: a 4g and a 2g leave slots 6-7 to profiles that start there) are fragments too.

Placing a pod changes the node's fragmentation; the FGD policy places where it grows least.
Capacity is counted in GPUs: a MIG memory slot is ``1 / MIG_SLOTS`` of a GPU.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from fairpack.solver import gpumodels, mig
from fairpack.solver import occupancy as occ


@dataclass(frozen=True, slots=True)
class TaskType:
    """One kind of GPU task of the workload."""

    whole: int
    """Whole GPUs it takes (0 for a MIG task)."""
    mig_class: int
    """Profile class of its MIG instance, the same on every model; -1 for a whole-GPU task or one
    named by ``mig_profile``."""
    weight: float
    """Popularity: share of the workload's GPU tasks of this type."""
    cpu: int = 0
    """Typical (median) cpu request, millicores."""
    memory: int = 0
    """Typical (median) memory request, bytes."""
    mig_profile: str | None = None
    """Profile name of its MIG instance (pods' tasks): its class is the one on each node's GPU model,
    as a name means another geometry on another model."""

    def class_on(self, gpu_model: gpumodels.GpuModel) -> int:
        """Its MIG profile's class on ``gpu_model``; -1 for a whole-GPU task or a profile it has not."""
        if self.mig_profile is not None:
            return occ.profile_class(gpu_model, self.mig_profile)
        return self.mig_class


@dataclass(frozen=True, slots=True)
class Workload:
    types: tuple[TaskType, ...]

    @classmethod
    def of(cls, demands: Iterable[occ.Demand], *, resources: tuple[str, ...]) -> Workload:
        """The GPU task types of ``demands`` with their popularity (pods without GPUs are left out)."""
        cpu, memory = _position(resources, "cpu"), _position(resources, "memory")
        groups: defaultdict[tuple[int, str], list[occ.Demand]] = defaultdict(list)
        for d in demands:
            if d.whole or d.mig_profile is not None:
                groups[d.gpu_signature].append(d)
        total = sum(len(g) for g in groups.values())
        return cls(
            tuple(
                TaskType(
                    whole,
                    -1,
                    len(group) / total,
                    _median(group, cpu),
                    _median(group, memory),
                    mig_profile=profile or None,
                )
                for (whole, profile), group in sorted(groups.items())
            )
        )


def _position(resources: tuple[str, ...], name: str) -> int | None:
    return resources.index(name) if name in resources else None


def _median(demands: list[occ.Demand], position: int | None) -> int:
    return 0 if position is None else int(statistics.median(int(d.requests[position]) for d in demands))


def gpu_fragments(key: occ.NodeKey, workload: Workload) -> tuple[float, list[float]]:
    """(free GPU capacity, fragment per task type if cpu and memory allowed the task) of a node key."""
    model_name, gpus = key
    free = sum(occ.gpu_capacity(g) for g in gpus)
    whole_free = sum(1 for kind, held, _ in gpus if kind != occ.Kind.STATIC and held == 0)
    gpu_model = gpumodels.by_name(model_name) if model_name else None
    # Classes on this key's model: a profile name means other geometry on another model.
    task_classes = [t.class_on(gpu_model) if gpu_model is not None else -1 for t in workload.types]
    classes = [c for c in task_classes if c >= 0]
    fragments = []
    for task, cls in zip(workload.types, task_classes, strict=True):
        if task.whole:
            fragments.append(free if whole_free < task.whole else free - whole_free)
        elif cls < 0:  # the model has no such profile: every free GPU is useless to the task
            fragments.append(free)
        else:
            fragments.append(sum(_mig_fragment(g, cls, classes, gpu_model) for g in gpus))
    return free, fragments


def _mig_fragment(
    gpu: occ.GpuKey, cls: int, classes: list[int], gpu_model: gpumodels.GpuModel | None
) -> float:
    """Free capacity of one GPU that a MIG task of class ``cls`` cannot use, in GPUs."""
    kind, held, layout = gpu
    if kind == occ.Kind.WHOLE or gpu_model is None:
        return occ.gpu_capacity(gpu)
    if kind == occ.Kind.STATIC:
        return sum(occ.gpu_capacity((kind, held, ((c, s),))) for c, s in layout if c != cls)
    if not mig.fits(gpu_model.mig_profiles[cls], held):
        return occ.gpu_capacity(gpu)
    usable = 0
    for c in classes:
        profile = gpu_model.mig_profiles[c]
        for start in mig.free_starts(profile, held):
            usable |= mig.mask(profile, start)
    return (mig.FULL & ~held & ~usable).bit_count() / gpumodels.MIG_SLOTS


class Table:
    """Fragmentation of an occupancy's nodes, computed once per GPU key."""

    def __init__(self, occupancy: occ.Occupancy, workload: Workload) -> None:
        self.occupancy = occupancy
        self.workload = workload
        types = workload.types
        self.weights = np.array([t.weight for t in types], dtype=np.float64)
        self.cpu = np.array([t.cpu for t in types], dtype=np.int64)
        self.memory = np.array([t.memory for t in types], dtype=np.int64)
        self._cpu = _position(occupancy.resources, "cpu")
        self._memory = _position(occupancy.resources, "memory")
        self._free = np.zeros(0, dtype=np.float64)
        self._fragments = np.zeros((0, len(types)), dtype=np.float64)
        self._current = np.zeros(len(occupancy.nodes), dtype=np.float64)
        self._seen = np.full(len(occupancy.nodes), -1, dtype=np.int64)

    def rows(self, key_ids: occ.IntArray) -> tuple[occ.FloatArray, occ.FloatArray]:
        """(free capacity, fragment per type) for each key id."""
        known = len(self._free)
        if len(self.occupancy.keys) > known:
            computed = [gpu_fragments(k, self.workload) for k in self.occupancy.keys[known:]]
            self._free = np.concatenate([self._free, np.array([c[0] for c in computed], dtype=np.float64)])
            rows = np.array([c[1] for c in computed], dtype=np.float64).reshape(len(computed), -1)
            self._fragments = np.concatenate([self._fragments, rows])
        return self._free[key_ids], self._fragments[key_ids]

    def of(
        self, key_ids: occ.IntArray, nodes: occ.IntArray, extra: occ.IntArray | None = None
    ) -> occ.FloatArray:
        """Fragmentation of ``nodes`` if their GPUs were in ``key_ids`` and ``extra`` more were used."""
        free, fragments = self.rows(key_ids)
        hosts = np.ones((len(nodes), len(self.weights)), dtype=np.bool_)
        for position, need in ((self._cpu, self.cpu), (self._memory, self.memory)):
            if position is None:
                continue
            left = self.occupancy.allocatable[nodes, position] - self.occupancy.used[nodes, position]
            if extra is not None:
                left = left - extra[position]
            hosts &= left[:, None] >= need[None, :]
        return np.asarray(np.where(hosts, fragments, free[:, None]) @ self.weights, dtype=np.float64)

    def now(self, nodes: occ.IntArray) -> occ.FloatArray:
        """Fragmentation of ``nodes`` as they are (cached per node until it changes)."""
        stale = nodes[self._seen[nodes] != self.occupancy.changes[nodes]]
        if len(stale):
            self._current[stale] = self.of(self.occupancy.key_id[stale], stale)
            self._seen[stale] = self.occupancy.changes[stale]
        return self._current[nodes]

    def total(self) -> float:
        """Fragmented GPUs of the whole cluster (expected, over the workload)."""
        nodes = np.arange(len(self.occupancy.nodes), dtype=np.int64)
        return float(self.of(self.occupancy.key_id, nodes).sum())
