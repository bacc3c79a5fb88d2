"""The goals of the packing problem, as linear expressions over a model's variables.

The solve loop optimises them one after the other (see :mod:`fairpack.solver.packing.search`):
pods of each priority from the highest, then disturbance, then MIG fragmentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ortools.sat.python import cp_model

if TYPE_CHECKING:
    from fairpack.solver.packing.model import PackingModel


@dataclass(frozen=True, slots=True)
class Goal:
    """One stage of the lexicographic solve.

    The stage optimises ``scale * primary + secondary``; ``secondary`` lies in ``[0, scale)``, so
    it only breaks ties in ``primary``. It keeps lower tiers in the picture: with ``primary``
    alone, presolve may legitimately drop every lower-priority pod (they do not count), and the
    next stage would start from that empty solution instead of a good one. Optionally it also
    counts running pods left in place, below every lower-tier pod (see :func:`goals`).
    """

    name: str
    primary: cp_model.LinearExpr
    maximise: bool
    secondary: cp_model.LinearExpr = field(default_factory=lambda: cp_model.LinearExpr.sum([]))
    scale: int = 1
    trivial: int | None = None
    """The best value ``primary`` can possibly have, if known cheaply (maximising goals)."""
    ranked: bool = True
    """Part of what an OPTIMAL plan claims (False: a best-effort tie-breaker)."""
    weight: int = 1
    """Share of the remaining window, relative to the later stages'. Tier stages get more: they
    decide what the plan is worth, and disturbance and fragmentation stages, warm-started from a
    packing that already fixes most of them, are usually proven in a few tens of milliseconds."""


def goals(m: PackingModel, *, stays: bool = False) -> list[Goal]:
    """The stages in order: each priority from the highest, then disturbance.

    ``stays``: a tier stage breaks its ties by lower-tier pods placed first, then by running pods
    left in place, so the packing it hands on already moves few pods (the disturbance stage gets
    what is left of the window, often too little to undo a packing that moves a hundred pods for
    nothing). With R running free pods, stays lie in [0, R], so lower-tier pods are weighted R + 1
    and ``scale`` grows by the same factor: ``secondary`` stays below ``scale``. Not free: the
    search then also takes steps that only keep more pods in place, and an unproven tier stage at
    1 s is still finding pods at the end of its share, so its value comes out lower in some runs
    (measured: a quarter to half of the runs at 16-32 nodes, by 1-7 pods); and a stage proven by its
    linear bound may no longer be: that bound can place a fractional extra pod and keep every
    running pod, which lifts it past the next multiple of ``scale`` (docs/benchmarks.md).
    """
    found = []
    weight = m.running_total() + 1 if stays else 1
    for p in m.priorities():
        lower = [c for c, cls in enumerate(m.classes) if cls.priority < p]
        secondary = weight * cp_model.LinearExpr.sum([m.placed(c) for c in lower])
        if stays:
            secondary += m.stays()
        scale = weight * (1 + sum(len(m.classes[c].members) for c in lower))
        found.append(
            Goal(f"priority {p}", placed_at(m, p), True, secondary, scale, placed_bound(m, p), weight=4)
        )
    found.append(Goal("disturbance", disturbance(m), False))
    if m.gpu_used:
        found.append(Goal("fragmentation", fragmentation(m), False, ranked=False))
    return found


def fragmentation(m: PackingModel) -> cp_model.LinearExpr:
    """MIG GPUs in use (to minimise): instances packed onto few GPUs leave whole GPUs for 7g pods.

    Last and least: it only reorders instances among plans equal in every tier and in disturbance.
    """
    return cp_model.LinearExpr.sum(list(m.gpu_used.values()))


def placed_at(m: PackingModel, priority: int) -> cp_model.LinearExpr:
    """Free pods of exactly ``priority`` placed (to maximise)."""
    return cp_model.LinearExpr.sum(
        [m.placed(c) for c, cls in enumerate(m.classes) if cls.priority == priority]
    )


def placed_bound(m: PackingModel, priority: int) -> int:
    """The most pods of ``priority`` any solution could place: the classes' sizes."""
    return sum(
        min(len(cls.members), sum(m.ub[(c, n)] for n in m.by_class[c]))
        for c, cls in enumerate(m.classes)
        if cls.priority == priority
    )


def disturbance(m: PackingModel) -> cp_model.LinearExpr:
    """Evictions first, then moves (to minimise); stay < move < evict.

    With R running free pods, S of them staying and E evicted, moves are R - S - E, and
    ``(R + 1) * E + moves`` equals ``R * E - S + R``: one more eviction always costs more than any
    number of moves. The constant R is left out.
    """
    evicted = cp_model.LinearExpr.sum(list(m.evicted.values()))
    return m.running_total() * evicted - m.stays()
