"""The cluster model: nodes, pods, GPUs, MIG instances and placements as typed, frozen values.

Every layer decides on these types: the adapters in :mod:`fairpack.solver.kube` build them from
Kubernetes object dicts, the extender filters and scores with them, the packer reduces them to
integer vectors, and the replay drives its policies with them. Quantities are integers in
fairpack's unit (millicores for cpu, bytes for memory and storage, counts otherwise; see
:mod:`fairpack.solver.quantity`).

The predicates split what never changes for a pod and a node (selector, required affinity,
taints, GPU product: :func:`static_misfit`) from what depends on the node's load
(:func:`resources_misfit`); both answer with a sentence a person understands, or None.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from fairpack.solver import gpumodels, labels

CPU: Final = "cpu"
MEMORY: Final = "memory"
PODS: Final = "pods"
EPHEMERAL_STORAGE: Final = "ephemeral-storage"

TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
SelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
TERMINATED_PHASES: Final = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True, slots=True, eq=False)
class Resources(Mapping[str, int]):
    """An immutable amount per resource name; absent names are 0 and zero amounts are dropped."""

    _amounts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, amounts: Mapping[str, int] | None = None, /, **named: int) -> Resources:
        """Resources from a mapping and/or keywords (``Resources.of(cpu=500, memory=2**30)``)."""
        merged = {**(amounts or {}), **named}
        return cls({k: v for k, v in merged.items() if v != 0})

    def __getitem__(self, name: str) -> int:
        return self._amounts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._amounts)

    def __len__(self) -> int:
        return len(self._amounts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._amounts) == dict(other)

    def __hash__(self) -> int:
        return hash(frozenset(self._amounts.items()))

    def __repr__(self) -> str:
        return f"Resources({self._amounts!r})"

    def amount(self, name: str) -> int:
        """The amount of ``name`` (0 when absent)."""
        return self._amounts.get(name, 0)

    def __add__(self, other: Mapping[str, int]) -> Resources:
        total = dict(self._amounts)
        for name, value in other.items():
            total[name] = total.get(name, 0) + value
        return Resources.of(total)

    def __sub__(self, other: Mapping[str, int]) -> Resources:
        return self + {name: -value for name, value in other.items()}

    def fits(self, capacity: Mapping[str, int]) -> bool:
        """Every positive amount here is at most ``capacity``'s (absent there means 0)."""
        return all(value <= capacity.get(name, 0) for name, value in self._amounts.items() if value > 0)

    def shortfall(self, capacity: Mapping[str, int]) -> dict[str, int]:
        """How much of each resource ``capacity`` lacks to hold these (empty when it fits)."""
        return {
            name: value - capacity.get(name, 0)
            for name, value in self._amounts.items()
            if value > capacity.get(name, 0)
        }


NO_RESOURCES: Final = Resources()


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: TaintEffect = "NoSchedule"


@dataclass(frozen=True, slots=True)
class Toleration:
    """A pod's toleration; an empty key with ``Exists`` tolerates every taint."""

    key: str = ""
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str = ""
    effect: TaintEffect | None = None
    """None tolerates every effect."""

    def tolerates(self, taint: Taint) -> bool:
        """Kubernetes' ``Toleration.ToleratesTaint``."""
        if self.effect is not None and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.value == taint.value


@dataclass(frozen=True, slots=True)
class NodeSelectorRequirement:
    """One expression of a node selector term (``matchExpressions`` or ``matchFields``)."""

    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    def matches(self, node_labels: Mapping[str, str]) -> bool:
        present = self.key in node_labels
        value = node_labels.get(self.key, "")
        if self.operator == "In":
            return present and value in self.values
        if self.operator == "NotIn":
            return not present or value not in self.values
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        # Gt/Lt compare integers; a label or value that is not one never matches.
        try:
            label, bound = int(value), int(self.values[0])
        except (ValueError, IndexError):
            return False
        return present and (label > bound if self.operator == "Gt" else label < bound)


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """Requirements that must all hold; an empty term matches no node (as in Kubernetes)."""

    match_expressions: tuple[NodeSelectorRequirement, ...] = ()
    match_fields: tuple[NodeSelectorRequirement, ...] = ()
    """Only the field ``metadata.name`` exists for nodes."""

    def matches(self, node: Node) -> bool:
        if not self.match_expressions and not self.match_fields:
            return False
        fields = {"metadata.name": node.name}
        return all(r.matches(node.labels) for r in self.match_expressions) and all(
            r.matches(fields) for r in self.match_fields
        )


