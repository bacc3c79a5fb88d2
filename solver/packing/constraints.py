"""The packing rules, one function each, added to a :class:`~fairpack.solver.packing.model.PackingModel`."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import TYPE_CHECKING

from ortools.sat.python import cp_model

from fairpack.solver.packing import instance as inst

if TYPE_CHECKING:
    from fairpack.solver.packing.model import PackingModel


def add_all(m: PackingModel, *, max_evictions: int | None) -> None:
    """Every rule of the packing problem."""
    capacity(m)
    class_size(m)
    unevictable_stay_placed(m)
    stay_where_placed(m)
    evictions(m, max_evictions=max_evictions)
    mig_instances_match_pods(m)
    mig_instances_do_not_overlap(m)
    identical_empty_nodes_in_order(m)
    gpus_in_use(m)


def capacity(m: PackingModel) -> None:
    """No node gets more of any resource than it has left after its fixed pods."""
    by_node: dict[int, list[int]] = defaultdict(list)
    for c, n in m.y:
        by_node[n].append(c)
    for n, classes in by_node.items():
        for r, have in enumerate(m.free(n)):
            needs = [(m.classes[c].requests[r], c) for c in classes if m.classes[c].requests[r]]
            # Skip rows the variables' bounds already satisfy: they only slow presolve down.
            if sum(need * m.ub[(c, n)] for need, c in needs) > have:
                variables = [m.y[(c, n)] for _, c in needs]
                m.cp.add(cp_model.LinearExpr.weighted_sum(variables, [need for need, _ in needs]) <= have)


def class_size(m: PackingModel) -> None:
    """A class places at most as many pods as it has."""
    for c, cls in enumerate(m.classes):
        if sum(m.ub[(c, n)] for n in m.by_class[c]) > len(cls.members):
            m.cp.add(m.placed(c) <= len(cls.members))


def unevictable_stay_placed(m: PackingModel) -> None:
    """Running pods that may not be evicted are all placed (they may still move if movable)."""
    for c, cls in enumerate(m.classes):
        if cls.running and not cls.evictable:
            m.cp.add(m.placed(c) >= cls.running_count)


def stay_where_placed(m: PackingModel) -> None:
    """A running pod stays only where its class keeps a pod, and a MIG pod only on its own instance."""
    for (c, n), stay in m.stay.items():
        m.cp.add(stay <= m.y[(c, n)])
    for c, cls in enumerate(m.classes):
        if cls.mig_profile is None:
            continue
        for n, members in cls.running.items():
            staying = [m.stay_pod[i] for i in members if i in m.stay_pod]
            if not staying:
                continue
            if cls.movable:
                m.cp.add(sum(staying) <= m.y[(c, n)])
            else:  # the class's pods here are these running ones: each placed one stays
                m.cp.add(sum(staying) == m.y[(c, n)])
            for i in members:
                slot = m.instance.pods[i].mig_slot
                own = m.u.get((n, slot[0], cls.mig_profile, slot[1])) if slot is not None else None
                if own is None:
                    m.cp.add(m.stay_pod[i] == 0)
                else:
                    m.cp.add_implication(m.stay_pod[i], own)


def evictions(m: PackingModel, *, max_evictions: int | None) -> None:
    """Evictions of a class are its running pods it does not place, within the limit if one is set."""
    for c, evicted in m.evicted.items():
        m.cp.add(evicted >= m.classes[c].running_count - m.placed(c))
    if max_evictions is not None:
        m.cp.add(sum(m.evicted.values()) <= max_evictions - m.evicted_outside)


def mig_instances_match_pods(m: PackingModel) -> None:
    """Each MIG pod on a node has its own instance of its profile there."""
    pods: dict[tuple[int, str], list[cp_model.IntVar]] = defaultdict(list)
    for (c, n), v in m.y.items():
        if (profile := m.classes[c].mig_profile) is not None:
            pods[(n, profile)].append(v)
    instances: dict[tuple[int, str], list[cp_model.IntVar]] = defaultdict(list)
    for (n, _, profile, _), v in m.u.items():
        instances[(n, profile)].append(v)
    for key, counts in pods.items():
        m.cp.add(sum(instances[key]) == sum(counts))


def mig_instances_do_not_overlap(m: PackingModel) -> None:
    """No memory slot of a GPU is in two instances."""
    covering: dict[tuple[int, int, int], list[cp_model.IntVar]] = defaultdict(list)
    for (n, g, profile, start), v in m.u.items():
        gpu = m.instance.nodes[n].mig_gpus[g]
        for slot in inst.slots_of(gpu, profile, start):
            covering[(n, g, slot)].append(v)
    for variables in covering.values():
        if len(variables) > 1:
            m.cp.add_at_most_one(variables)


def gpus_in_use(m: PackingModel) -> None:
    """A MIG GPU with an instance of a free pod is in use (what the fragmentation goal counts)."""
    for (n, g, _, _), v in m.u.items():
        m.cp.add_implication(v, m.gpu_used[(n, g)])


def identical_empty_nodes_in_order(m: PackingModel) -> None:
    """Break symmetry: among interchangeable nodes, a node carries at least the load of the next.

    Interchangeable means the same capacity left, the same MIG GPUs and free slots, the same
    classes allowed with the same bounds, and no running pod the model could keep there: any
    solution permuted among such nodes is as good, so ordering them loses nothing.
    """
    for group in m.symmetric_groups():
        loads = [m.load(n) for n in group]
        for heavier, lighter in itertools.pairwise(loads):
            m.cp.add(heavier >= lighter)
