"""One-move repair: place pods the default scheduler left pending by moving one other pod out of the way.

kube-scheduler never moves a running pod, so a pending pod that fits on no node stays pending even
when moving one pod from node A to node B's free space would make room for it on A. That is the
cheapest improvement there is (one move, no eviction), and on a large or loaded instance CP-SAT's
share of a 1 s window is not always enough to find it: at 32 nodes the packer failed to beat the
default placement in some runs where such a move existed. The packer runs this first, so its hint
already holds every such improvement and CP-SAT starts from there.

Pods are taken in the scheduling queue's order (priority, then creation). A pod moved out of the
way is preferably one the default scheduler placed in this plan (moving it disturbs nothing
running), else the smallest that makes room. Pods that need a MIG instance are neither placed nor
moved here (their slot geometry is CP-SAT's); pods that may not move (pinned, or not recreated by
a controller) stay. Array work per pending pod: it is cut off at its deadline.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from fairpack.solver.packing import instance as inst

BoolArray = npt.NDArray[np.bool_]


def improve(instance: inst.Instance, at: inst.Assignment, *, deadline: float) -> inst.Assignment:
    """``at`` with each pending pod placed where one move makes room for it, until ``deadline``.

    Returns ``at`` itself when nothing could be placed. Every pod placed or moved keeps to its
    eligible nodes and every node to its capacity, so the result is valid whenever ``at`` is.
    """
    columns = instance.columns
    cluster = _Cluster(instance, at)
    # Who may be placed: pending pods, and running pods greedy evicted that may move (one that may
    # not could only go back to its node, which greedy emptied for a higher-priority pod).
    waiting = np.flatnonzero((cluster.where < 0) & ~columns.mig & ((columns.node < 0) | columns.movable))
    order = sorted(waiting.tolist(), key=lambda i: (-instance.pods[i].priority, instance.pods[i].order, i))
    placed = 0
    # A shape that found no room finds none until a placement changes the nodes: its other
    # pending pods (a ReplicaSet's replicas) are not tried again before that.
    stuck: dict[int, int] = {}
    for p in order:
        if time.monotonic() > deadline:
            break
        shape = int(columns.shape[p])
        if stuck.get(shape) == placed:
            continue
        if cluster.place(p):
            placed += 1
        else:
            stuck[shape] = placed
    if not placed:
        return at
    return inst.Assignment.of([None if n < 0 else n for n in cluster.where.tolist()], list(at.mig_slots))


class _Cluster:
    """The placement being repaired: where each pod is and each node's free room."""

    def __init__(self, instance: inst.Instance, at: inst.Assignment) -> None:
        columns = instance.columns
        self.instance = instance
        self.requests = instance.requests
        self.where = inst.node_array(at).copy()
        placed = np.flatnonzero(self.where >= 0)
        self.free = instance.allocatable.copy()
        np.subtract.at(self.free, self.where[placed], self.requests[placed])
        # Who may go elsewhere: pods this plan placed that were pending, and running pods that may move.
        self.loose = np.flatnonzero(~columns.mig & ((columns.node < 0) | (columns.movable & ~columns.pinned)))
        # Requests as shares of the largest node, so that bytes do not drown milli-CPU in sizes.
        self.scale = np.maximum(instance.allocatable.max(axis=0), 1)
        self._sky: _Skyline | None = None

    def _skyline(self) -> _Skyline:
        """The nodes' skyline, sorted again only after a placement changed them."""
        if self._sky is None:
            self._sky = _Skyline(self.free)
        return self._sky

    def place(self, p: int) -> bool:
        """Place pod ``p`` directly or by one move; whether it was placed."""
        eligible = _eligible(self.instance, p)
        need = self.requests[p]
        fits = eligible & (self.free >= need).all(axis=1)
        if fits.any():
            self._put(p, _tightest(self.free, fits, need))
            return True
        # Pods on p's eligible nodes whose leaving would make room for p there: such a pod requests
        # at least the node's shortfall and fits on some other node, so the shortfall does too.
        short = np.maximum(need - self.free, 0)
        skyline = self._skyline()
        nodes = eligible & skyline.holds(short)
        where = self.where[self.loose]
        candidates = self.loose[(where >= 0) & nodes[where]]
        candidates = candidates[(self.requests[candidates] >= short[self.where[candidates]]).all(axis=1)]
        candidates = candidates[skyline.holds(self.requests[candidates])]
        # Pods this plan placed first (moving them disturbs nothing), then the smallest.
        size = (self.requests[candidates].astype(np.float64) / self.scale).sum(axis=1)
        preference = np.lexsort((size, self.instance.columns.node[candidates] >= 0))
        for q in candidates[preference].tolist():
            request = self.requests[q]
            targets = _eligible(self.instance, q) & (self.free >= request).all(axis=1)
            source = int(self.where[q])
            targets[source] = False
            if targets.any():
                self._put(q, _tightest(self.free, targets, request))
                self._put(p, source)
                return True
        return False

    def _put(self, i: int, node: int) -> None:
        need = self.requests[i]
        if (source := int(self.where[i])) >= 0:
            self.free[source] += need
        self.free[node] -= need
        self.where[i] = node
        self._sky = None


class _Skyline:
    """Per request, whether some node might hold it: a necessary condition, in one pass over the nodes.

    Checking each candidate against every node costs a pass over the nodes per candidate (at
    1 000 nodes, 10 ms per pending pod). Instead: with the nodes in decreasing order of the first
    resource, those with enough of it are a prefix, and a request can fit only if the prefix's
    largest free amount of every other resource is enough too. Eligibility and the combination
    of resources on one node are left to the exact check that follows. Built once per state of the
    nodes (sorting them is most of the cost), asked for many requests.
    """

    def __init__(self, free: npt.NDArray[np.int64]) -> None:
        order = np.argsort(-free[:, 0], kind="stable")
        self.first = -free[order, 0]  # ascending
        self.most = np.maximum.accumulate(free[order], axis=0)

    def holds(self, requests: npt.NDArray[np.int64]) -> BoolArray:
        enough = np.searchsorted(self.first, -requests[:, 0], side="right")
        found: BoolArray = (enough > 0) & (self.most[np.maximum(enough - 1, 0)] >= requests).all(axis=1)
        return found


def _eligible(instance: inst.Instance, i: int) -> BoolArray:
    eligible: BoolArray = instance.eligible_matrix[instance.columns.eligible[i]]
    return eligible


def _tightest(free: npt.NDArray[np.int64], allowed: BoolArray, need: npt.NDArray[np.int64]) -> int:
    """The allowed node with the least room left after ``need`` (best fit, summed over resources
    as shares of the largest free amount so that bytes do not drown milli-CPU)."""
    left = (free - need).astype(np.float64) / np.maximum(free.max(axis=0), 1)
    score = np.where(allowed, left.sum(axis=1), np.inf)
    return int(np.argmin(score))