@dataclass(frozen=True, slots=True)
class Gpu:
    """One physical GPU of a node."""

    index: int
    """``nvidia-smi`` index on the node."""
    model: gpumodels.GpuModel | None
    """The catalogue model, or None for a product fairpack does not know (no MIG then)."""
    product: str = ""
    """The ``nvidia.com/gpu.product`` label value."""
    memory_mib: int = 0
    island: int | None = None
    """Position of its NVLink island in ``Node.islands``; None when the node declares none."""


@dataclass(frozen=True, slots=True)
class MigInstance:
    """A MIG GPU instance: ``profile`` on GPU ``gpu`` starting at memory slot ``start``."""

    gpu: int
    profile: str
    start: int

    def __str__(self) -> str:
        """The ``fairpack.io/mig-instance`` annotation format, ``<gpu>:<profile>@<start>``."""
        return f"{self.gpu}:{self.profile}@{self.start}"


@dataclass(frozen=True, slots=True)
class Node:
    """A node as scheduling sees it."""

    name: str
    allocatable: Resources = NO_RESOURCES
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    gpus: tuple[Gpu, ...] = ()
    mig: tuple[MigInstance, ...] = ()
    """MIG instances configured on the node (the ``fairpack.io/mig-layout`` annotation)."""
    islands: tuple[tuple[int, ...], ...] = ()
    """GPU indices per NVLink island (``fairpack.io/nvlink-islands``); empty when unknown."""
    unschedulable: bool = False

    @property
    def mig_gpus(self) -> frozenset[int]:
        """Indices of GPUs in MIG mode (those the layout lists); they serve no whole-GPU request."""
        return frozenset(i.gpu for i in self.mig)

    @property
    def whole_gpus(self) -> tuple[Gpu, ...]:
        """GPUs that serve whole-GPU requests."""
        mig = self.mig_gpus
        return tuple(g for g in self.gpus if g.index not in mig)

    def gpu(self, index: int) -> Gpu:
        """The GPU with ``nvidia-smi`` index ``index``."""
        return next(g for g in self.gpus if g.index == index)

    @property
    def products(self) -> frozenset[str]:
        """GPU product labels and catalogue names present on the node."""
        names = {g.product for g in self.gpus if g.product}
        return frozenset(names | {g.model.name for g in self.gpus if g.model is not None})


@dataclass(frozen=True, slots=True)
class GpuRequest:
    """What a pod asks of GPUs: ``count`` whole GPUs, or one MIG instance of ``mig_profile``."""

    count: int = 0
    product: str | None = None
    """A product label or catalogue name the GPUs must be (from the node selector), if any."""
    require_island: bool = False
    """All ``count`` GPUs in one NVLink island (``fairpack.io/require-nvlink-island``)."""
    mig_profile: str | None = None
    """A profile name (``3g.40gb``) or, for model-independent workloads, its compute part (``3g``)."""

    @property
    def whole(self) -> bool:
        return self.count > 0

    def __str__(self) -> str:
        if self.mig_profile is not None:
            return f"MIG {self.mig_profile}"
        island = " in one NVLink island" if self.require_island else ""
        return f"{self.count} GPU{'s' if self.count != 1 else ''}{island}"


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod: running on ``node_name`` or pending when that is None."""

    namespace: str
    name: str
    uid: str = ""
    requests: Resources = NO_RESOURCES
    """Kubernetes' effective request, including ``pods: 1`` and the pod overhead."""
    priority: int = 0
    tenant: str | None = None
    user: str | None = None
    gpu: GpuRequest | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    affinity: tuple[NodeSelectorTerm, ...] | None = None
    """Required node affinity terms (any one must match); None when the pod has none."""
    tolerations: tuple[Toleration, ...] = ()
    node_name: str | None = None
    phase: str = "Pending"
    created: float = 0.0
    """Creation time, seconds since the epoch (or since the start of a trace)."""
    deleted: float | None = None
    """When the pod goes away (a trace's deletion time), if known."""
    scheduler_name: str = "default-scheduler"
    controlled: bool = False
    """Has a controller owner (ReplicaSet, Job, ...) that would recreate it if it were evicted."""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def terminated(self) -> bool:
        """Succeeded or Failed: holds no resources."""
        return self.phase in TERMINATED_PHASES

    @property
    def bound(self) -> bool:
        return self.node_name is not None and not self.terminated


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a pod goes: its node and, for GPU pods, which GPUs or which MIG instance."""

    pod: str
    """``namespace/name``."""
    node: str
    gpus: tuple[int, ...] = ()
    mig: MigInstance | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """A placement decision for a set of pods; the packer's richer plan is in ``solver.packing``."""

    placements: tuple[Placement, ...] = ()
    pending: tuple[str, ...] = ()
    """Pods the plan could not place, by key."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Nodes and pods at one moment; terminated pods are dropped by the adapters."""

    nodes: tuple[Node, ...] = ()
    pods: tuple[Pod, ...] = ()

    @property
    def running(self) -> tuple[Pod, ...]:
        return tuple(p for p in self.pods if p.bound)

    @property
    def pending(self) -> tuple[Pod, ...]:
        return tuple(p for p in self.pods if p.node_name is None and not p.terminated)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def used(self) -> dict[str, Resources]:
        """Requests of the running pods summed per node name."""
        totals: dict[str, dict[str, int]] = {n.name: {} for n in self.nodes}
        for pod in self.running:
            assert pod.node_name is not None  # running pods are bound
            total = totals.setdefault(pod.node_name, {})
            for name, value in pod.requests.items():
                total[name] = total.get(name, 0) + value
        return {name: Resources.of(total) for name, total in totals.items()}


