"""Placement policies for one pod at a time: kube-scheduler's baselines and fairpack's FGD score.

Every policy answers one question through :class:`Policy`: given the occupancy, a pod's demand
and the nodes where it fits, where does it go (node and devices)? The replay never branches on
which policy runs.

- ``least-allocated``: kube-scheduler's default NodeResourcesFit scoring: the node with the most
  cpu and memory left (mean of the two free fractions after placing); ties to the lowest node.
- ``best-fit``: NodeResourcesFit's MostAllocated: the fullest node over cpu, memory and GPUs.
- ``first-fit``: the first node in inventory order.
- ``fairpack``: the node and device placement whose fragmentation grows least (FGD), see
  :mod:`fairpack.solver.fragmentation`.

The baselines hand devices out as a plain allocator does: whole GPUs by NVLink topology, a MIG
instance at the first free start of the lowest GPU with room. ``fairpack`` also picks the GPU
and start that leave the least fragmentation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fairpack.solver import fragmentation
from fairpack.solver import occupancy as occ

NAMES = ("least-allocated", "best-fit", "first-fit", "fairpack")


class Policy(Protocol):
    """Chooses where a pod goes among the nodes it fits (``candidates``, never empty)."""

    name: str

    def choose(
        self, occupancy: occ.Occupancy, demand: occ.Demand, candidates: occ.IntArray
    ) -> occ.Assignment:
        """The node and devices for ``demand``."""
        ...


def make(name: str, occupancy: occ.Occupancy, workload: fragmentation.Workload) -> Policy:
    """The policy called ``name`` (one of :data:`NAMES`) for ``occupancy``."""
    builders: dict[str, Callable[[], Policy]] = {
        "least-allocated": lambda: LeastAllocated(),
        "best-fit": lambda: BestFit(),
        "first-fit": lambda: FirstFit(),
        "fairpack": lambda: Fgd(fragmentation.Table(occupancy, workload)),
    }
    if name not in builders:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(NAMES)}")
    return builders[name]()


@dataclass(slots=True)
class FirstFit:
    name: str = "first-fit"

    def choose(
        self, occupancy: occ.Occupancy, demand: occ.Demand, candidates: occ.IntArray
    ) -> occ.Assignment:
        return occupancy.first_fit(int(candidates[0]), demand)


def _free_fractions(occupancy: occ.Occupancy, demand: occ.Demand, candidates: occ.IntArray) -> occ.FloatArray:
    """Per candidate, the free fraction of cpu and of memory after placing ``demand`` (columns)."""
    columns = np.array([occupancy.resources.index(r) for r in ("cpu", "memory") if r in occupancy.resources])
    allocatable = occupancy.allocatable[np.ix_(candidates, columns)].astype(np.float64)
    left = allocatable - occupancy.used[np.ix_(candidates, columns)] - demand.requests[columns]
    fractions: occ.FloatArray = np.divide(
        left, allocatable, out=np.zeros_like(allocatable), where=allocatable > 0
    )
    return fractions


@dataclass(slots=True)
class LeastAllocated:
    name: str = "least-allocated"

    def choose(
        self, occupancy: occ.Occupancy, demand: occ.Demand, candidates: occ.IntArray
    ) -> occ.Assignment:
        score = _free_fractions(occupancy, demand, candidates).mean(axis=1)
        return occupancy.first_fit(int(candidates[int(np.argmax(score))]), demand)


@dataclass(slots=True)
class BestFit:
    name: str = "best-fit"

    def choose(
        self, occupancy: occ.Occupancy, demand: occ.Demand, candidates: occ.IntArray
    ) -> occ.Assignment:
        free = _free_fractions(occupancy, demand, candidates)
        total = occupancy.gpu_total[candidates]
        # Any MIG instance counts as about half a GPU.
        taking = demand.whole + (0.5 if demand.mig_profile is not None else 0.0)
        gpu_free = np.divide(
            occupancy.gpu_free[candidates] - taking, total, out=np.zeros_like(total), where=total > 0
        )
        score = np.column_stack([free, gpu_free]).mean(axis=1)
        return occupancy.first_fit(int(candidates[int(np.argmin(score))]), demand)


Choice = tuple[int, occ.GpuKey | None, int, int]
"""(GPU key id after, GPU key of the GPU that takes the MIG instance, class, start)."""


@dataclass(slots=True)
class Fgd:
    """Fragmentation gradient descent: the placement whose fragmentation increase is least."""

    table: fragmentation.Table
    name: str = "fairpack"
    _choices: dict[tuple[int, tuple[int, str]], Choice] = field(default_factory=dict)

    def choose(
        self, occupancy: occ.Occupancy, demand: occ.Demand, candidates: occ.IntArray
    ) -> occ.Assignment:
        ids = occupancy.key_id[candidates]
        unique, first, where = np.unique(ids, return_index=True, return_inverse=True)
        choices = [
            self._choice(occupancy, demand, int(k), int(candidates[f]))
            for k, f in zip(unique, first, strict=True)
        ]
        after = np.array([c[0] for c in choices], dtype=np.int64)[where]
        growth = self.table.of(after, candidates, demand.requests) - self.table.now(candidates)
        # Ties (common: most placements leave every task type as able as before) go to the node
        # with the least GPU capacity left, then the least cpu: pack, keep empty nodes empty.
        best = int(np.lexsort((candidates, occupancy.gpu_free[candidates], np.round(growth, 9)))[0])
        return self._assignment(occupancy, demand, int(candidates[best]), choices[int(where[best])])

    def _choice(self, occupancy: occ.Occupancy, demand: occ.Demand, key: int, node: int) -> Choice:
        """The best device placement on nodes of GPU key ``key`` (memoised: keys never change meaning)."""
        memo = (key, demand.gpu_signature)
        found = self._choices.get(memo)
        if found is not None:
            return found
        if demand.mig_profile is not None:
            options = occupancy.mig_options(node, demand.mig_class(node))
            after = np.array(
                [occupancy.intern(occupancy.key_after(node, o)) for o in options], dtype=np.int64
            )
            _, fragments = self.table.rows(after)
            waste = fragments @ self.table.weights

            def rank(n: int) -> tuple[float, int, int]:
                p, _, start = options[n].mig or (0, 0, 0)
                return (round(float(waste[n]), 9), -occupancy.held[node][p].bit_count(), -start)

            n = min(range(len(options)), key=rank)
            p, cls, start = options[n].mig or (0, 0, 0)
            gpu = (int(occupancy.kinds[node][p]), occupancy.held[node][p], occupancy.layouts[node][p])
            found = (int(after[n]), gpu, cls, start)
        elif demand.whole:
            assignment = occupancy.first_fit(node, demand)
            found = (occupancy.intern(occupancy.key_after(node, assignment)), None, -1, 0)
        else:
            found = (key, None, -1, 0)
        self._choices[memo] = found
        return found

    @staticmethod
    def _assignment(
        occupancy: occ.Occupancy, demand: occ.Demand, node: int, choice: Choice
    ) -> occ.Assignment:
        _, gpu, cls, start = choice
        if gpu is None:
            return occupancy.first_fit(node, demand)
        p = next(
            p
            for p, key in enumerate(
                zip(occupancy.kinds[node], occupancy.held[node], occupancy.layouts[node], strict=True)
            )
            if (int(key[0]), key[1], key[2]) == gpu
        )
        return occ.Assignment(node, mig=(p, cls, start))
