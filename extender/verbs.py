"""The four verbs decided on the cluster view: filter, prioritize, preempt, and bind's device choice.

Pure decisions (no HTTP, no API calls): the routes in :mod:`fairpack.extender.app` translate the
wire format to these calls and back. Feasibility and device choice come from the solver
(:mod:`fairpack.solver.topology` for NVLink islands, :mod:`fairpack.solver.mig` for MIG
instances), the score from its FGD fragmentation measure (:mod:`fairpack.solver.fragmentation`).
"""

from __future__ import annotations

import datetime
import functools
import itertools
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from fairpack.extender import view as cv
from fairpack.extender.index import ShapeIndex, Verdict
from fairpack.solver import fragmentation, labels, mig, model, stranding, topology
from fairpack.solver import occupancy as occ

log = logging.getLogger(__name__)

MAX_SCORE: Final = 10
"""kube-scheduler's MaxExtenderPriority: extender scores are 0..10, then times the weight."""
MAX_VICTIM_SUBSETS: Final = 4096
"""Victim sets tried per node before falling back to the cheapest prefix (keeps preempt bounded)."""
WHOLE_SHAPES: Final = (1, 2, 4, 8)
FRAGMENTS_CHUNK: Final = 8
"""Nodes whose fragments a metrics scrape reads per hold of the view's lock."""

WORKLOAD: Final = fragmentation.Workload(
    tuple(
        fragmentation.TaskType(whole, cls, 1.0 / (len(WHOLE_SHAPES) + occ.PROFILE_CLASSES))
        for whole, cls in [(w, -1) for w in WHOLE_SHAPES] + [(0, c) for c in range(occ.PROFILE_CLASSES)]
    )
)
"""The target workload of the fragmentation score: every whole-GPU size and MIG profile, equally likely."""


_SHAPES: dict[tuple[Any, ...], int] = {}


def shape(pod: model.Pod) -> int:
    """A small integer naming what the verdict on a node depends on (the pod's GPU request and
    placement constraints): verdicts are indexed under it, and an int hashes fastest."""
    key = (pod.gpu, tuple(sorted(pod.node_selector.items())), pod.tolerations, pod.affinity)
    found = _SHAPES.get(key)
    if found is None:
        found = _SHAPES.setdefault(key, len(_SHAPES))
    return found


def shape_index(view: cv.ClusterView, pod: model.Pod) -> ShapeIndex:
    """Every node's verdict for ``pod``'s shape, current (call under the view's lock)."""
    return view.indexes.get(shape(pod), view.nodes, lambda state: judge(state, pod))


def judge(state: cv.NodeState, pod: model.Pod) -> Verdict:
    node = state.node
    misfit = model.static_misfit(pod, node)
    if misfit is not None:
        return Verdict(None, misfit, unresolvable=True)
    if pod.gpu is None:
        return Verdict(model.Placement(pod.key, node.name))
    never = _never_fits(node, pod.gpu)
    if never is not None:
        return Verdict(None, never, unresolvable=True)
    placement = choose(state, pod)
    if placement is None:
        return Verdict(None, _why_not_now(state, pod.gpu))
    before, after = node_key(state), node_key(state, placement)
    total = len(node.gpus) or 1
    return Verdict(
        placement,
        fragmentation_growth=fragmented(after) - fragmented(before),
        free_after=sum(occ.gpu_capacity(g) for g in after[1]) / total,
    )


def _never_fits(node: model.Node, request: model.GpuRequest) -> str | None:
    if request.whole and request.require_island:
        largest = max(
            (len(i) for i in topology.free_islands(node, {g.index for g in node.whole_gpus})), default=0
        )
        if largest < request.count:
            return f"needs {request.count} GPUs in one NVLink island; the node's largest island has {largest}"
    if request.mig_profile is not None and not any(_is_profile(i, request.mig_profile) for i in node.mig):
        configured = ", ".join(sorted({i.profile for i in node.mig})) or "none"
        return f"needs a MIG {request.mig_profile} instance; the node's MIG layout has {configured}"
    return None


def _why_not_now(state: cv.NodeState, request: model.GpuRequest) -> str:
    if request.mig_profile is not None:
        return f"every MIG {request.mig_profile} instance of the node is taken"
    reason = topology.shortfall(
        state.node, state.free_gpus, request.count, require_island=request.require_island
    )
    return reason or f"needs {request}"


