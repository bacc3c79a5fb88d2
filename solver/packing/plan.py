"""The packer's output: which pod goes where, what moves, what is evicted, and how sure the solver is."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from fairpack.solver.packing import instance as inst
from fairpack.solver.packing import validate


class Status(enum.StrEnum):
    """How good a plan is known to be."""

    OPTIMAL = "OPTIMAL"
    """Proven lexicographically optimal: pods per priority, then evictions, then moves."""
    FEASIBLE = "FEASIBLE"
    """Better than the default scheduler's placement, not proven optimal."""
    GREEDY = "GREEDY"
    """The default scheduler's placement: the solver found nothing better in its window."""


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of the lexicographic solve."""

    name: str
    """``priority <p>`` or ``disturbance``."""
    status: str
    """CP-SAT's status name, or ``BOUND`` when the hint already met the trivial bound."""
    value: int
    bound: int
    seconds: float
    ranked: bool = True
    """Part of the lexicographic objective an OPTIMAL status claims (False: best-effort tie-breaker)."""


@dataclass(frozen=True, slots=True)
class Move:
    pod: str
    source: str
    target: str


@dataclass(frozen=True, slots=True)
class TierCount:
    before: int
    after: int


@dataclass(frozen=True, slots=True)
class Plan:
    """A valid placement of the instance's pods (checked by the validator before it is returned)."""

    status: Status
    assignment: inst.Assignment
    """Node index (and MIG slot) of every pod of the instance, position by position."""
    placements: dict[str, str]
    """Pod key -> node name for every pod the plan places, those that stay included."""
    mig_instances: dict[str, str]
    """Pod key -> ``<gpu index>:<profile>@<start>`` for MIG pods (the bind annotation's format)."""
    moves: tuple[Move, ...]
    evictions: tuple[str, ...]
    started: tuple[str, ...]
    """Pending pods the plan places."""
    placed_by_priority: dict[int, TierCount]
    stages: tuple[Stage, ...]
    gap: float
    """Relative gap of the first stage not proven optimal (0.0 when all are)."""
    window_s: float
    solve_s: float
    complete: bool
    """Whether the model covered the whole instance (False: a neighbourhood of a large cluster)."""
    rejected: tuple[str, ...] = ()
    """What the validator found wrong with the solver's plan, which was then dropped for greedy's
    (always empty unless the model has a bug: tests assert it)."""

    def to_json(self) -> dict[str, Any]:
        """The ``fairpack plan --output json`` object (the CLI contract)."""
        return {
            "status": str(self.status),
            "window_s": self.window_s,
            "solve_s": round(self.solve_s, 4),
            "placements": [{"pod": p, "node": n} for p, n in sorted(self.placements.items())],
            "moves": [{"pod": m.pod, "from": m.source, "to": m.target} for m in self.moves],
            "evictions": list(self.evictions),
            "placed_by_priority": {
                str(p): {"before": c.before, "after": c.after}
                for p, c in sorted(self.placed_by_priority.items(), reverse=True)
            },
        }


def build(
    instance: inst.Instance,
    assignment: inst.Assignment,
    *,
    status: Status,
    stages: tuple[Stage, ...],
    gap: float,
    window_s: float,
    solve_s: float,
    complete: bool,
    rejected: tuple[str, ...] = (),
) -> Plan:
    """Name everything in ``assignment`` and count what it changes.

    Python touches each placed pod once, for its name (the placements are the plan); moves,
    evictions and starts are found with arrays first, so only the pods that change are looked at.
    """
    names = [n.name for n in instance.nodes]
    pods = instance.pods
    placements = {pods[i].key: names[n] for i, n in enumerate(assignment.nodes) if n is not None}
    columns = instance.columns
    where = inst.node_array(assignment)
    running, placed = columns.node >= 0, where >= 0
    slotted = [i for i, s in enumerate(assignment.mig_slots) if s is not None]
    mig = {}
    for i in slotted:
        pod, node, slot = pods[i], where[i], assignment.mig_slots[i]
        assert slot is not None
        mig[pod.key] = f"{instance.nodes[node].mig_gpus[slot[0]].index}:{pod.mig_profile}@{slot[1]}"
    # A move: placed elsewhere, or on its node in another MIG instance (then one of the slots is set).
    maybe_moved = (running & placed & (where != columns.node)).copy()
    maybe_moved[slotted] |= running[slotted] & placed[slotted]
    maybe_moved[columns.slotted] |= placed[columns.slotted]
    moves = []
    for i in np.flatnonzero(maybe_moved).tolist():
        pod, node = pods[i], assignment.nodes[i]
        assert pod.node is not None
        assert node is not None
        if node != pod.node or assignment.mig_slots[i] != pod.mig_slot:
            moves.append(Move(pod.key, names[pod.node], names[node]))
    evictions = [pods[i].key for i in np.flatnonzero(running & ~placed).tolist()]
    started = [pods[i].key for i in np.flatnonzero(~running & placed).tolist()]
    before = validate.tally_current(instance).placed_by_priority
    after = validate.tally(instance, assignment).placed_by_priority
    counts = {p: TierCount(before[p], after[p]) for p in before}
    return Plan(
        status,
        assignment,
        placements,
        mig,
        tuple(moves),
        tuple(evictions),
        tuple(started),
        counts,
        stages,
        gap,
        window_s,
        solve_s,
        complete,
        rejected,
    )
