"""A solver-free checker of assignments: the packer's test oracle and its guard before returning.

``problems`` lists every rule an assignment breaks (an empty list means it is valid); ``score``
evaluates what the lexicographic objective ranks; ``key`` turns a score into a tuple that sorts
better plans higher. Nothing here knows how an assignment was found.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fairpack.solver.packing import instance as inst


@dataclass(frozen=True, slots=True)
class Score:
    """What the packer's objective ranks, evaluated on one assignment."""

    placed_by_priority: dict[int, int]
    """Pods placed per priority value (running pods that stay count)."""
    moves: int
    """Running pods placed on another node than their current one (or another MIG instance)."""
    evictions: int
    """Running pods the assignment leaves unplaced."""


def problems(
    instance: inst.Instance, assignment: inst.Assignment, *, max_evictions: int | None = None
) -> list[str]:
    """Every rule ``assignment`` breaks on ``instance``, as readable sentences."""
    found: list[str] = []
    found += _pod_rules(instance, assignment)
    found += _capacity(instance, assignment)
    found += _mig_slots(instance, assignment)
    evictions = score(instance, assignment).evictions
    if max_evictions is not None and evictions > max_evictions:
        found.append(f"{evictions} evictions exceed the limit of {max_evictions}")
    return found


def _pod_rules(instance: inst.Instance, assignment: inst.Assignment) -> list[str]:
    found = []
    for i, (node, slot) in enumerate(zip(assignment.nodes, assignment.mig_slots, strict=True)):
        found += _pod_problems(instance, i, node, slot)
    return found


def _pod_problems(instance: inst.Instance, i: int, node: int | None, slot: inst.MigSlot | None) -> list[str]:
    """What is wrong with pod ``i`` on ``node`` in ``slot``, whatever the other pods do."""
    pod = instance.pods[i]
    found = []
    if node is None:
        if pod.node is not None and not pod.evictable:
            found.append(f"{pod.key} may not be evicted")
        return found
    if node not in pod.eligible and node != pod.node:
        # A running pod may stay where its node no longer admits it (IgnoredDuringExecution).
        found.append(f"{pod.key} may not run on {instance.nodes[node].name} (selector, affinity or taints)")
    if pod.node is not None and node != pod.node and not pod.movable:
        found.append(f"{pod.key} may not move from {instance.nodes[pod.node].name}")
    if pod.node == node and pod.mig_slot is not None and slot != pod.mig_slot and not pod.movable:
        # Another instance on the same node means recreating the pod: a move.
        found.append(f"{pod.key} may not move to another MIG instance")
    if (pod.mig_profile is None) != (slot is None):
        found.append(f"{pod.key} has a MIG instance if and only if it needs one: {slot}")
    return found


def _capacity(instance: inst.Instance, assignment: inst.Assignment) -> list[str]:
    used: dict[int, list[int]] = defaultdict(lambda: [0] * len(instance.resources))
    for pod, node in zip(instance.pods, assignment.nodes, strict=True):
        if node is not None:
            used[node] = [u + r for u, r in zip(used[node], pod.requests, strict=True)]
    found = []
    for n, amounts in used.items():
        target = instance.nodes[n]
        for name, amount, capacity in zip(instance.resources, amounts, target.allocatable, strict=True):
            if amount > capacity:
                found.append(f"{target.name} overcommits {name}: {amount} > {capacity}")
    return found


def _mig_slots(
    instance: inst.Instance, assignment: inst.Assignment, pods: Iterable[int] | None = None
) -> list[str]:
    """MIG rules over ``pods`` (default: all); pods without a slot or a profile are skipped anyway."""
    found = []
    taken: dict[tuple[int, int], Counter[int]] = defaultdict(Counter)
    for i in range(len(instance.pods)) if pods is None else pods:
        pod, node, slot = instance.pods[i], assignment.nodes[i], assignment.mig_slots[i]
        if node is None or slot is None or pod.mig_profile is None:
            continue
        gpus = instance.nodes[node].mig_gpus
        position, start = slot
        if not 0 <= position < len(gpus):
            found.append(f"{pod.key} names MIG GPU {position} that {instance.nodes[node].name} lacks")
            continue
        gpu = gpus[position]
        profile = inst.profile_on(gpu, pod.mig_profile)
        if profile is None or start not in profile.starts:
            found.append(f"{pod.key}: {pod.mig_profile} cannot start at slot {start} of a {gpu.model.name}")
            continue
        slots = inst.slots_of(gpu, pod.mig_profile, start)
        if gpu.blocked.intersection(slots):
            found.append(f"{pod.key} uses blocked MIG slots on {instance.nodes[node].name} GPU {gpu.index}")
        taken[(node, position)].update(slots)
    for (node, position), counts in taken.items():
        if any(c > 1 for c in counts.values()):
            gpu = instance.nodes[node].mig_gpus[position]
            found.append(f"{instance.nodes[node].name} GPU {gpu.index} has overlapping MIG instances")
    return found


def score(instance: inst.Instance, assignment: inst.Assignment) -> Score:
    """Pods placed per priority, moves and evictions of ``assignment``."""
    placed: Counter[int] = Counter({p.priority: 0 for p in instance.pods})
    moves = evictions = 0
    for pod, node, slot in zip(instance.pods, assignment.nodes, assignment.mig_slots, strict=True):
        if node is not None:
            placed[pod.priority] += 1
        if pod.node is None:
            continue
        if node is None:
            evictions += 1
        elif node != pod.node or slot != pod.mig_slot:
            moves += 1
    return Score(dict(placed), moves, evictions)


