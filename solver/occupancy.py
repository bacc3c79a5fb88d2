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

A MIG profile name is resolved to its geometry class on each GPU's own model: the same name can
mean another geometry on another model (``1g.10gb`` is the single-slot 1g on an A100-80GB, the
double-memory two-slot 1g on an A100-40GB). Layouts are resolved per GPU; a pod's request per
node, through one small class table per catalogue model.
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
    mig_profile: str | None = None
    """Profile name of its MIG request (full or compute part); None for none."""
    mig_classes: IntArray | None = None
    """Per node position, that profile's class on the node's GPU model (-1: the model has none)."""

    @property
    def gpu_signature(self) -> tuple[int, str]:
        """What its GPU request is, for grouping: whole GPUs and MIG profile name ("" for none)."""
        return (self.whole, self.mig_profile or "")

    def mig_class(self, node: int) -> int:
        """Class of its MIG profile on node ``node``'s GPU model; -1 without a MIG request or there."""
        return -1 if self.mig_classes is None else int(self.mig_classes[node])


@dataclass(frozen=True, slots=True)
class Assignment:
    """A pod's place: node position, GPU positions taken whole, or a MIG instance."""

    node: int
    gpus: tuple[int, ...] = ()
    mig: tuple[int, int, int] | None = None
    """(GPU position, profile class, start slot) of its MIG instance."""


@functools.cache
def profile_class(gpu_model: gpumodels.GpuModel, name: str) -> int:
    """The geometry class of profile ``name`` (``3g.40gb`` or ``3g``) on ``gpu_model``; -1 if it has none.

    Resolved on the given model only: ``1g.10gb`` is class 0 on an A100-80GB, class 1 on an A100-40GB.
    """
    profile = mig.resolve(gpu_model, name)
    return -1 if profile is None else gpu_model.mig_profiles.index(profile)


def known_profile(name: str) -> None:
    """ValueError if no catalogue model has a MIG profile ``name`` (a typo, not a model mismatch)."""
    if all(profile_class(m, name) < 0 for m in gpumodels.MODELS):
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
        # Each node's GPU model as a position in ``_models`` (the last entry, None, for no model):
        # a profile's per-node classes are then one lookup in a per-model table.
        node_models = [_node_model(n) for n in nodes]
        self._models: list[gpumodels.GpuModel | None] = [*dict.fromkeys(m for m in node_models if m), None]
        self._model_of: IntArray = np.array(
            [self._models.index(m) for m in node_models], dtype=np.int64
        ).reshape(len(nodes))
        self._rows: IntArray = np.arange(len(nodes), dtype=np.int64)
        self._classes: dict[str, IntArray] = {}
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
        if gpu.mig_profile is None:
            return Demand(pod, requests, gpu.count, gpu.require_island)
        return Demand(
            pod, requests, gpu.count, gpu.require_island, gpu.mig_profile, self.mig_classes(gpu.mig_profile)
        )

    def mig_classes(self, name: str) -> IntArray:
        """Per node, the class of MIG profile ``name`` on its GPU model (-1 where it has none).

        ValueError if no catalogue model has the profile.
        """
        found = self._classes.get(name)
        if found is None:
            known_profile(name)
            table = np.array(
                [profile_class(m, name) if m is not None else -1 for m in self._models], dtype=np.int64
            )
            found = self._classes[name] = table[self._model_of]
        return found

    def candidates(self, demand: Demand) -> IntArray:
        """Positions of the nodes where ``demand`` fits now, in node order."""
        fit = self._eligible_mask(demand.pod) & self.schedulable
        for r in np.flatnonzero(demand.requests):
            fit &= self.used[:, r] + demand.requests[r] <= self.allocatable[:, r]
        if demand.whole:
            fit &= self.free_whole >= demand.whole
        if demand.mig_classes is not None:
            classes = demand.mig_classes
            # -1 (no such profile on the node's model) reads the last column, then is masked out.
            fit &= (classes >= 0) & self.mig_ok[self._rows, classes]
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
        """Every place a new instance of ``mig_class`` could take on node ``i``.

        ``mig_class`` is a class on node ``i``'s model: ``demand.mig_class(i)`` for a pod.
        """
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
        if demand.mig_profile is not None:
            return self.mig_options(i, demand.mig_class(i))[0]
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


def _node_model(node: model.Node) -> gpumodels.GpuModel | None:
    # The model a node key names: a node's GPUs are of one model.
    return next((g.model for g in node.gpus if g.model is not None), None)


def _layout(node: model.Node, gpu: model.Gpu) -> tuple[tuple[int, int], ...]:
    """The GPU's configured instances as (class, start), each resolved on the GPU's own model."""
    mine = [i for i in node.mig if i.gpu == gpu.index]
    if not mine:
        return ()
    if gpu.model is None:
        raise ValueError(f"node {node.name}: GPU {gpu.index} has MIG instances but no known GPU model")
    return layout_classes(gpu.model, mine)


def layout_classes(
    gpu_model: gpumodels.GpuModel, instances: Sequence[model.MigInstance]
) -> tuple[tuple[int, int], ...]:
    """Configured ``instances`` of one GPU of ``gpu_model`` as sorted (class, start) pairs.

    ValueError for a profile the model has not (layouts are validated against the model on reading).
    """
    pairs = []
    for instance in instances:
        cls = profile_class(gpu_model, instance.profile)
        if cls < 0:
            raise ValueError(f"GPU {instance.gpu}: {gpu_model.name} has no MIG profile {instance.profile!r}")
        pairs.append((cls, instance.start))
    return tuple(sorted(pairs))
