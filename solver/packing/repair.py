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
    where = inst.node_array(at).copy()
    placed_now = np.flatnonzero(where >= 0)
    free = instance.allocatable.copy()
    np.subtract.at(free, where[placed_now], instance.requests[placed_now])
    # Who may go elsewhere: pods this plan placed that were pending, and running pods that may move.
    loose = ~columns.mig & ((columns.node < 0) | (columns.movable & ~columns.pinned))
    # Who may be placed: pending pods, and running pods greedy evicted that may move (one that may
    # not could only go back to its node, which greedy emptied for a higher-priority pod).
    waiting = np.flatnonzero((where < 0) & ~columns.mig & ((columns.node < 0) | columns.movable))
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
        if _place(instance, p, where, free, loose):
            placed += 1
        else:
            stuck[shape] = placed
    if not placed:
        return at
    slots = list(at.mig_slots)
    return inst.Assignment.of([None if n < 0 else n for n in where.tolist()], slots)


def _place(
    instance: inst.Instance,
    p: int,
    where: npt.NDArray[np.int64],
    free: npt.NDArray[np.int64],
    loose: BoolArray,
) -> bool:
    """Place pod ``p`` directly or by one move, updating ``where`` and ``free``; whether it was placed."""
    eligible = _eligible(instance, p)
    need = instance.requests[p]
    fits = eligible & (free >= need).all(axis=1)
    if fits.any():
        _put(p, _tightest(free, fits, need), where, free, need)
        return True
    # Pods on p's eligible nodes whose leaving would make room for p there.
    short = np.maximum(need - free, 0)
    candidates = np.flatnonzero(loose & (where >= 0))
    candidates = candidates[eligible[where[candidates]]]
    covers = (instance.requests[candidates] >= short[where[candidates]]).all(axis=1)
    candidates = candidates[covers]
    if candidates.size == 0:
        return False
    candidates = candidates[_room_somewhere(free, instance.requests[candidates])]
    # Pods this plan placed first (moving them disturbs nothing), then the smallest.
    size = instance.requests[candidates].astype(np.float64) / np.maximum(instance.allocatable.max(axis=0), 1)
    preference = np.lexsort((size.sum(axis=1), instance.columns.node[candidates] >= 0))
    for q in candidates[preference].tolist():
        source = int(where[q])
        request = instance.requests[q]
        targets = _eligible(instance, q) & (free >= request).all(axis=1)
        targets[source] = False
        if not targets.any():
            continue
        _put(q, _tightest(free, targets, request), where, free, request, source=source)
        _put(p, source, where, free, need)
        return True
    return False


def _room_somewhere(free: npt.NDArray[np.int64], requests: npt.NDArray[np.int64]) -> BoolArray:
    """Per request, whether some node might hold it: a necessary condition, in one pass over the nodes.

    Checking each candidate against every node costs a pass over the nodes per candidate (at
    1 000 nodes, 10 ms per pending pod). Instead: with the nodes in decreasing order of the first
    resource, those with enough of it are a prefix, and a request can fit only if the prefix's
    largest free amount of every other resource is enough too. Eligibility and the combination
    of resources on one node are left to the exact check that follows.
    """
    order = np.argsort(-free[:, 0], kind="stable")
    most = np.maximum.accumulate(free[order], axis=0)
    enough = np.searchsorted(-free[order, 0], -requests[:, 0], side="right")
    found: BoolArray = (enough > 0) & (most[np.maximum(enough - 1, 0)] >= requests).all(axis=1)
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


def _put(
    i: int,
    node: int,
    where: npt.NDArray[np.int64],
    free: npt.NDArray[np.int64],
    need: npt.NDArray[np.int64],
    *,
    source: int | None = None,
) -> None:
    if source is not None:
        free[source] += need
    free[node] -= need
    where[i] = node