def _is_profile(instance: model.MigInstance, name: str) -> bool:
    return instance.profile == name or instance.profile.split(".")[0] == name


def choose(state: cv.NodeState, pod: model.Pod) -> model.Placement | None:
    """The devices the pod would get on the node now (None if none are free)."""
    request, node = pod.gpu, state.node
    if request is None:
        return model.Placement(pod.key, node.name)
    if request.mig_profile is not None:
        instance = mig.free_instance(node, request.mig_profile, set(node.mig) - state.free_mig)
        return None if instance is None else model.Placement(pod.key, node.name, mig=instance)
    gpus = topology.choose_gpus(node, state.free_gpus, request.count, require_island=request.require_island)
    return None if gpus is None else model.Placement(pod.key, node.name, gpus=gpus)


# --- fragmentation ---------------------------------------------------------------------------


def node_key(state: cv.NodeState, extra: model.Placement | None = None) -> occ.NodeKey:
    """The node's GPU state as the fragmentation measure reads it, with ``extra`` also placed."""
    if extra is None:
        cached: occ.NodeKey | None = state.memo.get("key")
        if cached is None:
            cached = state.memo["key"] = _node_key(
                state.node, state.free_gpus, set(state.node.mig) - state.free_mig
            )
        return cached
    free_gpus = state.free_gpus - set(extra.gpus)
    taken = set(state.node.mig) - state.free_mig | ({extra.mig} if extra.mig else set())
    return _node_key(state.node, free_gpus, taken)


def _node_key(
    node: model.Node, free_gpus: Collection[int], taken: Collection[model.MigInstance]
) -> occ.NodeKey:
    gpus: list[occ.GpuKey] = []
    mig_gpus = node.mig_gpus
    for gpu in node.gpus:
        if gpu.index in mig_gpus and gpu.model is not None:
            mine = [i for i in node.mig if i.gpu == gpu.index]
            layout = occ.layout_classes(gpu.model, mine)
            held = mig.used_mask(gpu.model, [i for i in mine if i in taken])
            gpus.append((occ.Kind.STATIC, held, layout))
        else:
            gpus.append((occ.Kind.WHOLE, 0 if gpu.index in free_gpus else mig.FULL, ()))
    name = next((g.model.name for g in node.gpus if g.model is not None), "")
    return name, tuple(sorted(gpus))


@functools.lru_cache(maxsize=65536)
def fragmented(key: occ.NodeKey) -> float:
    """Expected GPUs of the node a task of :data:`WORKLOAD` could not use."""
    _, fragments = fragmentation.gpu_fragments(key, WORKLOAD)
    return sum(t.weight * f for t, f in zip(WORKLOAD.types, fragments, strict=True))


def node_fragments(state: cv.NodeState) -> tuple[stranding.NodeFragments, float]:
    """(free and stranded capacity, expected fragmented GPUs) of the node as it is now, kept in
    its memo until it changes: a metrics scrape then costs one lookup per unchanged node."""
    cached: tuple[stranding.NodeFragments, float] | None = state.memo.get("fragments")
    if cached is None:
        key = node_key(state)
        cached = state.memo["fragments"] = (stranding.node_fragments(key), fragmented(key))
    return cached


def cluster_fragments(view: cv.ClusterView) -> tuple[stranding.Totals, float]:
    """(free and stranded capacity, expected fragmented GPUs) of the whole view (the extender's
    fragmentation gauges, read at scrape time)."""
    with view.lock:
        states = list(view.nodes.values())
    parts: list[tuple[stranding.NodeFragments, float]] = []
    # The lock is taken per chunk: a node that changed since the last scrape costs a derivation,
    # and requests should not wait for hundreds of them. The sum is then not one instant's, which a
    # gauge scraped every few seconds does not need.
    for start in range(0, len(states), FRAGMENTS_CHUNK):
        with view.lock:
            parts.extend(node_fragments(state) for state in states[start : start + FRAGMENTS_CHUNK])
    return stranding.totals(p for p, _ in parts), sum(f for _, f in parts)


# --- filter ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilterResult:
    passed: list[str]
    failed: dict[str, str]
    unresolvable: dict[str, str]


