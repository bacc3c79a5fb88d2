"""kopf handlers of SparkJob: create its pods, gated, as soon as it exists.

Everything after creation (queueing, admission, following the driver) is the admission cycle's
job (``admission``), which reads the SparkJobs and their pods from the cluster each cycle.

When the API refuses the pods for what the spec says (a PriorityClass that does not exist, a
quota or policy that forbids them), the job gets ``Degraded=True reason=PodsRejected`` with the
API's words and the field to fix, a warning event, and a slow retry (``REJECTED_RETRY_S``), so the
job proceeds by itself once the cluster is fixed and nobody is left guessing meanwhile.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import kopf

from fairpack.operator import admission, conditions, k8s, metrics, resources, spark_pods
from fairpack.operator.settings import AdmissionSettings

GROUP, VERSION, PLURAL = "fairpack.io", "v1alpha1", "sparkjobs"
FINISHED = ("Succeeded", "Failed")
REJECTED_RETRY_S = 60.0
"""Seconds between attempts to create pods the API refused: the cause (a missing PriorityClass, a
quota) is fixed by a person, so retrying faster would only flood the event stream."""


def ensure_pods(body: kopf.Body, *, pool: Mapping[str, str]) -> int:
    """Create the job's driver Service and missing pods (each gated); returns how many pods were
    created. Objects that exist are left alone, so this is safe to repeat after a restart in the
    middle of it."""
    k8s.create(spark_pods.driver_service(body))
    return sum(1 for pod in spark_pods.pods(body, pool=pool) if k8s.create(pod) is not None)


def rejection(body: Mapping[str, Any], error: str) -> admission.Problem:
    """Why the API refused the job's pods, naming the spec field to fix when it is clear which."""
    priority_class = body["spec"].get("priorityClassName")
    if priority_class and "PriorityClass" in error:
        return admission.Problem(
            "PodsRejected",
            f"spec.priorityClassName {priority_class!r}: the API refused the job's pods ({error}); create "
            "the PriorityClass, or delete the job and resubmit it without one",
        )
    return admission.Problem(
        "PodsRejected",
        f"the API refused the job's pods ({error}); fix what it names and the job is retried every "
        f"{REJECTED_RETRY_S:g} s, or delete the job and resubmit it",
    )


def is_refusal(exc: k8s.ApiError) -> bool:
    """A refusal of the request itself (4xx), as opposed to an overloaded or failing API server."""
    status = int(getattr(exc, "status", 0) or 0)
    return 400 <= status < 500 and status not in (408, 409, 429)


def write_conditions(body: Mapping[str, Any], problem: admission.Problem | None) -> None:
    """Set the job's Admitted and Degraded conditions while it has no queue record yet."""
    status = body.get("status") or {}
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    update: dict[str, Any] = {
        "conditions": conditions.merge(
            status.get("conditions"), admission.job_conditions(status, problem), now=now
        )
    }
    if problem is not None:
        update["message"] = problem.message
    meta = body["metadata"]
    k8s.patch(
        admission.API_VERSION,
        admission.KIND,
        meta["name"],
        {"status": update},
        namespace=meta["namespace"],
        subresource="status",
    )


def register(registry: kopf.OperatorRegistry, settings: AdmissionSettings) -> None:
    """Register the SparkJob handlers."""
    pool = resources.parse_selector(settings.pool)

    @kopf.on.create(GROUP, VERSION, PLURAL, id="pods", backoff=5, registry=registry)
    @kopf.on.resume(GROUP, VERSION, PLURAL, id="pods", backoff=5, registry=registry)
    def on_create(body: kopf.Body, status: kopf.Status, memo: kopf.Memo, **_: Any) -> None:
        if status.get("phase") in FINISHED:
            return  # a finished job's executors are gone on purpose
        try:
            created = ensure_pods(body, pool=pool)
        except k8s.ApiError as exc:
            if not is_refusal(exc):
                raise  # the API server is struggling: kopf retries with its backoff
            metrics.RECONCILES.labels("SparkJob", "error").inc()
            problem = rejection(body, k8s.error_text(exc))
            kopf.warn(body, reason=problem.reason, message=problem.message)
            write_conditions(body, problem)
            raise kopf.TemporaryError(problem.message, delay=REJECTED_RETRY_S) from exc
        metrics.RECONCILES.labels("SparkJob", "ok").inc()
        degraded = conditions.find(status.get("conditions"), "Degraded")
        if degraded and degraded.get("reason") == "PodsRejected":
            write_conditions(body, None)  # the cluster was fixed: the pods exist now
        if created:
            kopf.info(
                body, reason="PodsCreated", message=f"created {created} gated pod(s); queued for admission"
            )
        if cycle := memo.get("cycle"):
            cycle.kick()

    @kopf.on.event(
        "", "v1", "pods", labels={spark_pods.JOB_LABEL: kopf.PRESENT}, id="spark-pod", registry=registry
    )
    def on_pod_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        # A driver or executor that ends frees capacity: run a queue cycle now.
        if (body.get("status") or {}).get("phase") in FINISHED and (cycle := memo.get("cycle")):
            cycle.kick()
