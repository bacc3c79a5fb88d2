"""A solver-free checker of assignments: the packer's test oracle and its guard before returning.

``problems`` lists every rule an assignment breaks (an empty list means it is valid); ``score``
evaluates what the lexicographic objective ranks; ``key`` turns a score into a tuple that sorts
better plans higher. Nothing here knows how an assignment was found.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

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
    for pod, node, slot in zip(instance.pods, assignment.nodes, assignment.mig_slots, strict=True):
        if node is None:
            if pod.node is not None and not pod.evictable:
                found.append(f"{pod.key} may not be evicted")
            continue
        if node not in pod.eligible:
            found.append(
                f"{pod.key} may not run on {instance.nodes[node].name} (selector, affinity or taints)"
            )
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


def _mig_slots(instance: inst.Instance, assignment: inst.Assignment) -> list[str]:
    found = []
    taken: dict[tuple[int, int], Counter[int]] = defaultdict(Counter)
    for pod, node, slot in zip(instance.pods, assignment.nodes, assignment.mig_slots, strict=True):
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


def key(score: Score) -> tuple[int, ...]:
    """Sort key of the lexicographic objective: larger is better.

    Pods placed per priority from the highest, then fewer evictions, then fewer moves.
    """
    tiers = tuple(score.placed_by_priority[p] for p in sorted(score.placed_by_priority, reverse=True))
    return (*tiers, -score.evictions, -score.moves)
