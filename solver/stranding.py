"""Free GPU capacity that waiting work cannot use: the numbers operators watch for fragmentation.

Two plain counts, read from a node's GPU state (the :data:`fairpack.solver.occupancy.NodeKey` the
extender's cluster view derives, and ``fairpack status`` with it):

- *stranded GPUs*: free whole-mode GPUs on a node where another whole-mode GPU is held. A job
  that wants the whole node cannot have them, and they are what whole-GPU packing tries to
  avoid leaving behind;
- *unusable MIG slots per profile*: free memory slots (of ``MIG_SLOTS`` per GPU) of configured,
  untaken MIG instances that a pod asking for that profile could not take, because the free
  instances there are of other profiles (the node's ``fairpack.io/mig-layout`` is fixed). A
  cluster with 20 free ``1g`` slots and no free ``3g`` instance shows 20 unusable ``3g`` slots.

The expected-fragmentation measure that the extender's prioritize minimises (FGD) lives in
:mod:`fairpack.solver.fragmentation`; these counts are simpler and say what a person can act on.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fairpack.solver import gpumodels, mig
from fairpack.solver import occupancy as occ


@dataclass(frozen=True, slots=True)
class NodeFragments:
    """What is free on one node and how much of it is stranded."""

    whole_free: int
    """Free whole-mode GPUs."""
    stranded: int
    """Free whole-mode GPUs on this node if another whole-mode GPU is held, else 0."""
    mig_free_slots: int
    """Memory slots of the node's free (configured, untaken) MIG instances."""
    mig_usable: Mapping[str, int]
    """Per profile configured on the node: slots of its free instances of that profile."""


@functools.lru_cache(maxsize=65536)
def node_fragments(key: occ.NodeKey) -> NodeFragments:
    """The free and stranded capacity of a node whose GPUs are in the state ``key``.

    Computed once per key (nodes in the same state share one), so a metrics scrape over a large
    cluster costs a lookup per node. A node whose GPU model fairpack does not know has no MIG;
    ``DYNAMIC`` GPUs (the replay's on-demand MIG, which the extender never sees) count as neither.
    """
    model_name, gpus = key
    profiles = gpumodels.by_name(model_name).mig_profiles if model_name else ()
    whole = whole_free = free_slots = 0
    usable: Counter[str] = Counter()
    for kind, held, layout in gpus:
        if kind == occ.Kind.DYNAMIC:
            continue
        if kind == occ.Kind.WHOLE:
            whole += 1
            whole_free += held == 0
            continue
        for cls, start in layout:
            profile = profiles[cls]
            usable[profile.name] += 0  # configured here: its series exists even when all are taken
            if not mig.mask(profile, start) & held:
                free_slots += profile.size
                usable[profile.name] += profile.size
    return NodeFragments(
        whole_free=whole_free,
        stranded=whole_free if whole_free < whole else 0,
        mig_free_slots=free_slots,
        mig_usable=dict(usable),
    )


@dataclass(frozen=True, slots=True)
class Totals:
    """The cluster's free capacity and its stranded part, summed over nodes."""

    whole_free: int = 0
    stranded: int = 0
    mig_free_slots: int = 0
    mig_unusable: Mapping[str, int] = field(default_factory=dict)
    """Per profile configured anywhere: free slots no free instance of that profile covers."""

    @property
    def free_gpus(self) -> float:
        """Free GPU capacity in GPUs: whole GPUs plus free MIG slots over ``MIG_SLOTS``."""
        return self.whole_free + self.mig_free_slots / gpumodels.MIG_SLOTS


def totals(nodes: Iterable[NodeFragments]) -> Totals:
    """Sum per-node fragments; a profile's unusable slots are all free slots but its own."""
    whole_free = stranded = free_slots = 0
    usable: Counter[str] = Counter()
    for n in nodes:
        whole_free += n.whole_free
        stranded += n.stranded
        free_slots += n.mig_free_slots
        for profile, slots in n.mig_usable.items():
            usable[profile] += slots
    return Totals(
        whole_free=whole_free,
        stranded=stranded,
        mig_free_slots=free_slots,
        mig_unusable={profile: free_slots - usable[profile] for profile in sorted(usable)},
    )
