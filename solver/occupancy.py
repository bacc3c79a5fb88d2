"""What a cluster holds at one moment, kept cheap to update and to query for thousands of pods.

The replay and its policies work on :class:`Occupancy`: scalar resources used per node as a
numpy matrix (so "which nodes fit this pod" is a few vector operations over 1,000+ nodes), and
each GPU's state as an integer mask of its MIG memory slots (``mig.FULL`` when taken whole).
A GPU is one of three kinds:

- ``WHOLE``: outside MIG mode; serves whole-GPU requests only;
- ``STATIC``: in MIG mode with the instances of the node's ``fairpack.io/mig-layout``; a MIG
  request takes a free configured instance;
- ``DYNAMIC``: MIG-capable and repartitioned on demand: empty, it serves a whole-GPU request;
  otherwise MIG instances go into free slots (the openb replay and the MIG benchmark).

Nodes whose GPUs are in the same state share a *GPU key*; keys are interned to small integers so
scorers can compute once per key what does not depend on cpu and memory.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fairpack.solver import gpumodels, labels, mig, model, topology

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

PROFILE_CLASSES = len(gpumodels.MODELS[0].mig_profiles)
"""MIG profiles by geometry: position in ``GpuModel.mig_profiles`` (the same on every model)."""


class Kind(enum.IntEnum):
    WHOLE = 0
    STATIC = 1
    DYNAMIC = 2


GpuKey = tuple[int, int, tuple[tuple[int, int], ...]]
"""(kind, held slots, configured instances as (profile class, start)) of one GPU."""
NodeKey = tuple[str, tuple[GpuKey, ...]]
"""The GPU model and its GPUs' keys, sorted: nodes with equal keys are equivalent for GPU requests."""


@dataclass(frozen=True, slots=True)
class Demand:
    """A pod as the occupancy sees it."""

    pod: model.Pod
    requests: IntArray
    """Scalar requests, position by position with ``Occupancy.resources``."""
    whole: int = 0
    require_island: bool = False
    mig_class: int = -1
    """Profile class of its MIG request; -1 for none."""

    @property
    def gpu_signature(self) -> tuple[int, int]:
        return (self.whole, self.mig_class)


@dataclass(frozen=True, slots=True)
class Assignment:
    """A pod's place: node position, GPU positions taken whole, or a MIG instance."""

    node: int
    gpus: tuple[int, ...] = ()
    mig: tuple[int, int, int] | None = None
    """(GPU position, profile class, start slot) of its MIG instance."""


def profile_class(name: str) -> int:
    """The geometry class of a profile name (``3g.40gb`` or ``3g``); ValueError if no model has it."""
    for gpu_model in gpumodels.MODELS:
        profile = mig.resolve(gpu_model, name)
        if profile is not None:
            return gpu_model.mig_profiles.index(profile)
    raise ValueError(f"no GPU model has a MIG profile {name!r}")


def gpu_capacity(key: GpuKey) -> float:
    """Free capacity of a GPU in GPUs: slots it could still give, over ``MIG_SLOTS``."""
    kind, held, layout = key
    if kind == Kind.WHOLE:
        return 0.0 if held else 1.0
    if kind == Kind.DYNAMIC:
        return (gpumodels.MIG_SLOTS - held.bit_count()) / gpumodels.MIG_SLOTS
    return sum(_size(c) for c, s in layout if not _mask(c, s) & held) / gpumodels.MIG_SLOTS


def _profile(cls: int) -> gpumodels.MigProfile:
    return gpumodels.MODELS[0].mig_profiles[cls]


def _size(cls: int) -> int:
    return _profile(cls).size


def _mask(cls: int, start: int) -> int:
    return mig.mask(_profile(cls), start)


