"""The CP-SAT model of a packing instance: variables here, rules in constraints, goals in objectives.

Identical pods are one *class* (same priority, requests, MIG profile, candidate nodes, movability)
and a class gets one integer variable per candidate node, the number of its pods there, instead of
a boolean per pod and node: a 10 000-pod cluster with a few hundred distinct pod shapes becomes a
model of a few thousand integers. Which member of a class goes where is decided when decoding,
running pods first so that as many as possible stay. Pods in ``fixed`` (pinned pods, and pods the
solve loop freezes to shrink a large instance) are constants that only take capacity.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from ortools.sat.python import cp_model

from fairpack.solver.packing import constraints
from fairpack.solver.packing import instance as inst

Place = tuple[int | None, inst.MigSlot | None]
"""Where one pod is: (node index or None, MIG slot or None)."""
UKey = tuple[int, int, str, int]
"""A possible MIG instance: (node, GPU position, profile, start slot)."""


@dataclass(frozen=True, slots=True)
class PodClass:
    """Pods the model cannot tell apart."""

    members: tuple[int, ...]
    """Pod indices, running pods first, then pending ones in queue order."""
    priority: int
    requests: tuple[int, ...]
    mig_profile: str | None
    movable: bool
    evictable: bool
    running: dict[int, tuple[int, ...]] = field(default_factory=dict)
    """Node -> members running there now."""

    @property
    def running_count(self) -> int:
        return sum(len(v) for v in self.running.values())


class PackingModel:
    """Variables of one packing instance; constraints and hints are added by the functions that own them."""

    def __init__(
        self,
        instance: inst.Instance,
        *,
        free: Collection[int] | None = None,
        rest: inst.Assignment | None = None,
        nodes: frozenset[int] | None = None,
        max_evictions: int | None = None,
    ) -> None:
        self.instance = instance
        self.nodes = frozenset(range(len(instance.nodes))) if nodes is None else nodes
        self.rest = rest or inst.Assignment.current(instance)
        """Where the pods the model does not decide about are (pinned pods where they run)."""
        # Array work over all pods, Python work over the model's own: on a 5 000-node cluster cut
        # to a neighbourhood, the 48 000 others are only counted, never looked at one by one.
        columns = instance.columns
        free_mask = np.zeros(len(instance.pods), dtype=np.bool_)
        if free is None:
            free_mask[:] = True
        else:
            free_mask[np.fromiter(free, dtype=np.int64, count=len(free))] = True
        free_mask &= ~columns.pinned
        self.free_pods = frozenset(np.flatnonzero(free_mask).tolist())
        where = inst.node_array(self.rest)
        on_model = np.zeros(len(instance.nodes) + 1, dtype=np.bool_)  # the last is "no node" (-1)
        on_model[list(self.nodes)] = True
        # Only pods on the model's nodes weigh on it.
        self.fixed: dict[int, Place] = {
            i: (self.rest.nodes[i], self.rest.mig_slots[i])
            for i in np.flatnonzero(~free_mask & on_model[where]).tolist()
        }
        self.evicted_outside = int(np.count_nonzero(~free_mask & (columns.node >= 0) & (where < 0)))
        """Running pods outside the model that ``rest`` leaves unplaced (count against the limit)."""
        self.cp = cp_model.CpModel()
        self._free_matrix, self.blocked = _fixed_load(instance, self.fixed)
        self._free: list[list[int]] = self._free_matrix.tolist()
        self.classes = _classes(instance, sorted(self.free_pods))
        self.y: dict[tuple[int, int], cp_model.IntVar] = {}
        self.ub: dict[tuple[int, int], int] = {}
        """Upper bound of each ``y`` variable."""
        self.stay: dict[tuple[int, int], cp_model.IntVar] = {}
        self.stay_pod: dict[int, cp_model.IntVar] = {}
        self.evicted: dict[int, cp_model.IntVar] = {}
        self.u: dict[UKey, cp_model.IntVar] = {}
        self.gpu_used: dict[tuple[int, int], cp_model.IntVar] = {}
        """(node, GPU position) -> the GPU holds a new or kept MIG instance of a free pod."""
        self._groups: list[list[int]] | None = None
        self._placed: dict[int, cp_model.LinearExpr] = {}
        self._add_variables()
        self.by_class: dict[int, list[int]] = defaultdict(list)
        self.by_node: dict[int, list[int]] = defaultdict(list)
        for c, n in self.y:
            self.by_class[c].append(n)
            self.by_node[n].append(c)
        constraints.add_all(self, max_evictions=max_evictions)

    # --- variables ---------------------------------------------------------------------
    def free(self, n: int) -> list[int]:
        """Capacity of node ``n`` left after the fixed pods."""
        return self._free[n]

    def upper_bounds(self, c: int, nodes: list[int]) -> list[int]:
        """The most pods of class ``c`` each of ``nodes`` could take alone (0: never a candidate)."""
        cls = self.classes[c]
        bounds = np.full(len(nodes), len(cls.members), dtype=np.int64)
        free = np.maximum(self._free_matrix[nodes], 0)
        for r, need in enumerate(cls.requests):
            if need > 0:
                bounds = np.minimum(bounds, free[:, r] // need)
        found: list[int] = bounds.tolist()
        if cls.mig_profile is not None:
            found = [
                min(b, len(self.mig_starts(n, cls.mig_profile))) for b, n in zip(found, nodes, strict=True)
            ]
        if not cls.movable:
            found = [min(b, len(cls.running.get(n, ()))) for b, n in zip(found, nodes, strict=True)]
        return found

    def mig_starts(self, n: int, profile: str) -> list[tuple[int, int]]:
        """(GPU position, start) of every instance of ``profile`` that avoids blocked slots on node ``n``."""
        found = []
        for g, gpu in enumerate(self.instance.nodes[n].mig_gpus):
            for start, slots in inst.runs(gpu, profile):
                if self.blocked[(n, g)].isdisjoint(slots):
                    found.append((g, start))
        return found

    def candidates(self, c: int) -> dict[int, int]:
        """Nodes class ``c`` may use in this model, with the most pods of it each could take."""
        first = self.instance.pods[self.classes[c].members[0]]
        nodes = sorted(first.eligible & self.nodes)
        return {n: b for n, b in zip(nodes, self.upper_bounds(c, nodes), strict=True) if b > 0}

    def _add_variables(self) -> None:
        for c, cls in enumerate(self.classes):
            for n, bound in self.candidates(c).items():
                self.ub[(c, n)] = bound
                self.y[(c, n)] = self.cp.new_int_var(0, self.ub[(c, n)], f"y_{c}_{n}")
            for n, members in cls.running.items():
                if (c, n) not in self.y:
                    continue
                if cls.mig_profile is None:
                    self.stay[(c, n)] = self.cp.new_int_var(0, len(members), f"stay_{c}_{n}")
                else:
                    for i in members:
                        self.stay_pod[i] = self.cp.new_bool_var(f"stay_pod_{i}")
            if cls.running:
                self.evicted[c] = self.cp.new_int_var(0, cls.running_count, f"evicted_{c}")
        profiles = {(n, cls.mig_profile) for (c, n) in self.y if (cls := self.classes[c]).mig_profile}
        for n, profile in sorted(profiles):
            for g, start in self.mig_starts(n, profile):
                self.u[(n, g, profile, start)] = self.cp.new_bool_var(f"u_{n}_{g}_{profile}_{start}")
        for n, g, _, _ in self.u:
            if (n, g) not in self.gpu_used:
                self.gpu_used[(n, g)] = self.cp.new_bool_var(f"gpu_used_{n}_{g}")

    # --- expressions the objectives and stages share --------------------------------------
    def placed(self, c: int) -> cp_model.LinearExpr:
        """Pods of class ``c`` placed (built once per class: every stage's objective asks again)."""
        if c not in self._placed:
            self._placed[c] = cp_model.LinearExpr.sum([self.y[(c, n)] for n in self.by_class[c]])
        return self._placed[c]

    def stays(self) -> cp_model.LinearExpr:
        """Running free pods that stay where they are."""
        return cp_model.LinearExpr.sum([*self.stay.values(), *self.stay_pod.values()])

    def running_total(self) -> int:
        return sum(cls.running_count for cls in self.classes)

    def priorities(self) -> list[int]:
        """Priority values of the free pods, highest first."""
        return sorted({cls.priority for cls in self.classes}, reverse=True)

    def load(self, n: int) -> cp_model.LinearExpr:
        """What symmetry breaking orders interchangeable nodes by: milli-CPU placed, plus pods."""
        classes = self.by_node[n]
        return cp_model.LinearExpr.weighted_sum(
            [self.y[(c, n)] for c in classes], [self.load_weight(c) for c in classes]
        )

    def load_weight(self, c: int) -> int:
        cpu = self.instance.resource("cpu")
        return 1 + (self.classes[c].requests[cpu] if cpu is not None else 0)

    def symmetric_groups(self) -> list[list[int]]:
        """Groups (two or more) of nodes that no solution can tell apart; see the symmetry rule."""
        if self._groups is None:
            classes: dict[int, list[tuple[int, int]]] = defaultdict(list)
            for c, n in self.y:
                classes[n].append((c, self.ub[(c, n)]))
            occupied = {n for cls in self.classes for n in cls.running}
            groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
            for n in sorted(classes):
                if n in occupied:
                    continue
                gpus = tuple(
                    (gpu.model.name, frozenset(self.blocked[(n, g)]))
                    for g, gpu in enumerate(self.instance.nodes[n].mig_gpus)
                )
                groups[(tuple(self.free(n)), gpus, tuple(classes[n]))].append(n)
            self._groups = [g for g in groups.values() if len(g) > 1]
        return self._groups

    def variables(self) -> list[cp_model.IntVar]:
        """Every decision variable, for complete hints."""
        return [
            *self.y.values(),
            *self.stay.values(),
            *self.stay_pod.values(),
            *self.evicted.values(),
            *self.u.values(),
            *self.gpu_used.values(),
        ]

    # --- hints and solutions ----------------------------------------------------------------
    def hint(self, assignment: inst.Assignment) -> None:
        """Replace the hint with a complete one: every variable's value in ``assignment``."""
        relabel = self._canonical(assignment)
        values = dict.fromkeys(self.variables(), 0)
        where = assignment.nodes
        for c, cls in enumerate(self.classes):
            placed = 0
            for i in cls.members:
                n = where[i]
                if n is None:
                    continue
                n = relabel.get(n, n)
                if (c, n) not in self.y:
                    continue
                placed += 1
                values[self.y[(c, n)]] += 1
                pod, slot = self.instance.pods[i], assignment.mig_slots[i]
                if pod.node == n and (c, n) in self.stay:
                    values[self.stay[(c, n)]] += 1
                if i in self.stay_pod and pod.node == n and slot == pod.mig_slot:
                    values[self.stay_pod[i]] = 1
                if slot is not None and cls.mig_profile is not None:
                    own = self.u.get((n, slot[0], cls.mig_profile, slot[1]))
                    if own is not None:  # else an incomplete hint, which CP-SAT repairs
                        values[own] = 1
                        values[self.gpu_used[(n, slot[0])]] = 1
            if c in self.evicted:
                values[self.evicted[c]] = max(0, cls.running_count - placed)
        set_hint(self.cp, values)

    def _canonical(self, assignment: inst.Assignment) -> dict[int, int]:
        """How to relabel interchangeable nodes so that ``assignment`` meets the symmetry rule.

        Only the free pods' load counts (the rule orders the model's variables), so only they are read.
        """
        load: dict[int, int] = defaultdict(int)
        for c, cls in enumerate(self.classes):
            weight = self.load_weight(c)
            for i in cls.members:
                if (n := assignment.nodes[i]) is not None:
                    load[n] += weight
        relabel: dict[int, int] = {}
        for group in self.symmetric_groups():
            by_load = sorted(group, key=lambda n: -load[n])
            relabel.update(zip(by_load, group, strict=True))
        return relabel

    def decode(self, value: Callable[[cp_model.IntVar], int]) -> inst.Assignment:
        """The assignment a solution describes: members of each class put on its counted nodes.

        Running pods keep their place where the count allows (MIG pods where their own instance
        is kept), the other running pods fill the remaining places before pending pods do, and new
        MIG pods get the instances nobody stays on.
        """
        nodes, slots = list(self.rest.nodes), list(self.rest.mig_slots)
        for i in self.free_pods:
            nodes[i], slots[i] = None, None
        free_instances: dict[tuple[int, str], list[inst.MigSlot]] = defaultdict(list)
        for (n, g, profile, start), v in self.u.items():
            if value(v):
                free_instances[(n, profile)].append((g, start))
        left: dict[tuple[int, int], int] = {k: value(v) for k, v in self.y.items()}
        for c, cls in enumerate(self.classes):
            for n, members in cls.running.items():
                for i in self._stayers(c, n, members, left.get((c, n), 0), value, free_instances):
                    nodes[i], slots[i] = n, self.instance.pods[i].mig_slot
                    left[(c, n)] -= 1
        for c, cls in enumerate(self.classes):
            waiting = [i for i in cls.members if nodes[i] is None]
            for n in self.by_class[c]:
                taking, waiting = waiting[: left[(c, n)]], waiting[left[(c, n)] :]
                for i in taking:
                    nodes[i] = n
                    if cls.mig_profile is not None and free_instances[(n, cls.mig_profile)]:
                        slots[i] = free_instances[(n, cls.mig_profile)].pop(0)
        return inst.Assignment.of(nodes, slots)

    def _stayers(
        self,
        c: int,
        n: int,
        members: tuple[int, ...],
        count: int,
        value: Callable[[cp_model.IntVar], int],
        free_instances: dict[tuple[int, str], list[inst.MigSlot]],
    ) -> list[int]:
        profile = self.classes[c].mig_profile
        if profile is None:
            return list(members[:count])
        stayers: list[int] = []
        # The solver's stayers first, then any pod whose own instance the solution kept anyway.
        ordered = sorted(members, key=lambda i: -value(self.stay_pod[i]) if i in self.stay_pod else 0)
        for i in ordered:
            slot = self.instance.pods[i].mig_slot
            if len(stayers) < count and slot in free_instances[(n, profile)]:
                free_instances[(n, profile)].remove(slot)
                stayers.append(i)
        return stayers


def set_hint(model: cp_model.CpModel, values: Mapping[cp_model.IntVar, int]) -> None:
    """Replace ``model``'s hint with ``values``, writing the proto directly (add_hint is slow)."""
    model.clear_hints()  # type: ignore[no-untyped-call]
    hint = model.proto.solution_hint
    hint.vars.extend([v.index for v in values])
    hint.values.extend(list(values.values()))


def _fixed_load(
    instance: inst.Instance, fixed: Mapping[int, Place]
) -> tuple[npt.NDArray[np.int64], dict[tuple[int, int], set[int]]]:
    """Capacity each node has left after the fixed pods, and the MIG slots they (or nobody) may use."""
    placed = [(i, node) for i, (node, _) in fixed.items() if node is not None]
    left = instance.allocatable - inst.usage(instance, placed)
    blocked = {
        (n, g): set(gpu.blocked)
        for n, node in enumerate(instance.nodes)
        for g, gpu in enumerate(node.mig_gpus)
    }
    for i, (node, slot) in fixed.items():
        pod = instance.pods[i]
        if node is not None and slot is not None and pod.mig_profile is not None:
            gpu = instance.nodes[node].mig_gpus[slot[0]]
            blocked[(node, slot[0])].update(inst.slots_of(gpu, pod.mig_profile, slot[1]))
    return left, blocked


def _classes(instance: inst.Instance, free: list[int]) -> list[PodClass]:
    groups: dict[tuple[int, tuple[int, ...], str | None, frozenset[int], bool, bool], list[int]] = (
        defaultdict(list)
    )
    for i in free:
        pod = instance.pods[i]
        # A pending pod has nothing to disturb: it joins the running pods that may move and go.
        movable, evictable = (pod.movable, pod.evictable) if pod.node is not None else (True, True)
        key = (pod.priority, pod.requests, pod.mig_profile, pod.eligible, movable, evictable)
        groups[key].append(i)
    classes = []
    for key, members in groups.items():
        members.sort(key=lambda i: (instance.pods[i].node is None, instance.pods[i].order, i))
        running: dict[int, list[int]] = defaultdict(list)
        for i in members:
            if (node := instance.pods[i].node) is not None:
                running[node].append(i)
        first = instance.pods[members[0]]
        movable, evictable = key[-2:]
        classes.append(
            PodClass(
                members=tuple(members),
                priority=first.priority,
                requests=first.requests,
                mig_profile=first.mig_profile,
                movable=bool(movable),
                evictable=bool(evictable),
                running={n: tuple(v) for n, v in running.items()},
            )
        )
    return classes
