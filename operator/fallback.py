"""The CP-SAT fallback controller: when kube-scheduler leaves fairpack pods Unschedulable, re-plan.

1. find      - pods of the fairpack-scheduler profile (never kube-system's, never other
               schedulers') Unschedulable for longer than ``pending_delay_s``;
2. snapshot  - nodes, pods and PodDisruptionBudgets, as the solver's packing instance, with what
               the plan may not disturb (``protect``): pods that are not ours (other schedulers',
               kube-system's) stay where they run; pods a PodDisruptionBudget lets no more be
               disrupted stay too; and only pods whose owner recreates them may *move*;
3. plan      - ``solver.packing.solve`` inside ``solver_window_s`` with ``max_evictions``; a plan
               that would disrupt more pods of a budget than it allows is solved again with that
               budget's pods kept in place;
4. judge     - act only if the plan places strictly more high-priority pods than the cluster has;
5. execute   - ask the Eviction API in dry-run for every displaced pod first (a refusal: the plan
               is ``blocked`` and nothing is touched); pin the pending pods to their planned
               nodes (annotations the extender honours); evict the displaced pods with UID
               preconditions. An eviction refused now (a budget changed since) removes the pins
               again and the plan is ``blocked``;
6. record    - an event on each pending pod and the plan in a ConfigMap bounded in entries and
               bytes. Dry-run mode records and stops after step 4.

Which pods may move: a move is an eviction whose replacement the plan places on another node, so
it is only a move when the pod's owner recreates it. That is the pod's controller owner being a
ReplicaSet (Deployments), a StatefulSet, a Job or a ReplicationController. Any other pod (a
SparkJob's driver and executors, whose operator never recreates them; pods of other custom
controllers, whose behaviour is unknown) may at most be evicted: it loses its place for good, and
the plan counts it so. Bare pods and DaemonSet pods are not disturbed at all (the solver's adapter
pins them).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes import client

from fairpack.operator import admission, k8s, kicks, metrics
from fairpack.operator.settings import FallbackSettings
from fairpack.solver import kube, labels, packing
from fairpack.solver.packing import instance as inst

logger = logging.getLogger(__name__)

PLANS_CONFIGMAP = "fairpack-fallback-plans"
PROTECTED_NAMESPACES = frozenset({"kube-system"})
RECREATING_OWNERS = frozenset(
    {("apps", "ReplicaSet"), ("apps", "StatefulSet"), ("batch", "Job"), ("", "ReplicationController")}
)
"""(API group, kind) of the controllers that replace an evicted pod with a new one."""
RECORD_LIST_LIMIT = 20
"""Pod names a recorded plan lists per list (pending, pins, evictions); the counts are kept whole."""
RECORD_MAX_BYTES = 256 * 1024
"""Most bytes the plans ConfigMap holds (the API server refuses objects over 1 MiB); the oldest
plans are dropped first."""

InstanceBuilder = Callable[[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]], inst.Instance]
"""Nodes and pods (as dicts) to the packer's instance: the solver's adapter."""


def is_ours(pod: Mapping[str, Any]) -> bool:
    """A pod this controller may pin or evict: fairpack's scheduler profile, outside kube-system."""
    return (
        pod.get("spec", {}).get("schedulerName") == labels.SCHEDULER_NAME
        and pod["metadata"].get("namespace") not in PROTECTED_NAMESPACES
    )


def unschedulable_since(pod: Mapping[str, Any]) -> float | None:
    """When the scheduler last declared the pending pod Unschedulable (None if it has not)."""
    if pod.get("spec", {}).get("nodeName") or (pod.get("status") or {}).get("phase") != "Pending":
        return None
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
            return admission.seconds(cond.get("lastTransitionTime"))
    return None