def check(
    instance: inst.Instance, assignment: inst.Assignment, *, max_evictions: int | None = None
) -> list[str]:
    """The sentences :func:`problems` returns (as a multiset; the order may differ), in array time.

    ``problems`` runs Python code for every pod; at 50 000 pods that is a quarter of a 1 s window.
    This runs array operations over every pod and Python only for the pods arrays flag, and it is
    the same check:

    - pod rules: ``problems`` runs ``_pod_problems`` on every pod; this one on every pod that is
      unplaced while running and not evictable, placed outside its eligible nodes, placed away
      from its node while not movable, or that has a MIG profile, a MIG instance now or a slot in
      ``assignment``. ``_pod_problems`` returns nothing for any other pod: its first sentence
      needs the first condition, its second the second, its third the third (a placed pod), its
      fourth a current instance, its fifth a profile or a slot.
    - capacity: the same integer sums per node (numpy ``add.at`` over the placed pods; int64 is
      exact below 9.2e18, 50 000 pods of 1e12 bytes sum to 5e16), compared on the nodes that hold a
      pod, which are the nodes ``problems`` looks at.
    - MIG: ``_mig_slots`` itself, over the pods it does not skip (placed, with a slot and a profile).
    - evictions: the running pods left unplaced, counted as ``score`` counts them.

    ``tests/unit/test_packing_properties.py`` checks the equality on random clusters and broken
    assignments.
    """
    columns = instance.columns
    where = inst.node_array(assignment)
    placed = where >= 0
    running = columns.node >= 0
    slotted = np.zeros(len(instance.pods), dtype=np.bool_)
    slotted[[i for i, s in enumerate(assignment.mig_slots) if s is not None]] = True
    eligible = np.zeros(len(instance.pods), dtype=np.bool_)
    eligible[placed] = instance.eligible_matrix[columns.eligible[placed], where[placed]]
    suspects = (
        (~placed & running & ~columns.evictable)
        | (placed & ~eligible)
        | (placed & running & (where != columns.node) & ~columns.movable)
        | columns.mig
        | columns.slotted
        | slotted
    )
    found: list[str] = []
    for i in np.flatnonzero(suspects).tolist():
        found += _pod_problems(instance, i, assignment.nodes[i], assignment.mig_slots[i])
    used = np.zeros_like(instance.allocatable)
    np.add.at(used, where[placed], instance.requests[placed])
    occupied = np.bincount(where[placed], minlength=len(instance.nodes)) > 0
    for n in np.flatnonzero(occupied & np.any(used > instance.allocatable, axis=1)).tolist():
        target = instance.nodes[n]
        for name, amount, capacity in zip(
            instance.resources, used[n].tolist(), target.allocatable, strict=True
        ):
            if amount > capacity:
                found.append(f"{target.name} overcommits {name}: {amount} > {capacity}")
    found += _mig_slots(instance, assignment, np.flatnonzero(placed & columns.mig & slotted).tolist())
    evictions = int(np.count_nonzero(running & ~placed))
    if max_evictions is not None and evictions > max_evictions:
        found.append(f"{evictions} evictions exceed the limit of {max_evictions}")
    return found


def tally(instance: inst.Instance, assignment: inst.Assignment) -> Score:
    """:func:`score` in array time (the same Score: tested against it on random assignments).

    Placed per priority: every priority of the instance, counted over the placed pods. Evictions:
    running pods unplaced. Moves: running pods placed on another node, or on their node in another
    MIG instance; a slot can only differ where one of the two is set, so Python compares slots only
    for the pods with a slot now or in ``assignment``.
    """
    return _tally(instance, inst.node_array(assignment), assignment.mig_slots)


def _tally(
    instance: inst.Instance, where: npt.NDArray[np.int64], slots: Sequence[inst.MigSlot | None]
) -> Score:
    columns = instance.columns
    placed = where >= 0
    running = columns.node >= 0
    priorities, counts = np.unique(columns.priority[placed], return_counts=True)
    by_priority = dict.fromkeys(np.unique(columns.priority).tolist(), 0)
    by_priority.update(zip(priorities.tolist(), counts.tolist(), strict=True))
    moved = running & placed & (where != columns.node)
    for i in [i for i, s in enumerate(slots) if s is not None] + np.flatnonzero(columns.slotted).tolist():
        if running[i] and placed[i] and where[i] == columns.node[i]:
            moved[i] = slots[i] != instance.pods[i].mig_slot
    return Score(by_priority, int(np.count_nonzero(moved)), int(np.count_nonzero(running & ~placed)))


def tally_current(instance: inst.Instance) -> Score:
    """:func:`tally` of the cluster as it is."""
    return _tally(instance, instance.columns.node, [p.mig_slot for p in instance.pods])


def key(score: Score) -> tuple[int, ...]:
    """Sort key of the lexicographic objective: larger is better.

    Pods placed per priority from the highest, then fewer evictions, then fewer moves.
    """
    tiers = tuple(score.placed_by_priority[p] for p in sorted(score.placed_by_priority, reverse=True))
    return (*tiers, -score.evictions, -score.moves)
