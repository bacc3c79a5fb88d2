"""kopf handlers of LLMService: keep the role Deployments, Service and PDB in place, report status,
and autoscale the main role.

The objects come from ``llm_objects`` (pure), the status from ``llm_status`` (pure), whether any
node could ever hold a replica from ``llm_fit`` (pure), the scaling decision from ``autoscale``
(pure, with a pluggable metric source); this module only wires them to the API.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from fairpack.operator import autoscale, conditions, k8s, llm_fit, llm_objects, llm_status, metrics
from fairpack.operator.settings import LLMServiceSettings
from fairpack.solver import kube, model

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "fairpack.io", "v1alpha1", "llmservices"


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_objects(body: Mapping[str, Any]) -> list[str]:
    """Apply the desired objects and delete the role Deployments and Services the spec no longer
    has; returns what was deleted ("Kind/name"). Raises ``k8s.ApiError`` when the API refuses an
    object."""
    for obj in llm_objects.desired_objects(body):
        k8s.apply(obj)
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    wanted = {
        ("apps/v1", "Deployment"): {
            llm_objects.deployment_name(name, r.name) for r in llm_objects.roles(body["spec"])
        },
        ("v1", "Service"): set(llm_objects.service_names(body)),
    }
    removed = []
    selector = f"{llm_objects.SERVICE_LABEL}={name}"
    for (api_version, kind), names in wanted.items():
        for found in k8s.list_objects(api_version, kind, namespace=namespace, label_selector=selector):
            if found["metadata"]["name"] not in names:
                k8s.delete(api_version, kind, found["metadata"]["name"], namespace)
                removed.append(f"{kind}/{found['metadata']['name']}")
    return removed


class NodeCache:
    """The cluster's nodes as ``solver.kube`` builds them, listed at most once per ``ttl_s`` (every
    service's timer asks; node shapes change rarely). Nodes that cannot be read are left out."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._nodes: list[model.Node] = []
        self._at = -float("inf")

    def get(self) -> list[model.Node]:
        if time.monotonic() - self._at >= self.ttl_s:
            nodes = []
            for obj in k8s.list_objects("v1", "Node"):
                try:
                    nodes.append(kube.node_from_dict(obj))
                except kube.InvalidObjectError as exc:
                    logger.warning("node left out of the fit check: %s", exc)
            self._nodes, self._at = nodes, time.monotonic()
        return self._nodes


def unfit_roles(spec: Mapping[str, Any], nodes: list[model.Node]) -> dict[str, str]:
    """Per role, why no node could ever hold one of its replicas (roles that fit are left out)."""
    return {r.name: reason for r in llm_objects.roles(spec) if (reason := llm_fit.unfit(r, nodes))}


def role_deployments(body: Mapping[str, Any]) -> dict[str, dict[str, Any] | None]:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    return {
        r.name: k8s.get("apps/v1", "Deployment", llm_objects.deployment_name(name, r.name), namespace)
        for r in llm_objects.roles(body["spec"])
    }


def write(
    body: kopf.Body, *, status: dict[str, Any] | None = None, spec: dict[str, Any] | None = None
) -> None:
    """Patch the status subresource and/or the spec directly (not through kopf's patch, so the
    write happens here and now, in the order the code says)."""
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    if spec:
        k8s.patch(f"{GROUP}/{VERSION}", "LLMService", name, {"spec": spec}, namespace=namespace)
    if status:
        k8s.patch(
            f"{GROUP}/{VERSION}",
            "LLMService",
            name,
            {"status": status},
            namespace=namespace,
            subresource="status",
        )


def reconcile(body: kopf.Body, *, announce: bool, nodes: NodeCache) -> None:
    """Make the cluster match the spec and write the status; ``announce`` posts an event."""
    error = None
    try:
        removed = apply_objects(body)
    except k8s.ApiError as exc:
        error = k8s.error_text(exc)
        kopf.warn(body, reason="CannotRealise", message=error)
        metrics.RECONCILES.labels("LLMService", "error").inc()
    else:
        metrics.RECONCILES.labels("LLMService", "ok").inc()
        if announce:
            roles = ", ".join(f"{r.name}={r.replicas}" for r in llm_objects.roles(body["spec"]))
            kopf.info(body, reason="Applied", message=f"Deployments ({roles}), Service and PDB applied")
        for name in removed:
            kopf.info(body, reason="RoleRemoved", message=f"deleted {name}")
    unfit = unfit_roles(body["spec"], nodes.get())
    before = conditions.find((body.get("status") or {}).get("conditions"), "Degraded") or {}
    if unfit and (announce or before.get("reason") != "NoNodeFits"):  # one event, not one per refresh
        kopf.warn(body, reason="NoNodeFits", message="; ".join(f"{r}: {m}" for r, m in unfit.items()))
    write(
        body,
        status=llm_status.status_patch(
            body["spec"],
            role_deployments(body),
            name=body["metadata"]["name"],
            generation=int(body["metadata"].get("generation", 0)),
            old_conditions=(body.get("status") or {}).get("conditions"),
            now=now_rfc3339(),
            error=error,
            unfit=unfit,
        ),
    )