class Occupancy:
    """Nodes, what their pods hold, and the derived arrays the policies filter and score with."""

    def __init__(self, nodes: Sequence[model.Node], pods: Sequence[model.Pod], *, dynamic_mig: bool) -> None:
        self.nodes = tuple(nodes)
        universe = {r for n in nodes for r in n.allocatable} | {r for p in pods for r in p.requests}
        self.resources = tuple(sorted(r for r in universe if not _is_gpu_resource(r)))
        self.allocatable: IntArray = np.array(
            [[n.allocatable.amount(r) for r in self.resources] for n in nodes], dtype=np.int64
        ).reshape(len(nodes), len(self.resources))
        self.used: IntArray = np.zeros_like(self.allocatable)
        self.schedulable: BoolArray = np.array([not n.unschedulable for n in nodes], dtype=np.bool_)
        self.kinds = [[_kind(n, g, dynamic_mig=dynamic_mig) for g in n.gpus] for n in nodes]
        self.layouts = [[_layout(n, g) for g in n.gpus] for n in nodes]
        self.held = [[0] * len(n.gpus) for n in nodes]
        self.gpu_total: FloatArray = np.array(
            [
                sum(gpu_capacity((k, 0, lay)) for k, lay in zip(kinds, lays, strict=True))
                for kinds, lays in zip(self.kinds, self.layouts, strict=True)
            ],
            dtype=np.float64,
        )
        self.gpu_free: FloatArray = self.gpu_total.copy()
        self.free_whole: IntArray = np.zeros(len(nodes), dtype=np.int64)
        self.mig_ok: BoolArray = np.zeros((len(nodes), PROFILE_CLASSES), dtype=np.bool_)
        self.key_id: IntArray = np.zeros(len(nodes), dtype=np.int64)
        self.changes: IntArray = np.zeros(len(nodes), dtype=np.int64)
        """Times each node changed: lets scorers cache per-node values until it changes."""
        self.keys: list[NodeKey] = []
        self._key_ids: dict[NodeKey, int] = {}
        self._eligible: dict[tuple[object, ...], BoolArray] = {}
        self.holdings: dict[str, tuple[Assignment, IntArray]] = {}
        for i in range(len(nodes)):
            self._refresh(i)

    # --- queries ----------------------------------------------------------------------------

    def demand(self, pod: model.Pod) -> Demand:
        requests = np.array([pod.requests.amount(r) for r in self.resources], dtype=np.int64)
        gpu = pod.gpu
        if gpu is None:
            return Demand(pod, requests)
        mig_class = profile_class(gpu.mig_profile) if gpu.mig_profile is not None else -1
        return Demand(pod, requests, gpu.count, gpu.require_island, mig_class)

    def candidates(self, demand: Demand) -> IntArray:
        """Positions of the nodes where ``demand`` fits now, in node order."""
        fit = self._eligible_mask(demand.pod) & self.schedulable
        for r in np.flatnonzero(demand.requests):
            fit &= self.used[:, r] + demand.requests[r] <= self.allocatable[:, r]
        if demand.whole:
            fit &= self.free_whole >= demand.whole
        if demand.mig_class >= 0:
            fit &= self.mig_ok[:, demand.mig_class]
        found = np.flatnonzero(fit)
        if demand.require_island:
            found = np.array(
                [i for i in found if self.whole_gpus(int(i), demand) is not None], dtype=np.int64
            )
        return found.astype(np.int64)

    def node_key(self, i: int) -> NodeKey:
        return self.keys[int(self.key_id[i])]

    def key_after(self, i: int, assignment: Assignment) -> NodeKey:
        """Node ``i``'s GPU key if ``assignment`` were placed."""
        held = list(self.held[i])
        self._apply(held, assignment, take=True)
        return self._key(i, held)

    def whole_gpus(self, i: int, demand: Demand) -> Assignment | None:
        """Whole GPUs for ``demand`` on node ``i``, the NVLink topology's choice."""
        node = self.nodes[i]
        free = {node.gpus[p].index for p in self._whole_free(i)}
        chosen = topology.choose_gpus(node, free, demand.whole, require_island=demand.require_island)
        if chosen is None:
            return None
        position = {g.index: p for p, g in enumerate(node.gpus)}
        return Assignment(i, tuple(position[g] for g in chosen))

    def mig_options(self, i: int, mig_class: int) -> list[Assignment]:
        """Every place a new instance of ``mig_class`` could take on node ``i``."""
        options: list[Assignment] = []
        for p, kind in enumerate(self.kinds[i]):
            held = self.held[i][p]
            if kind == Kind.DYNAMIC:
                starts = mig.free_starts(_profile(mig_class), held)
            elif kind == Kind.STATIC:
                starts = tuple(s for c, s in self.layouts[i][p] if c == mig_class and not _mask(c, s) & held)
            else:
                starts = ()
            options.extend(Assignment(i, mig=(p, mig_class, s)) for s in starts)
        return options

    def first_fit(self, i: int, demand: Demand) -> Assignment:
        """A plain device allocator's choice: topology for whole GPUs, the first free MIG slot."""
        if demand.whole:
            found = self.whole_gpus(i, demand)
            assert found is not None, "candidates() only offers nodes with the GPUs"
            return found
        if demand.mig_class >= 0:
            return self.mig_options(i, demand.mig_class)[0]
        return Assignment(i)

    # --- updates ----------------------------------------------------------------------------

    def place(self, demand: Demand, assignment: Assignment) -> None:
        i = assignment.node
        self.used[i] += demand.requests
        self._apply(self.held[i], assignment, take=True)
        self.holdings[demand.pod.key] = (assignment, demand.requests)
        self._refresh(i)

    def remove(self, pod_key: str) -> None:
        """Release what the pod holds (nothing if it was never placed)."""
        held = self.holdings.pop(pod_key, None)
        if held is None:
            return
        assignment, requests = held
        self.used[assignment.node] -= requests
        self._apply(self.held[assignment.node], assignment, take=False)
        self._refresh(assignment.node)

    # --- internals --------------------------------------------------------------------------

    @staticmethod
    def _apply(held: list[int], assignment: Assignment, *, take: bool) -> None:
        slots = [(p, mig.FULL) for p in assignment.gpus]
        if assignment.mig is not None:
            p, cls, start = assignment.mig
            slots.append((p, _mask(cls, start)))
        for p, bits in slots:
            held[p] = held[p] | bits if take else held[p] & ~bits

    def _whole_free(self, i: int) -> list[int]:
        return [
            p
            for p, kind in enumerate(self.kinds[i])
            if kind in (Kind.WHOLE, Kind.DYNAMIC) and self.held[i][p] == 0
        ]

    def _key(self, i: int, held: Sequence[int]) -> NodeKey:
        gpus = tuple(
            sorted((int(k), h, lay) for k, h, lay in zip(self.kinds[i], held, self.layouts[i], strict=True))
        )
        gpu_model = next((g.model.name for g in self.nodes[i].gpus if g.model is not None), "")
        return (gpu_model, gpus)

    def intern(self, key: NodeKey) -> int:
        found = self._key_ids.get(key)
        if found is None:
            found = self._key_ids[key] = len(self.keys)
            self.keys.append(key)
        return found

    def _refresh(self, i: int) -> None:
        self.changes[i] += 1
        key = self._key(i, self.held[i])
        self.key_id[i] = self.intern(key)
        self.free_whole[i] = len(self._whole_free(i))
        self.gpu_free[i] = sum(gpu_capacity(g) for g in key[1])
        self.mig_ok[i] = np.any([_takes(g) for g in key[1]], axis=0) if key[1] else False

    def _eligible_mask(self, pod: model.Pod) -> BoolArray:
        signature = (
            tuple(sorted(pod.node_selector.items())),
            pod.affinity,
            pod.tolerations,
            pod.gpu.product if pod.gpu else None,
            pod.gpu.mig_profile if pod.gpu else None,
        )
        found = self._eligible.get(signature)
        if found is None:
            found = np.array([model.pod_fits_node_statically(pod, n) for n in self.nodes], dtype=np.bool_)
            self._eligible[signature] = found
        return found