# --- predicates -------------------------------------------------------------------------------


def static_misfit(pod: Pod, node: Node) -> str | None:
    """Why ``pod`` can never run on ``node`` whatever runs there (None if it can).

    Checks what does not change with the load: the node selector, required node affinity,
    taints with effect NoSchedule/NoExecute against the pod's tolerations, the GPU product,
    and whether the node has MIG at all for a MIG request.
    """
    for key, value in pod.node_selector.items():
        if node.labels.get(key) != value:
            return f"node selector {key}={value} does not match (node has {node.labels.get(key, 'no label')})"
    if pod.affinity is not None and not any(term.matches(node) for term in pod.affinity):
        return "required node affinity does not match"
    for taint in node.taints:
        if taint.effect != "PreferNoSchedule" and not any(t.tolerates(taint) for t in pod.tolerations):
            return f"untolerated taint {taint.key}={taint.value}:{taint.effect}"
    return _gpu_misfit(pod.gpu, node) if pod.gpu is not None else None


def pod_fits_node_statically(pod: Pod, node: Node) -> bool:
    return static_misfit(pod, node) is None


def resources_misfit(pod: Pod, node: Node, used: Mapping[str, int]) -> str | None:
    """Why ``pod``'s requests do not fit in what ``used`` leaves of the node's allocatable."""
    if node.unschedulable:
        return "node is cordoned (unschedulable)"
    free = node.allocatable - used
    short = pod.requests.shortfall(free)
    if not short:
        return None
    return "insufficient " + ", ".join(
        f"{name} (needs {pod.requests.amount(name)}, free {free.amount(name)})" for name in sorted(short)
    )


def _gpu_misfit(request: GpuRequest, node: Node) -> str | None:
    if request.product is not None and request.product not in node.products:
        return f"GPU product {request.product} wanted, node has {', '.join(sorted(node.products)) or 'none'}"
    if request.whole and len(node.whole_gpus) < request.count:
        return f"needs {request} and node has {len(node.whole_gpus)} GPUs outside MIG mode"
    if request.mig_profile is not None and not any(
        g.model is not None and _has_profile(g.model, request.mig_profile) for g in node.gpus
    ):
        return f"no GPU of the node offers MIG profile {request.mig_profile}"
    return None


def _has_profile(model: gpumodels.GpuModel, name: str) -> bool:
    return any(p.name == name or p.name.split(".")[0] == name for p in model.mig_profiles)


def mig_resource(profile: str) -> str:
    """The extended resource of a MIG profile (mixed strategy): ``nvidia.com/mig-3g.40gb``."""
    return f"{labels.MIG_RESOURCE_PREFIX}{profile}"