def stuck(
    pods: Iterable[Mapping[str, Any]], *, now: float, delay_s: float, freshness_s: float
) -> list[Mapping[str, Any]]:
    """Step 1: our pods Unschedulable for at least ``delay_s`` and not pinned by a plan younger
    than ``freshness_s``."""
    found = []
    for pod in pods:
        since = unschedulable_since(pod)
        if since is None or not is_ours(pod) or now - since < delay_s:
            continue
        planned_at = admission.seconds(
            (pod["metadata"].get("annotations") or {}).get(labels.PLANNED_AT_ANNOTATION)
        )
        if planned_at is not None and now - planned_at < freshness_s:
            continue  # a plan is being realised
        found.append(pod)
    return found


def plannable(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The pods a plan is about: every pod holding a node, and our pending pods that the scheduler
    may place (not gated: queued work waits for the queue, not for room)."""
    found = []
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        bound = bool(pod.get("spec", {}).get("nodeName"))
        if bound or (is_ours(pod) and not pod.get("spec", {}).get("schedulingGates")):
            found.append(pod)
    return found


def key(pod: Mapping[str, Any]) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def recreated(pod: Mapping[str, Any]) -> bool:
    """Whether the pod's controller owner replaces it when it is evicted (see the module docstring)."""
    for ref in pod["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            group = ref.get("apiVersion", "").rpartition("/")[0]
            return (group, ref.get("kind")) in RECREATING_OWNERS
    return False


def protect(
    instance: inst.Instance,
    ours: Collection[str],
    *,
    movable: Collection[str] | None = None,
    held: Collection[str] = (),
) -> inst.Instance:
    """Step 2: pods that are not ours, and pods in ``held`` (their budget allows no disruption),
    stay exactly where they are; pods outside ``movable`` (None: all) may be evicted, not moved."""
    pods = []
    for p in instance.pods:
        if p.key not in ours or p.key in held:
            pods.append(dataclasses.replace(p, movable=False, evictable=False))
        elif movable is not None and p.key not in movable:
            pods.append(dataclasses.replace(p, movable=False))
        else:
            pods.append(p)
    return dataclasses.replace(instance, pods=tuple(pods))


@dataclass(frozen=True)
class Budget:
    """A PodDisruptionBudget as the plan counts it: its pods and how many more may be disrupted."""

    name: str
    allowed: int
    pods: frozenset[str]


def selects(selector: Mapping[str, Any] | None, pod_labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels, matchExpressions) on a pod's labels; null selects nothing
    and ``{}`` everything, as for policy/v1 PodDisruptionBudgets."""
    if selector is None:
        return False
    if any(pod_labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    # In, NotIn, Exists and DoesNotExist mean the same on pod labels as in node affinity.
    return all(kube.requirement(e).matches(pod_labels) for e in selector.get("matchExpressions") or ())


def budgets(pdbs: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> list[Budget]:
    """The budgets over the pods. ``disruptionsAllowed`` is the disruption controller's count; a
    budget it has not counted yet (no status for this generation) allows nothing."""
    by_namespace: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        by_namespace.setdefault(pod["metadata"]["namespace"], []).append(pod)
    found = []
    for pdb in pdbs:
        meta, status = pdb["metadata"], pdb.get("status") or {}
        counted = status.get("observedGeneration", -1) >= meta.get("generation", 0)
        members = frozenset(
            key(p)
            for p in by_namespace.get(meta["namespace"], ())
            if selects((pdb.get("spec") or {}).get("selector"), p["metadata"].get("labels") or {})
        )
        allowed = int(status.get("disruptionsAllowed", 0)) if counted else 0
        found.append(Budget(f"{meta['namespace']}/{meta['name']}", allowed, members))
    return found


def held(found: Iterable[Budget]) -> set[str]:
    """Pods no plan may disturb: their budget allows no disruption, or more than one budget
    covers them (the Eviction API refuses those pods outright)."""
    seen: set[str] = set()
    kept: set[str] = set()
    for budget in found:
        if budget.allowed <= 0:
            kept |= budget.pods
        kept |= seen & budget.pods
        seen |= budget.pods
    return kept


def overdrawn(found: Iterable[Budget], victims: Collection[str]) -> set[str]:
    """Pods of the budgets the victims would overdraw (more disrupted than the budget allows)."""
    over: set[str] = set()
    for budget in found:
        if len(budget.pods.intersection(victims)) > budget.allowed:
            over |= budget.pods
    return over


def high_priority_placed(plan: packing.Plan, threshold: int) -> tuple[int, int]:
    """(before, after) counts of placed pods of priority >= ``threshold``."""
    tiers = [count for priority, count in plan.placed_by_priority.items() if priority >= threshold]
    return sum(c.before for c in tiers), sum(c.after for c in tiers)


def displaced(plan: packing.Plan) -> list[str]:
    """Pods the plan takes off their node: evicted ones and moved ones (moved ones are only pods
    whose owner recreates them, see ``protect``): each is one eviction."""
    return [*plan.evictions, *(m.pod for m in plan.moves)]


def pinned(plan: packing.Plan, pending: Iterable[str]) -> dict[str, str]:
    """Pending pod -> planned node for the pending pods the plan places."""
    return {pod: plan.placements[pod] for pod in pending if pod in plan.placements}


def rfc3339(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def evict(pod: Mapping[str, Any], *, dry_run: bool = False) -> str | None:
    """Evict through the Eviction API with a UID precondition (``dry_run``: only ask whether the
    API would, PodDisruptionBudgets included); the refusal's reason, or None."""
    meta = pod["metadata"]
    body = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=meta["name"], namespace=meta["namespace"]),
        delete_options=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=meta["uid"])),
    )
    try:
        client.CoreV1Api().create_namespaced_pod_eviction(
            meta["name"], meta["namespace"], body, dry_run="All" if dry_run else None
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return None  # gone already: its capacity is free, which is all the plan needs
        return f"{exc.status} {exc.reason}"
    return None


def pin(pod: Mapping[str, Any], node: str | None, now: float) -> None:
    """Pin the pending pod to its planned node: the annotations make the extender filter every
    other node for it; the nomination (status.nominatedNodeName, as preemption sets it) makes
    kube-scheduler count the pod on that node when it places pods of equal or lower priority,
    so the room the evictions free is not taken by the evicted pods' own replacements.
    ``node=None`` removes the pin."""
    annotations = (
        {labels.PLANNED_NODE_ANNOTATION: node, labels.PLANNED_AT_ANNOTATION: rfc3339(now)}
        if node is not None
        else {labels.PLANNED_NODE_ANNOTATION: None, labels.PLANNED_AT_ANNOTATION: None}
    )
    name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
    k8s.patch("v1", "Pod", name, {"metadata": {"annotations": annotations}}, namespace=namespace)
    k8s.patch(
        "v1", "Pod", name, {"status": {"nominatedNodeName": node}}, namespace=namespace, subresource="status"
    )


@dataclass(frozen=True)
class Execution:
    """What step 5 did: ``executed`` or ``blocked`` (with the refusal and who was evicted before it)."""

    outcome: str
    refusal: str | None = None
    evicted: tuple[str, ...] = ()


def execute(
    targets: Mapping[str, str], victims: Sequence[str], pods: Mapping[str, Mapping[str, Any]], now: float
) -> Execution:
    """Step 5: dry-run every eviction, pin, evict; a refusal undoes the pins."""
    for victim in victims:
        if (refusal := evict(pods[victim], dry_run=True)) is not None:
            return Execution("blocked", f"{victim}: {refusal}")
    for pod_key, node in targets.items():
        pin(pods[pod_key], node, now)
    evicted: list[str] = []
    for victim in victims:
        if (refusal := evict(pods[victim])) is not None:
            # The pins would hold room for a plan that is not happening; the pods evicted so
            # far are replaced by their owners (or were evictable for good: the plan said so).
            for pod_key in targets:
                pin(pods[pod_key], None, now)
            return Execution("blocked", f"{victim}: {refusal}", tuple(evicted))
        evicted.append(victim)
    return Execution("executed", None, tuple(evicted))


def plan_within_budgets(
    instance: inst.Instance, found: Sequence[Budget], settings: FallbackSettings
) -> packing.Plan:
    """Steps 3: solve; while the plan overdraws a budget, keep that budget's pods and solve again
    (each round keeps more pods in place, so this ends). All rounds share one ``solver_window_s``:
    a round that finds the window spent returns the default scheduler's plan at once."""
    kept: set[str] = set()
    started = time.monotonic()
    deadline = started + settings.solver_window_s
    while True:
        plan = packing.solve(
            instance,
            settings=packing.Settings(
                window_s=max(deadline - time.monotonic(), 0.0),
                max_evictions=settings.max_evictions,
                keep_in_place=settings.keep_in_place,
            ),
        )
        over = overdrawn(found, displaced(plan)) - kept
        if not over:
            metrics.SOLVER_SECONDS.observe(time.monotonic() - started)
            return plan
        logger.info(
            "plan overdraws the disruption budgets of %d pod(s); solving again without them", len(over)
        )
        kept |= over
        instance = protect(instance, {p.key for p in instance.pods}, held=kept)


def capped(items: Iterable[str]) -> list[str]:
    return sorted(items)[:RECORD_LIST_LIMIT]


def entry(
    *,
    now: float,
    outcome: str,
    plan: packing.Plan,
    counts: tuple[int, int],
    pending: Collection[str],
    targets: Mapping[str, str],
    victims: Collection[str],
    execution: Execution | None,
) -> dict[str, Any]:
    """The plan as recorded: each list holds at most ``RECORD_LIST_LIMIT`` names, the counts are whole."""
    found: dict[str, Any] = {
        "time": rfc3339(now),
        "time_ns": time.time_ns(),
        "outcome": outcome,
        "status": str(plan.status),
        "high_priority_placed": {"before": counts[0], "after": counts[1]},
        "pending": capped(pending),
        "pending_count": len(pending),
        "pins": {k: targets[k] for k in capped(targets)},
        "pins_count": len(targets),
        "evictions": capped(victims),
        "evictions_count": len(victims),
        "solve_s": round(plan.solve_s, 3),
    }
    if execution is not None and execution.refusal is not None:
        found["refusal"] = execution.refusal[:512]
        found["evicted_before_refusal"] = capped(execution.evicted)
    return found


def trimmed(data: Mapping[str, str], *, history: int, max_bytes: int) -> dict[str, str]:
    """The newest ``history`` plans that fit in ``max_bytes`` (keys sort oldest first)."""
    kept: dict[str, str] = {}
    size = 0
    for name in sorted(data, reverse=True)[:history]:
        size += len(name) + len(data[name].encode())
        if size > max_bytes and kept:
            break
        kept[name] = data[name]
    return kept


def record(found: Mapping[str, Any], *, namespace: str, history: int) -> None:
    """Add the plan to the ConfigMap, keeping the newest that fit (``history``, ``RECORD_MAX_BYTES``)."""
    current = k8s.get("v1", "ConfigMap", PLANS_CONFIGMAP, namespace)
    data = dict((current or {}).get("data") or {})
    data[f"plan-{found['time_ns']}"] = json.dumps(found, sort_keys=True)
    k8s.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": PLANS_CONFIGMAP,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "fairpack-operator"},
            },
            "data": trimmed(data, history=history, max_bytes=RECORD_MAX_BYTES),
        }
    )


