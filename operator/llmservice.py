"""kopf handlers of LLMService: keep the role Deployments, Service and PDB in place, report status,
and autoscale the main role.

The objects come from ``llm_objects`` (pure), the status from ``llm_status`` (pure), the scaling
decision from ``autoscale`` (pure, with a pluggable metric source); this module only wires them
to the API.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from typing import Any

import kopf

from fairpack.operator import autoscale, k8s, llm_objects, llm_status, metrics
from fairpack.operator.settings import LLMServiceSettings

GROUP, VERSION, PLURAL = "fairpack.io", "v1alpha1", "llmservices"


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_objects(body: Mapping[str, Any]) -> list[str]:
    """Apply the desired objects and delete role Deployments the spec no longer has; returns what
    was deleted. Raises ``k8s.ApiError`` when the API refuses an object."""
    for obj in llm_objects.desired_objects(body):
        k8s.apply(obj)
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    wanted = {llm_objects.deployment_name(name, r.name) for r in llm_objects.roles(body["spec"])}
    removed = []
    selector = f"{llm_objects.SERVICE_LABEL}={name}"
    for found in k8s.list_objects("apps/v1", "Deployment", namespace=namespace, label_selector=selector):
        if found["metadata"]["name"] not in wanted:
            k8s.delete("apps/v1", "Deployment", found["metadata"]["name"], namespace)
            removed.append(found["metadata"]["name"])
    return removed


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


def reconcile(body: kopf.Body, *, announce: bool) -> None:
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
            kopf.info(body, reason="RoleRemoved", message=f"deleted Deployment {name}")
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
        ),
    )


def autoscale_step(
    body: kopf.Body,
    *,
    source: autoscale.MetricSource,
    recommender: autoscale.Recommender,
) -> None:
    """Read the metric from the main role's running pods and set spec.replicas if it should change."""
    spec = body["spec"]
    scaling = spec["autoscaling"]
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    metric = scaling.get("metricName") or autoscale.DEFAULT_METRICS[scaling.get("metric", "queueLength")]
    selector = llm_objects.selector_string(name, llm_objects.main_role(spec))
    pods = [
        p
        for p in k8s.list_objects("v1", "Pod", namespace=namespace, label_selector=selector)
        if (p.get("status") or {}).get("phase") == "Running"
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
    current = int(spec.get("replicas", 1))
    decision = recommender.decide(now=time.monotonic(), current=current, values=values, autoscaling=scaling)
    if decision.desired == current:
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

    @kopf.on.create(GROUP, VERSION, PLURAL, id="apply", backoff=5, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", id="apply", backoff=5, registry=registry)
    def on_change(body: kopf.Body, **_: Any) -> None:
        reconcile(body, announce=True)

    @kopf.timer(GROUP, VERSION, PLURAL, id="refresh", interval=settings.status_interval_s, registry=registry)
    def on_timer(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        # Re-applying is idempotent (server-side apply) and repairs objects someone deleted.
        reconcile(body, announce=False)
        if "autoscaling" in body["spec"]:
            uid = body["metadata"]["uid"]
            recommender = recommenders.setdefault(uid, autoscale.Recommender())
            autoscale_step(body, source=memo.get("metric_source", source), recommender=recommender)
