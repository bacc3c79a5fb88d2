"""The goals of the packing problem, as linear expressions over a model's variables.

The solve loop optimises them one after the other (see :mod:`fairpack.solver.packing.solve`):
pods of each priority from the highest, then disturbance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ortools.sat.python import cp_model

if TYPE_CHECKING:
    from fairpack.solver.packing.model import PackingModel


def placed_at(m: PackingModel, priority: int) -> cp_model.LinearExprT:
    """Free pods of exactly ``priority`` placed (to maximise)."""
    return sum(m.placed(c) for c, cls in enumerate(m.classes) if cls.priority == priority)


def placed_bound(m: PackingModel, priority: int) -> int:
    """The most pods of ``priority`` any solution could place: the classes' sizes."""
    return sum(
        min(len(cls.members), sum(m.ub[(c, n)] for n in m.by_class[c]))
        for c, cls in enumerate(m.classes)
        if cls.priority == priority
    )


def disturbance(m: PackingModel) -> cp_model.LinearExprT:
    """Evictions first, then moves (to minimise); stay < move < evict.

    With R running free pods, S of them staying and E evicted, moves are R - S - E, and
    ``(R + 1) * E + moves`` equals ``R * E - S + R``: one more eviction always costs more than any
    number of moves. The constant R is left out.
    """
    evicted = cp_model.LinearExpr.sum(list(m.evicted.values()))
    return m.running_total() * evicted - m.stays()