def post_event(pod: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
    meta = pod["metadata"]
    now = datetime.datetime.now(datetime.UTC)
    client.CoreV1Api().create_namespaced_event(
        meta["namespace"],
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                generate_name=f"{meta['name']}.fairpack-", namespace=meta["namespace"]
            ),
            involved_object=client.V1ObjectReference(
                api_version="v1", kind="Pod", name=meta["name"], namespace=meta["namespace"], uid=meta["uid"]
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if warning else "Normal",
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component="fairpack-fallback"),
        ),
    )


@dataclass
class Repeats:
    """The situation the last plan that did not act was made for (its instance and budgets).

    The same situation gives the same plan: while nothing changed, the fallback does not spend a
    solver window on it again every ``interval_s`` (nor post and record it again), only once
    ``plan_freshness_s`` has passed."""

    situation: int | None = None
    at: float = 0.0

    def seen(self, situation: int, *, now: float, freshness_s: float) -> bool:
        return situation == self.situation and now - self.at < freshness_s

    def remember(self, situation: int | None, *, now: float) -> None:
        self.situation, self.at = situation, now


def run_pass(
    settings: FallbackSettings,
    build: InstanceBuilder,
    namespace: str,
    again: Callable[[float], None],
    now: float,
    repeats: Repeats | None = None,
) -> str | None:
    """Steps 1-6 once; returns the outcome (None when nothing was stuck long enough, or when
    ``repeats`` holds this very situation)."""
    nodes = k8s.list_objects("v1", "Node")
    pods = k8s.list_objects("v1", "Pod")
    waiting = [p for p in pods if unschedulable_since(p) is not None and is_ours(p)]
    if waiting:
        again(settings.interval_s)  # keep looking while anything of ours waits
    pending = stuck(pods, now=now, delay_s=settings.pending_delay_s, freshness_s=settings.plan_freshness_s)
    if not pending:
        return None
    by_key = {key(p): p for p in pods}
    found = budgets(k8s.list_objects("policy/v1", "PodDisruptionBudget"), pods)
    instance = protect(
        build(nodes, plannable(pods)),
        {k for k, p in by_key.items() if is_ours(p)},
        movable={k for k, p in by_key.items() if recreated(p)},
        held=held(found),
    )
    situation = hash((instance, tuple(found)))
    if repeats is not None and repeats.seen(situation, now=now, freshness_s=settings.plan_freshness_s):
        return None
    plan = plan_within_budgets(instance, found, settings)
    before, after = high_priority_placed(plan, settings.high_priority)
    targets = pinned(plan, [key(p) for p in pending])
    victims = displaced(plan)
    execution = None
    if after <= before:
        outcome = "no_gain"
    elif settings.dry_run:
        outcome = "dry_run"
    else:
        execution = execute(targets, victims, by_key, now)
        outcome = execution.outcome
        if execution.refusal is not None:
            logger.warning("plan blocked: eviction of %s refused; pins removed", execution.refusal)
    if repeats is not None:
        acted = execution is not None and execution.refusal is None
        repeats.remember(None if acted else situation, now=now)
    metrics.PLANS.labels(outcome).inc()
    record(
        entry(
            now=now,
            outcome=outcome,
            plan=plan,
            counts=(before, after),
            pending=[key(p) for p in pending],
            targets=targets,
            victims=victims,
            execution=execution,
        ),
        namespace=namespace,
        history=settings.plan_history,
    )
    shown = dict(list(targets.items())[:3])
    message = (
        f"fallback plan {outcome}: high-priority pods placed {before} -> {after}, "
        f"{len(victims)} eviction(s), {len(targets)} pin(s) {shown or ''}"
    )
    if execution is not None and execution.refusal is not None:
        message += f"; refused: {execution.refusal}"
    for pod in pending:
        post_event(pod, "FallbackPlan", message, warning=outcome == "blocked")
    logger.info(message)
    return outcome


def register(
    registry: kopf.OperatorRegistry, settings: FallbackSettings, *, namespace: str, build: InstanceBuilder
) -> None:
    """Start the fallback with the operator; Unschedulable fairpack pods kick it."""

    @kopf.on.startup(registry=registry)
    async def start(memo: kopf.Memo, **_: Any) -> None:
        holder: dict[str, kicks.KickedLoop] = {}
        step = functools.partial(
            run_pass,
            settings,
            build,
            namespace,
            lambda d: holder["loop"].kick(delay_s=d),
            repeats=Repeats(),
        )
        holder["loop"] = memo["fallback"] = kicks.KickedLoop("fallback", step, active=memo.get("active"))

    @kopf.on.cleanup(registry=registry)
    async def stop(memo: kopf.Memo, **_: Any) -> None:
        await memo["fallback"].stop()

    @kopf.on.event(
        "",
        "v1",
        "pods",
        id="unschedulable",
        registry=registry,
        when=lambda body, **_: unschedulable_since(body) is not None and is_ours(body),
    )
    def on_unschedulable(memo: kopf.Memo, **_: Any) -> None:
        memo["fallback"].kick(delay_s=settings.pending_delay_s)
