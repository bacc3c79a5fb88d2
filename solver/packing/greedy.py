"""A model of kube-scheduler's default placement: the packer's hint and the baseline it must beat.

Pending pods are taken in the scheduling queue's order (priority, then creation). Each goes through
the Filter phase (selector, affinity and taints via ``PackPod.eligible``; NodeResourcesFit on every
resource; a free MIG slot run) and the Score phase with the default profile's resource scorers:
NodeResourcesFit in LeastAllocated mode and NodeResourcesBalancedAllocation, both weight 1, on cpu
and memory, with kube-scheduler's non-zero defaults (100m, 200Mi) for pods that request none. A pod
that fits nowhere may preempt lower-priority pods (DefaultPreemption): the node chosen needs the
lowest highest-victim priority, then the smallest priority sum, then the fewest victims; victims
that may move are queued again. Left out, and said here so nobody relies on them: the scorers that
need no resources (ImageLocality, InterPodAffinity, preferred NodeAffinity, TaintToleration,
PodTopologySpread's system defaults) and percentageOfNodesToScore sampling on large clusters.
Ties go to the lowest node index, or to a seeded random choice like kube-scheduler's.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fairpack.solver.packing import instance as inst

MAX_NODE_SCORE = 100
DEFAULT_MILLI_CPU = 100
"""kube-scheduler's scoring request for a pod that requests no cpu (milli-CPU)."""
DEFAULT_MEMORY = 200 * 1024 * 1024
"""... and for one that requests no memory (bytes)."""

IntMatrix = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Settings:
    """How the default scheduler's model breaks ties and how much it may disturb."""

    seed: int | None = None
    """None: ties go to the lowest node index (reproducible); an int: a seeded random tie-break."""
    preemption: bool = True
    """Let a pod that fits nowhere evict lower-priority pods, as DefaultPreemption does."""
    max_evictions: int | None = None
    """Never leave more running pods unplaced than this (None: no limit)."""


