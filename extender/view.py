"""The extender's cluster view: nodes, the pods bound to them, and which devices each pod holds.

Fed by the watch (:mod:`fairpack.extender.watch`) or a static snapshot; read by the verbs
(:mod:`fairpack.extender.verbs`). A pod's devices are the ones its ``fairpack.io/gpu-indices`` /
``fairpack.io/mig-instance`` annotations name (written by our bind), or, between our bind and
the watch event that shows them, the placement we *assumed* at bind. Pods bound by someone else
without annotations are given the lowest free devices, so counts stay right.

Per node the derived state (free GPUs, free MIG instances, used resources) is computed once per
change. Every change also marks the node dirty in each registered *sink* (a set of node names):
the per-shape indexes of :mod:`fairpack.extender.index` re-judge only those nodes, which is what
keeps a 1,000-node filter from visiting every node per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fairpack.extender import index
from fairpack.solver import kube, labels, mig, model

log = logging.getLogger(__name__)
T = TypeVar("T")


def devices_of(pod: model.Pod, node: model.Node) -> model.Placement | None:
    """The devices the pod's annotations name on ``node`` (None when absent or not on the node)."""
    raw_gpus = pod.annotations.get(labels.GPU_INDICES_ANNOTATION)
    raw_mig = pod.annotations.get(labels.MIG_INSTANCE_ANNOTATION)
    try:
        if raw_mig:
            gpu, rest = raw_mig.split(":", 1)
            profile, start = rest.rsplit("@", 1)
            instance = model.MigInstance(int(gpu), profile, int(start))
            return model.Placement(pod.key, node.name, mig=instance) if instance in node.mig else None
        if raw_gpus:
            gpus = tuple(int(i) for i in raw_gpus.split(","))
            whole = {g.index for g in node.whole_gpus}
            return model.Placement(pod.key, node.name, gpus=gpus) if set(gpus) <= whole else None
    except ValueError:
        log.warning("pod %s: unreadable device annotations %r / %r", pod.key, raw_gpus, raw_mig)
    return None


@dataclass(slots=True)
class NodeState:
    """One node, its pods and (derived on demand) what is free on it."""

    node: model.Node
    pods: dict[str, model.Pod] = field(default_factory=dict)
    """Pods bound (or assumed) here, by UID."""
    assumed: dict[str, model.Placement] = field(default_factory=dict)
    """Devices we gave at bind to pods whose annotations the view has not seen yet, by UID."""
    _derived: tuple[frozenset[int], frozenset[model.MigInstance], model.Resources] | None = None
    memo: dict[Any, Any] = field(default_factory=dict)
    """Values derived from the node's state (e.g. its fragmentation key), valid until it changes."""
    sinks: list[set[str]] = field(default_factory=list)
    """Sets this node's name is added to whenever it changes (shared with the view)."""

    def changed(self) -> None:
        self._derived = None
        self.memo.clear()
        for sink in self.sinks:
            sink.add(self.node.name)

    def _derive(self) -> tuple[frozenset[int], frozenset[model.MigInstance], model.Resources]:
        if self._derived is None:
            self._derived = occupancy(self.node, self.pods.values(), self.assumed)
        return self._derived

    @property
    def free_gpus(self) -> frozenset[int]:
        """Whole-mode GPU indices no pod holds."""
        return self._derive()[0]

    @property
    def free_mig(self) -> frozenset[model.MigInstance]:
        """Configured MIG instances no pod holds."""
        return self._derive()[1]

    @property
    def used(self) -> model.Resources:
        return self._derive()[2]

    def placement_of(self, uid: str) -> model.Placement | None:
        """The devices pod ``uid`` holds here, as the view accounts them."""
        pod = self.pods.get(uid)
        if pod is None:
            return None
        return self.assumed.get(uid) or devices_of(pod, self.node)