def is_ready(pod: Mapping[str, Any]) -> bool:
    """Running with its Ready condition True."""
    status = pod.get("status") or {}
    ready = conditions.find(status.get("conditions"), "Ready") or {}
    return status.get("phase") == "Running" and ready.get("status") == "True"


def autoscale_step(
    body: kopf.Body,
    *,
    source: autoscale.MetricSource,
    recommender: autoscale.Recommender,
) -> None:
    """Read the metric from the main role's ready pods and set spec.replicas if it should change."""
    spec = body["spec"]
    scaling = spec["autoscaling"]
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    metric = scaling.get("metricName") or autoscale.DEFAULT_METRICS[scaling.get("metric", "queueLength")]
    selector = llm_objects.selector_string(name, llm_objects.main_role(spec))
    # Only Ready pods take requests (the Service sends them nothing else): a pod still loading
    # its model reports an empty queue that would pull the mean down.
    pods = [
        p for p in k8s.list_objects("v1", "Pod", namespace=namespace, label_selector=selector) if is_ready(p)
    ]
    model = spec["model"]
    values = [
        v
        for p in pods
        if (
            v := source.read(
                p, metric=metric, port=int(model.get("port", 8000)), path=model.get("metricsPath", "/metrics")
            )
        )
        is not None
    ]
    current = llm_objects.desired_replicas(spec)
    decision = recommender.decide(now=time.monotonic(), current=current, values=values, autoscaling=scaling)
    if decision.desired == current:
        if "replicas" not in spec:
            # Autoscaling without spec.replicas starts at the minimum: write it down, so the
            # scale subresource and `kubectl get` show the count the autoscaler works from.
            write(body, spec={"replicas": current})
        return
    last = {
        "time": now_rfc3339(),
        "fromReplicas": current,
        "toReplicas": decision.desired,
        "metric": metric,
        "value": decision.value,
        "target": float(scaling["target"]),
        "reason": decision.reason,
    }
    write(body, spec={"replicas": decision.desired}, status={"lastScaling": last})
    kopf.info(
        body,
        reason="Scaled",
        message=f"{current} -> {decision.desired} replicas: mean {metric} {decision.value:.3g} "
        f"per pod, target {scaling['target']}",
    )


def register(registry: kopf.OperatorRegistry, settings: LLMServiceSettings) -> None:
    """Register the LLMService handlers with their settings."""
    source = autoscale.ScrapeSource(settings.metrics_url_template, settings.metrics_timeout_s)
    recommenders: dict[str, autoscale.Recommender] = {}
    nodes = NodeCache(settings.status_interval_s)

    @kopf.on.create(GROUP, VERSION, PLURAL, id="apply", backoff=5, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", id="apply", backoff=5, registry=registry)
    def on_change(body: kopf.Body, **_: Any) -> None:
        reconcile(body, announce=True, nodes=nodes)

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="forget", optional=True, registry=registry)
    def on_delete(body: kopf.Body, **_: Any) -> None:
        # The garbage collector removes the owned objects; only the autoscaler's memory is ours.
        recommenders.pop(body["metadata"]["uid"], None)

    @kopf.timer(GROUP, VERSION, PLURAL, id="refresh", interval=settings.status_interval_s, registry=registry)
    def on_timer(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        # Re-applying is idempotent (server-side apply) and repairs objects someone deleted.
        reconcile(body, announce=False, nodes=nodes)
        if "autoscaling" not in body["spec"]:
            recommenders.pop(body["metadata"]["uid"], None)  # autoscaling was switched off
        else:
            uid = body["metadata"]["uid"]
            recommender = recommenders.setdefault(uid, autoscale.Recommender())
            autoscale_step(body, source=memo.get("metric_source", source), recommender=recommender)