@functools.cache
def _takes(gpu: GpuKey) -> tuple[bool, ...]:
    """Per profile class, whether a GPU in state ``gpu`` can take a new instance of it."""
    kind, held, layout = gpu
    if kind == Kind.STATIC:
        free = {c for c, s in layout if not _mask(c, s) & held}
        return tuple(c in free for c in range(PROFILE_CLASSES))
    if kind == Kind.DYNAMIC:
        return tuple(mig.fits(_profile(c), held) for c in range(PROFILE_CLASSES))
    return (False,) * PROFILE_CLASSES


def _is_gpu_resource(name: str) -> bool:
    # GPUs and MIG instances are tracked per device, not as counts.
    return name == labels.GPU_RESOURCE or name.startswith(labels.MIG_RESOURCE_PREFIX)


def _kind(node: model.Node, gpu: model.Gpu, *, dynamic_mig: bool) -> Kind:
    if gpu.index in node.mig_gpus:
        return Kind.STATIC
    if dynamic_mig and gpu.model is not None and gpu.model.mig_profiles:
        return Kind.DYNAMIC
    return Kind.WHOLE


def _layout(node: model.Node, gpu: model.Gpu) -> tuple[tuple[int, int], ...]:
    return tuple(sorted((profile_class(i.profile), i.start) for i in node.mig if i.gpu == gpu.index))