def occupancy(
    node: model.Node, pods: Iterable[model.Pod], assumed: Mapping[str, model.Placement]
) -> tuple[frozenset[int], frozenset[model.MigInstance], model.Resources]:
    """(free whole GPUs, free MIG instances, used resources) of ``node`` holding ``pods`` and the
    ``assumed`` placements (whose pods the view may still see pending)."""
    free_gpus = {g.index for g in node.whole_gpus}
    free_mig = set(node.mig)
    used: dict[str, int] = {}
    unplaced: list[model.Pod] = []
    placements = list(assumed.values())
    for pod in pods:
        for name, value in pod.requests.items():
            used[name] = used.get(name, 0) + value
        if pod.gpu is None or pod.uid in assumed:
            continue
        placement = devices_of(pod, node)
        if placement is None:
            unplaced.append(pod)
        else:
            placements.append(placement)
    for placement in placements:
        free_gpus -= set(placement.gpus)
        if placement.mig is not None:
            free_mig.discard(placement.mig)
    for pod in unplaced:  # bound without our annotations: count them on the lowest free devices
        assert pod.gpu is not None
        if pod.gpu.whole:
            free_gpus -= set(sorted(free_gpus)[: pod.gpu.count])
        elif pod.gpu.mig_profile is not None:
            instance = mig.free_instance(node, pod.gpu.mig_profile, set(node.mig) - free_mig)
            if instance is not None:
                free_mig.discard(instance)
    return frozenset(free_gpus), frozenset(free_mig), model.Resources.of(used)