class _Cluster:
    """The scheduler's cache: usage per node, MIG slots taken, who runs where."""

    def __init__(self, instance: inst.Instance, start: inst.Assignment) -> None:
        self.instance = instance
        self.allocatable: IntMatrix = instance.allocatable
        self.used: IntMatrix = np.zeros_like(self.allocatable)
        cpu, memory = instance.resource("cpu"), instance.resource("memory")
        self.scored = np.array([r for r in (cpu, memory) if r is not None], dtype=np.int64)
        self.defaults = [DEFAULT_MILLI_CPU if r == cpu else DEFAULT_MEMORY for r in self.scored]
        self.nonzero: IntMatrix = np.zeros((len(instance.nodes), len(self.scored)), dtype=np.int64)
        self.nodes = list(start.nodes)
        self.slots = list(start.mig_slots)
        # Nodes without MIG GPUs share one empty list (never written: it has no GPU to write to);
        # 5 000 new lists would wake the garbage collector, which then walks every pod.
        none: list[set[int]] = []
        self.taken: list[list[set[int]]] = [
            [set(g.blocked) for g in n.mig_gpus] if n.mig_gpus else none for n in instance.nodes
        ]
        self._residents: list[set[int]] | None = None
        self._masks: dict[int, npt.NDArray[np.bool_]] = {}
        self._evictable: dict[int, IntMatrix] = {}
        self.version = 0
        """Changes with every bind and unbind: a pod that failed at one version fails again."""
        where = inst.node_array(start)
        self._load(where)
        self.room: IntMatrix = np.ascontiguousarray((self.allocatable - self.used).T)
        """Resources x nodes: what each node has left, one contiguous row per resource (the fit
        check reads it once per pending pod, and a row per resource is the fastest layout)."""
        self.unplaced_running = int(np.count_nonzero((instance.columns.node >= 0) & (where < 0)))
        """Running pods currently without a node: the evictions so far."""

    def _load(self, where_all: IntMatrix) -> None:
        """Bind every pod of ``start`` at once (what ``bind`` does one by one)."""
        placed = np.flatnonzero(where_all >= 0)
        where = where_all[placed]
        requests = self.instance.requests[placed]
        np.add.at(self.used, where, requests)
        scored = requests[:, self.scored]
        np.add.at(self.nonzero, where, np.where(scored == 0, np.array(self.defaults, dtype=np.int64), scored))
        columns = self.instance.columns
        priorities, evictable = columns.priority[placed], columns.evictable[placed]
        for priority in np.unique(priorities[evictable]).tolist():
            chosen = evictable & (priorities == priority)
            np.add.at(self.evictable_use(priority), where[chosen], requests[chosen])
        for i in np.flatnonzero(columns.mig & (where_all >= 0)).tolist():
            pod, node, slot = self.instance.pods[i], self.nodes[i], self.slots[i]
            if slot is not None and pod.mig_profile is not None and node is not None:
                gpu = self.instance.nodes[node].mig_gpus[slot[0]]
                self.taken[node][slot[0]].update(inst.slots_of(gpu, pod.mig_profile, slot[1]))

    @property
    def residents(self) -> list[set[int]]:
        """Pods on each node. Built on first use: only preemption asks, and most runs never preempt."""
        if self._residents is None:
            self._residents = [set() for _ in self.instance.nodes]
            for i, n in enumerate(self.nodes):
                if n is not None:
                    self._residents[n].add(i)
        return self._residents

    def nonzero_requests(self, pod: inst.PackPod) -> npt.NDArray[np.int64]:
        values = [pod.requests[r] or d for r, d in zip(self.scored.tolist(), self.defaults, strict=True)]
        return np.array(values, dtype=np.int64)

    def fits(self, pod: inst.PackPod) -> npt.NDArray[np.bool_]:
        """Nodes where ``pod`` fits on every resource now (NodeResourcesFit)."""
        found = self.eligible(pod).copy()
        for row, need in zip(self.room, pod.requests, strict=True):
            found &= row >= need
        return found

    def bind(self, i: int, node: int, slot: inst.MigSlot | None) -> None:
        pod = self.instance.pods[i]
        self.nodes[i], self.slots[i] = node, slot
        self.used[node] += pod.requests
        self.room[:, node] -= pod.requests
        self.nonzero[node] += self.nonzero_requests(pod)
        if self._residents is not None:
            self._residents[node].add(i)
        self.version += 1
        self.unplaced_running -= pod.node is not None
        if pod.evictable:
            self.evictable_use(pod.priority)[node] += pod.requests
        if slot is not None and pod.mig_profile is not None:
            gpu = self.instance.nodes[node].mig_gpus[slot[0]]
            self.taken[node][slot[0]].update(inst.slots_of(gpu, pod.mig_profile, slot[1]))

    def unbind(self, i: int) -> None:
        pod, node, slot = self.instance.pods[i], self.nodes[i], self.slots[i]
        assert node is not None
        self.used[node] -= pod.requests
        self.room[:, node] += pod.requests
        self.nonzero[node] -= self.nonzero_requests(pod)
        self.residents[node].discard(i)
        self.version += 1
        self.unplaced_running += pod.node is not None
        if pod.evictable:
            self.evictable_use(pod.priority)[node] -= pod.requests
        if slot is not None and pod.mig_profile is not None:
            gpu = self.instance.nodes[node].mig_gpus[slot[0]]
            self.taken[node][slot[0]].difference_update(inst.slots_of(gpu, pod.mig_profile, slot[1]))
        self.nodes[i], self.slots[i] = None, None

    def evictable_use(self, priority: int) -> IntMatrix:
        """Per node, what evictable pods of ``priority`` request: what preemption could free."""
        if priority not in self._evictable:
            self._evictable[priority] = np.zeros_like(self.allocatable)
        return self._evictable[priority]

    def preemptable(self, pod: inst.PackPod) -> npt.NDArray[np.int64]:
        """Nodes where evicting every lower-priority evictable pod would make room for ``pod``."""
        lower = [u for p, u in self._evictable.items() if p < pod.priority]
        if not lower:
            return np.zeros(0, dtype=np.int64)
        freed = sum(lower, np.zeros_like(self.allocatable))
        room = np.all(self.used - freed + pod.requests <= self.allocatable, axis=1)
        return np.flatnonzero(self.eligible(pod) & room)

    def eligible(self, pod: inst.PackPod) -> npt.NDArray[np.bool_]:
        # Pods built by one adapter share their eligibility sets, so this caches per set.
        mask = self._masks.get(id(pod.eligible))
        if mask is None:
            mask = np.zeros(len(self.instance.nodes), dtype=np.bool_)
            mask[list(pod.eligible)] = True
            self._masks[id(pod.eligible)] = mask
        return mask

    def free_slot(self, pod: inst.PackPod, node: int, taken: list[set[int]]) -> inst.MigSlot | None:
        """The first free run for the pod's profile: fullest GPU first, so empty GPUs stay whole."""
        assert pod.mig_profile is not None
        gpus = self.instance.nodes[node].mig_gpus
        for position in sorted(range(len(gpus)), key=lambda g: -len(taken[g])):
            for start, slots in inst.runs(gpus[position], pod.mig_profile):
                if taken[position].isdisjoint(slots):
                    return (position, start)
        return None

    def scores(self, pod: inst.PackPod, candidates: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """LeastAllocated plus BalancedAllocation on cpu and memory, kube-scheduler's integer maths."""
        if len(self.scored) == 0:
            return np.zeros(len(candidates), dtype=np.int64)
        capacity = self.allocatable[np.ix_(candidates, self.scored)]
        safe = np.maximum(capacity, 1)
        requested = self.nonzero[candidates] + self.nonzero_requests(pod)
        least = np.where(
            (capacity == 0) | (requested > capacity), 0, (capacity - requested) * MAX_NODE_SCORE // safe
        )
        actual = self.used[np.ix_(candidates, self.scored)] + np.array(pod.requests)[self.scored]
        fractions = np.minimum(actual / safe, 1.0)
        std = np.std(fractions, axis=1)
        balanced = ((1 - std) * MAX_NODE_SCORE).astype(np.int64)
        return np.asarray(least.sum(axis=1) // len(self.scored) + balanced, dtype=np.int64)


def schedule(
    instance: inst.Instance, *, settings: Settings = Settings(), start: inst.Assignment | None = None
) -> inst.Assignment:
    """Place the unplaced pods of ``start`` (default: the current state) as kube-scheduler would."""
    cluster = _Cluster(instance, start or inst.Assignment.current(instance))
    rng = random.Random(settings.seed) if settings.seed is not None else None
    pods = instance.pods
    queue = [(-pods[i].priority, pods[i].order, i) for i, n in enumerate(cluster.nodes) if n is None]
    heapq.heapify(queue)
    tried: set[int] = set()
    failed: dict[tuple[object, ...], int] = {}
    while queue:
        _, _, i = heapq.heappop(queue)
        pod = instance.pods[i]
        if pod.node is not None and i in tried and not pod.movable:
            continue  # a preempted pod without a controller is gone
        tried.add(i)
        shape = (pod.priority, pod.requests, pod.mig_profile, id(pod.eligible))
        if failed.get(shape) == cluster.version:
            continue  # an identical pod just failed and nothing changed since
        if _place(cluster, i, rng):
            continue
        victims = _preempt(cluster, i, settings.max_evictions) if settings.preemption else []
        for v in victims:
            if instance.pods[v].movable:
                heapq.heappush(queue, (-instance.pods[v].priority, instance.pods[v].order, v))
        if not victims:
            failed[shape] = cluster.version
    return inst.Assignment.of(cluster.nodes, cluster.slots)


def _place(cluster: _Cluster, i: int, rng: random.Random | None) -> bool:
    pod = cluster.instance.pods[i]
    if pod.node is not None and not pod.movable:
        return False
    candidates = np.flatnonzero(cluster.fits(pod))
    slots: dict[int, inst.MigSlot] = {}
    if pod.mig_profile is not None:
        for n in candidates:
            slot = cluster.free_slot(pod, int(n), cluster.taken[int(n)])
            if slot is not None:
                slots[int(n)] = slot
        candidates = np.array(sorted(slots), dtype=np.int64)
    if len(candidates) == 0:
        return False
    scores = cluster.scores(pod, candidates)
    best = candidates[scores == scores.max()]
    node = int(best[0] if rng is None else rng.choice(list(best)))
    cluster.bind(i, node, slots.get(node))
    return True


def _preempt(cluster: _Cluster, i: int, max_evictions: int | None) -> list[int]:
    """Evict the cheapest set of lower-priority pods that lets pod ``i`` in; return the victims."""
    instance, pod = cluster.instance, cluster.instance.pods[i]
    unplaced = cluster.unplaced_running
    best: tuple[tuple[int, int, int, int], list[int], inst.MigSlot | None] | None = None
    for n in cluster.preemptable(pod):
        node = int(n)
        found = _victims(cluster, pod, node)
        if found is None:
            continue
        victims, slot = found
        if max_evictions is not None and unplaced + len(victims) > max_evictions:
            continue
        prios = [instance.pods[v].priority for v in victims]
        rank = (max(prios, default=pod.priority), sum(prios), len(victims), node)
        if best is None or rank < best[0]:
            best = (rank, victims, slot)
    if best is None or not best[1]:
        return []
    _, victims, slot = best
    for v in victims:
        cluster.unbind(v)
    cluster.bind(i, best[0][3], slot)
    return victims


def _victims(cluster: _Cluster, pod: inst.PackPod, node: int) -> tuple[list[int], inst.MigSlot | None] | None:
    """Victims on ``node`` for ``pod`` after kube's reprieve (keep the most important), or None."""
    instance = cluster.instance
    candidates = [
        j
        for j in cluster.residents[node]
        if instance.pods[j].priority < pod.priority and instance.pods[j].evictable
    ]
    candidates.sort(key=lambda j: (-instance.pods[j].priority, instance.pods[j].order))
    victims = set(candidates)

    def fits(without: set[int]) -> tuple[bool, inst.MigSlot | None]:
        freed = sum((np.array(instance.pods[j].requests) for j in without), np.zeros(len(instance.resources)))
        if not np.all(cluster.used[node] - freed + pod.requests <= cluster.allocatable[node]):
            return False, None
        if pod.mig_profile is None:
            return True, None
        taken = [set(t) for t in cluster.taken[node]]
        for j in without:
            slot, victim = cluster.slots[j], instance.pods[j]
            if slot is not None and victim.mig_profile is not None:
                gpu = instance.nodes[node].mig_gpus[slot[0]]
                taken[slot[0]].difference_update(inst.slots_of(gpu, victim.mig_profile, slot[1]))
        slot = cluster.free_slot(pod, node, taken)
        return slot is not None, slot

    if not fits(victims)[0]:
        return None
    for j in candidates:  # reprieve from the most important down
        if fits(victims - {j})[0]:
            victims.discard(j)
    return sorted(victims), fits(victims)[1]