def filter_nodes(
    view: cv.ClusterView, pod: model.Pod, names: Sequence[str], *, plan_freshness_s: float
) -> FilterResult:
    """Which of ``names`` can take the pod now; why each other one cannot."""
    with view.lock:
        index = shape_index(view, pod)
        fits, not_now, never = index.fits, index.failed, index.unresolvable
        # Set operations run in C; one Python pass over the names remains.
        passed = [name for name in names if name in fits]
        failed = {name: not_now[name] for name in not_now.keys() & names}
        unresolvable = {name: never[name] for name in never.keys() & names}
        if len(passed) + len(failed) + len(unresolvable) < len(names):
            for name in set(names) - view.nodes.keys():
                failed[name] = "node not in the extender's cluster view yet"
        planned = _fresh_plan(pod, passed, now=view.clock(), freshness_s=plan_freshness_s)
    if planned is not None:
        for name in passed:
            if name != planned:
                failed[name] = f"the fairpack fallback plan puts this pod on {planned}"
        passed = [planned]
    return FilterResult(passed, failed, unresolvable)


def _fresh_plan(pod: model.Pod, feasible: Sequence[str], *, now: float, freshness_s: float) -> str | None:
    """The planned node when the plan is fresh and still feasible; otherwise None (logged)."""
    planned = pod.annotations.get(labels.PLANNED_NODE_ANNOTATION)
    if not planned:
        return None
    raw_at = pod.annotations.get(labels.PLANNED_AT_ANNOTATION, "")
    try:
        at = datetime.datetime.fromisoformat(raw_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        log.warning("pod %s: ignoring plan for %s: planned-at %r is not a time", pod.key, planned, raw_at)
        return None
    if now - at > freshness_s:
        log.info("pod %s: ignoring stale plan for %s (made %.0f s ago)", pod.key, planned, now - at)
        return None
    if planned not in feasible:
        log.warning("pod %s: ignoring plan for %s: the node cannot take the pod now", pod.key, planned)
        return None
    return planned


# --- prioritize ------------------------------------------------------------------------------


RAW_SCORES: Final[dict[str, Callable[[Verdict], float]]] = {
    "spread": lambda v: v.free_after,
    "binpack": lambda v: -v.free_after,
    # Least fragmentation growth; among equal growth, the fuller node.
    "fgd": lambda v: -v.fragmentation_growth - 0.01 * v.free_after,
}
"""Per strategy, a node's raw score for a pod that fits it (higher is better)."""


def prioritize(
    view: cv.ClusterView, pod: model.Pod, names: Sequence[str], *, strategy: str
) -> dict[int, list[str]]:
    """Nodes by score 1..10: least fragmentation growth (fgd), fullest (binpack) or emptiest
    (spread). A node in no list scores 0 (kube-scheduler adds nothing for a node it is not told
    of); when every node would score the same the answer is empty (a constant changes no ranking).

    Works per group of nodes with the same raw score, which keeps it off a per-node loop."""
    wanted = set(names)
    with view.lock:
        scores = shape_index(view, pod).scores(strategy, RAW_SCORES[strategy])
        if scores.of.keys() <= wanted:  # the usual call: every node filter passed
            chosen = {value: list(group) for value, group in scores.groups.items()}
        else:
            chosen = {value: list(kept) for value, group in scores.groups.items() if (kept := group & wanted)}
    if not chosen:
        return {}
    low, high = min(chosen), max(chosen)
    if high - low <= 1e-12:
        fitting = [name for group in chosen.values() for name in group]
        return {} if len(fitting) == len(wanted) else {MAX_SCORE: fitting}
    scale = MAX_SCORE / (high - low)
    result: dict[int, list[str]] = {}
    for value, group in chosen.items():
        score = round(scale * (value - low))
        if score:
            result.setdefault(score, []).extend(group)
    return result


# --- preempt ---------------------------------------------------------------------------------


def virtual_finish(pod: model.Pod) -> float:
    try:
        return float(pod.annotations.get(labels.VIRTUAL_FINISH_ANNOTATION, "0"))
    except ValueError:
        return 0.0


def preempt(
    view: cv.ClusterView, pod: model.Pod, candidates: Mapping[str, Sequence[model.Pod]]
) -> dict[str, list[model.Pod]]:
    """Per node, the fewest, lowest-priority victims whose eviction frees a valid device
    placement and the resources for ``pod``; nodes where no set does are left out. Among equal
    priority, victims with the latest virtual finish go first.

    Victims come from the scheduler's candidates and every other lower-priority pod of the node:
    the scheduler picks its candidates by counts alone, and may offer two pods in different
    NVLink islands where evicting two others would free a whole island (it accepts any pod of
    the node back)."""
    chosen: dict[str, list[model.Pod]] = {}
    with view.lock:
        for name, offered in candidates.items():
            state = view.nodes.get(name)
            if state is None:
                continue
            victims = {v.uid: v for v in offered}
            victims.update(
                {p.uid: p for p in state.pods.values() if p.priority < pod.priority and p.uid != pod.uid}
            )
            best = _fewest_victims(state, pod, list(victims.values()))
            if best is not None:
                chosen[name] = best
    return chosen


def _fewest_victims(
    state: cv.NodeState, pod: model.Pod, victims: Sequence[model.Pod]
) -> list[model.Pod] | None:
    order = sorted(victims, key=lambda v: (v.priority, -virtual_finish(v)))
    tried = 0
    for size in range(len(order) + 1):
        feasible = []
        for subset in itertools.combinations(order, size):
            tried += 1
            if _fits_without(state, pod, subset):
                feasible.append(subset)
            if tried >= MAX_VICTIM_SUBSETS:
                break
        if feasible:
            best = min(
                feasible,
                key=lambda s: (
                    sorted((v.priority for v in s), reverse=True),
                    -sum(virtual_finish(v) for v in s),
                ),
            )
            return list(best)
        if tried >= MAX_VICTIM_SUBSETS:
            # Too many to enumerate: evict the cheapest first until the pod fits.
            for size_ in range(len(order) + 1):
                if _fits_without(state, pod, order[:size_]):
                    return order[:size_]
            return None
    return None


def _fits_without(state: cv.NodeState, pod: model.Pod, evicted: Iterable[model.Pod]) -> bool:
    gone = {v.uid for v in evicted}
    remaining = [p for uid, p in state.pods.items() if uid not in gone]
    assumed = {uid: p for uid, p in state.assumed.items() if uid not in gone}
    trial = cv.NodeState(state.node, {p.uid: p for p in remaining}, assumed)
    if model.resources_misfit(pod, state.node, trial.used) is not None:
        return False
    return choose(trial, pod) is not None


# --- bind ------------------------------------------------------------------------------------


class BindError(Exception):
    """The pod cannot be given devices on the node; the message says why."""


def reserve(view: cv.ClusterView, pod: model.Pod, node: str) -> model.Placement:
    """Devices for ``pod`` on ``node``, held in the view until the watch confirms them.

    Idempotent: a retry gets the placement of the first call (assumed, or written on the pod).
    Under the view's lock, so concurrent binds never get the same device.
    """
    with view.lock:
        state = view.nodes.get(node)
        if state is None:
            raise BindError(f"node {node} is not in the extender's cluster view")
        held = state.assumed.get(pod.uid)
        if held is not None:
            return held
        if pod.gpu is None:
            return model.Placement(pod.key, node)
        written = cv.devices_of(pod, state.node)
        if written is not None and pod.uid in state.pods:
            return written  # bound here already, its annotations hold the devices
        if written is not None and _still_free(state, written):
            view.assume(pod, written)
            return written
        placement = choose(state, pod)
        if placement is None:
            raise BindError(f"pod {pod.key} does not fit node {node} now: {_why_not_now(state, pod.gpu)}")
        view.assume(pod, placement)
        return placement


def _still_free(state: cv.NodeState, placement: model.Placement) -> bool:
    if placement.mig is not None:
        return placement.mig in state.free_mig
    return set(placement.gpus) <= state.free_gpus


def device_annotations(placement: model.Placement) -> dict[str, str]:
    """The annotations bind writes on the pod for ``placement``."""
    if placement.mig is not None:
        return {labels.MIG_INSTANCE_ANNOTATION: str(placement.mig)}
    if placement.gpus:
        return {labels.GPU_INDICES_ANNOTATION: ",".join(map(str, placement.gpus))}
    return {}