class ClusterView:
    """Nodes and pods as last seen, plus assumed placements; safe to use from several threads."""

    def __init__(self, *, assume_ttl_s: float = 120.0, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.nodes: dict[str, NodeState] = {}
        self.pods: dict[str, model.Pod] = {}
        self._assumed_at: dict[str, tuple[str, float]] = {}
        self.assume_ttl_s = assume_ttl_s
        self.clock = clock
        self._node_inputs: dict[str, tuple[Any, ...]] = {}
        self._pod_inputs: dict[str, tuple[Any, ...]] = {}
        """The raw parts each node and pod was last read from (see :meth:`upsert_node`)."""
        self.sinks: list[set[str]] = []
        """Dirty-node sets of the indexes built on this view (see :meth:`NodeState.changed`)."""
        self.indexes = index.Indexes(self.sinks)
        """Per pod shape, every node's verdict (built and refreshed by the verbs, under the lock)."""
        self.synced = False
        self.last_event = 0.0
        """When the view last heard from the cluster (seconds since the epoch)."""

    # --- feeding ------------------------------------------------------------------------------

    def replace(self, nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> None:
        """Everything at once (a list, or a snapshot); assumed placements survive."""
        with self.lock:
            assumed = {uid: state.assumed[uid] for state in self.nodes.values() for uid in state.assumed}
            for name in self.nodes:
                self._mark(name)
            self.nodes, self.pods = {}, {}
            self._node_inputs.clear()
            self._pod_inputs.clear()
            for obj in nodes:
                self.upsert_node(obj)
            for obj in pods:
                self.upsert_pod(obj)
            for uid, placement in assumed.items():
                state = self.nodes.get(placement.node)
                if state is not None:
                    state.assumed[uid] = placement
                    state.changed()
            self.synced = True
            self.touch()

    def touch(self) -> None:
        self.last_event = self.clock()

    def upsert_node(self, obj: Mapping[str, Any]) -> None:
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        # What the node model is read from: heartbeats change none of it, and comparing the
        # raw parts is much cheaper than reading the node again.
        inputs = (
            meta.get("labels"),
            meta.get("annotations"),
            obj.get("spec"),
            status.get("allocatable"),
            status.get("capacity"),  # read when allocatable is missing
        )
        name = meta.get("name")
        if name in self.nodes and self._node_inputs.get(name) == inputs:
            return
        node = _read(kube.node_from_dict, obj)
        if node is None:
            return
        with self.lock:
            self._node_inputs[node.name] = inputs
            state = self.nodes.get(node.name)
            if state is None:
                self.nodes[node.name] = NodeState(node, sinks=self.sinks)
                self._mark(node.name)
            elif state.node != node:  # status heartbeats change nothing fairpack reads: keep the memo
                state.node = node
                state.changed()

    def delete_node(self, name: str) -> None:
        with self.lock:
            self._node_inputs.pop(name, None)
            if self.nodes.pop(name, None) is not None:
                self._mark(name)

    def _mark(self, name: str) -> None:
        for sink in self.sinks:
            sink.add(name)

    def upsert_pod(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        # What the pod model is read from (status updates change only the phase of it).
        inputs = (
            meta.get("labels"),
            meta.get("annotations"),
            meta.get("deletionTimestamp"),
            meta.get("ownerReferences"),
            obj.get("spec"),
            (obj.get("status") or {}).get("phase"),
        )
        uid = meta.get("uid")
        if uid in self.pods and self._pod_inputs.get(uid) == inputs:
            return
        pod = _read(kube.pod_from_dict, obj)
        if pod is None:
            return
        with self.lock:
            self._pod_inputs[pod.uid] = inputs
            if self.pods.get(pod.uid) == pod:
                return  # an update of fields fairpack does not read: keep the memo
            self._unlink(pod.uid)
            if pod.terminated:
                self.pods.pop(pod.uid, None)
                self._pod_inputs.pop(pod.uid, None)
                return
            self.pods[pod.uid] = pod
            if pod.node_name is not None:
                state = self.nodes.get(pod.node_name)
                if state is not None:
                    state.pods[pod.uid] = pod
                    # Once the annotations we wrote are visible, they account for the devices.
                    if devices_of(pod, state.node) is not None:
                        state.assumed.pop(pod.uid, None)
                        self._assumed_at.pop(pod.uid, None)
                    state.changed()

    def delete_pod(self, uid: str) -> None:
        with self.lock:
            self._pod_inputs.pop(uid, None)
            self._unlink(uid)
            self.pods.pop(uid, None)
            self.forget(uid)

    def _unlink(self, uid: str) -> None:
        old = self.pods.get(uid)
        if old is not None and old.node_name is not None:
            state = self.nodes.get(old.node_name)
            if state is not None and state.pods.pop(uid, None) is not None:
                state.changed()

    # --- assuming -----------------------------------------------------------------------------

    def assume(self, pod: model.Pod, placement: model.Placement) -> None:
        """Hold ``placement``'s devices for ``pod`` until the watch shows them (or the TTL passes)."""
        with self.lock:
            self.forget(pod.uid)
            state = self.nodes[placement.node]
            state.assumed[pod.uid] = placement
            state.changed()
            self._assumed_at[pod.uid] = (placement.node, self.clock())

    def record_binding(self, pod: model.Pod, node: str) -> None:
        """Static mode: the pod is bound to ``node`` in memory (its assumed devices stay held)."""
        with self.lock:
            self._unlink(pod.uid)
            bound = model.Pod(**{**_fields(pod), "node_name": node})
            self.pods[pod.uid] = bound
            state = self.nodes[node]
            state.pods[pod.uid] = bound
            state.changed()
            self._assumed_at.pop(pod.uid, None)

    def forget(self, uid: str) -> None:
        """Drop an assumption (bind failed): its devices are free again."""
        with self.lock:
            entry = self._assumed_at.pop(uid, None)
            state = self.nodes.get(entry[0]) if entry is not None else None
            if state is not None and state.assumed.pop(uid, None) is not None:
                state.changed()

    def expire(self) -> None:
        """Forget assumptions older than the TTL whose pods never showed up bound."""
        now = self.clock()
        with self.lock:
            for uid, (_, at) in list(self._assumed_at.items()):
                if now - at > self.assume_ttl_s:
                    log.warning("assumed placement of pod %s expired without a watch event", uid)
                    self.forget(uid)

    def staleness(self) -> float:
        return max(0.0, self.clock() - self.last_event) if self.synced else float("inf")


def _fields(pod: model.Pod) -> dict[str, Any]:
    return {name: getattr(pod, name) for name in model.Pod.__dataclass_fields__}


def _read(reader: Callable[[Mapping[str, Any]], T], obj: Mapping[str, Any]) -> T | None:
    try:
        return reader(obj)
    except (kube.InvalidObjectError, KeyError, TypeError, ValueError) as error:
        log.warning("ignoring an object fairpack cannot read: %s", error)
        return None
