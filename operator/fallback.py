"""The CP-SAT fallback controller: when kube-scheduler leaves fairpack pods Unschedulable, re-plan.

1. find      - pods of the fairpack-scheduler profile (never kube-system's, never other
               schedulers') Unschedulable for longer than ``pending_delay_s``;
2. snapshot  - nodes and pods, as the solver's packing instance; pods this controller may not
               touch (other schedulers', kube-system's) are pinned where they run;
3. plan      - ``solver.packing.solve`` inside ``solver_window_s`` with ``max_evictions``;
4. judge     - act only if the plan places strictly more high-priority pods than the cluster has;
5. execute   - pin the pending pods to their planned nodes (annotations the extender honours),
               then evict the displaced pods through the Eviction API with UID preconditions
               (the API refuses evictions a PodDisruptionBudget forbids; the plan then stops);
6. record    - an event on each pending pod and the plan in a bounded ConfigMap. Dry-run mode
               records and stops after step 4.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import kopf
from kubernetes import client

from fairpack.operator import admission, k8s, kicks, metrics
from fairpack.operator.settings import FallbackSettings
from fairpack.solver import labels, packing
from fairpack.solver.packing import instance as inst

logger = logging.getLogger(__name__)

PLANS_CONFIGMAP = "fairpack-fallback-plans"
PROTECTED_NAMESPACES = frozenset({"kube-system"})

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


def protect(instance: inst.Instance, ours: set[str]) -> inst.Instance:
    """Step 2: pods that are not ours stay exactly where they are."""
    pods = tuple(
        p if p.key in ours else dataclasses.replace(p, movable=False, evictable=False) for p in instance.pods
    )
    return dataclasses.replace(instance, pods=pods)


def high_priority_placed(plan: packing.Plan, threshold: int) -> tuple[int, int]:
    """(before, after) counts of placed pods of priority >= ``threshold``."""
    tiers = [count for priority, count in plan.placed_by_priority.items() if priority >= threshold]
    return sum(c.before for c in tiers), sum(c.after for c in tiers)


def displaced(plan: packing.Plan) -> list[str]:
    """Pods the plan takes off their node: evicted ones and moved ones (their controller recreates them)."""
    return [*plan.evictions, *(m.pod for m in plan.moves)]


def pinned(plan: packing.Plan, pending: Iterable[str]) -> dict[str, str]:
    """Pending pod -> planned node for the pending pods the plan places."""
    return {pod: plan.placements[pod] for pod in pending if pod in plan.placements}


def rfc3339(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def evict(pod: Mapping[str, Any]) -> str | None:
    """Evict through the Eviction API with a UID precondition; the refusal's reason, or None."""
    meta = pod["metadata"]
    body = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=meta["name"], namespace=meta["namespace"]),
        delete_options=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=meta["uid"])),
    )
    try:
        client.CoreV1Api().create_namespaced_pod_eviction(meta["name"], meta["namespace"], body)
    except client.ApiException as exc:
        if exc.status == 404:
            return None  # gone already: its capacity is free, which is all the plan needs
        return f"{exc.status} {exc.reason}"
    return None


def pin(pod: Mapping[str, Any], node: str, now: float) -> None:
    """Pin the pending pod to its planned node: the annotations make the extender filter every
    other node for it; the nomination (status.nominatedNodeName, as preemption sets it) makes
    kube-scheduler count the pod on that node when it places pods of equal or lower priority,
    so the room the evictions free is not taken by the evicted pods' own replacements."""
    annotations = {labels.PLANNED_NODE_ANNOTATION: node, labels.PLANNED_AT_ANNOTATION: rfc3339(now)}
    name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
    k8s.patch("v1", "Pod", name, {"metadata": {"annotations": annotations}}, namespace=namespace)
    k8s.patch(
        "v1", "Pod", name, {"status": {"nominatedNodeName": node}}, namespace=namespace, subresource="status"
    )


def record(entry: Mapping[str, Any], *, namespace: str, history: int) -> None:
    """Append the plan to the ConfigMap, keeping the newest ``history`` entries."""
    current = k8s.get("v1", "ConfigMap", PLANS_CONFIGMAP, namespace)
    data = dict((current or {}).get("data") or {})
    data[f"plan-{entry['time_ns']}"] = json.dumps(entry, sort_keys=True)
    for old in sorted(data)[:-history]:
        del data[old]
    k8s.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": PLANS_CONFIGMAP,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "fairpack-operator"},
            },
            "data": data,
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


def run_pass(
    settings: FallbackSettings,
    build: InstanceBuilder,
    namespace: str,
    again: Callable[[float], None],
    now: float,
) -> str | None:
    """Steps 1-6 once; returns the outcome (None when nothing was stuck long enough)."""
    nodes = k8s.list_objects("v1", "Node")
    pods = k8s.list_objects("v1", "Pod")
    waiting = [p for p in pods if unschedulable_since(p) is not None and is_ours(p)]
    if waiting:
        again(settings.interval_s)  # keep looking while anything of ours waits
    pending = stuck(pods, now=now, delay_s=settings.pending_delay_s, freshness_s=settings.plan_freshness_s)
    if not pending:
        return None
    by_key = {key(p): p for p in pods}
    instance = protect(build(nodes, plannable(pods)), {k for k, p in by_key.items() if is_ours(p)})
    started = time.monotonic()
    plan = packing.solve(
        instance,
        settings=packing.Settings(window_s=settings.solver_window_s, max_evictions=settings.max_evictions),
    )
    metrics.SOLVER_SECONDS.observe(time.monotonic() - started)
    before, after = high_priority_placed(plan, settings.high_priority)
    targets = pinned(plan, [key(p) for p in pending])
    victims = displaced(plan)
    if after <= before:
        outcome = "no_gain"
    elif settings.dry_run:
        outcome = "dry_run"
    else:
        outcome = "executed"
        for pod_key, node in targets.items():
            pin(by_key[pod_key], node, now)
        for victim in victims:
            if (refusal := evict(by_key[victim])) is not None:
                outcome = "blocked"
                logger.warning("eviction of %s refused (%s); plan stopped", victim, refusal)
                break
    metrics.PLANS.labels(outcome).inc()
    entry = {
        "time": rfc3339(now),
        "time_ns": time.time_ns(),
        "outcome": outcome,
        "status": str(plan.status),
        "high_priority_placed": {"before": before, "after": after},
        "pending": sorted(key(p) for p in pending),
        "pins": targets,
        "evictions": victims,
        "solve_s": round(plan.solve_s, 3),
    }
    record(entry, namespace=namespace, history=settings.plan_history)
    message = (
        f"fallback plan {outcome}: high-priority pods placed {before} -> {after}, "
        f"{len(victims)} eviction(s), pins {targets or 'none'}"
    )
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
            run_pass, settings, build, namespace, lambda d: holder["loop"].kick(delay_s=d)
        )
        holder["loop"] = memo["fallback"] = kicks.KickedLoop("fallback", step)

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
