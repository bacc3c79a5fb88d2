"""kopf handlers of SparkJob: create its pods, gated, as soon as it exists.

Everything after creation (queueing, admission, following the driver) is the admission cycle's
job (``admission``), which reads the SparkJobs and their pods from the cluster each cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from fairpack.operator import k8s, metrics, resources, spark_pods
from fairpack.operator.settings import AdmissionSettings

GROUP, VERSION, PLURAL = "fairpack.io", "v1alpha1", "sparkjobs"
FINISHED = ("Succeeded", "Failed")


def ensure_pods(body: kopf.Body, *, pool: Mapping[str, str]) -> int:
    """Create the job's missing pods (each gated); returns how many were created. Pods that exist
    are left alone, so this is safe to repeat after a restart in the middle of it."""
    return sum(1 for pod in spark_pods.pods(body, pool=pool) if k8s.create(pod) is not None)


def register(registry: kopf.OperatorRegistry, settings: AdmissionSettings) -> None:
    """Register the SparkJob handlers."""
    pool = resources.parse_selector(settings.pool)

    @kopf.on.create(GROUP, VERSION, PLURAL, id="pods", backoff=5, registry=registry)
    @kopf.on.resume(GROUP, VERSION, PLURAL, id="pods", backoff=5, registry=registry)
    def on_create(body: kopf.Body, status: kopf.Status, memo: kopf.Memo, **_: Any) -> None:
        if status.get("phase") in FINISHED:
            return  # a finished job's executors are gone on purpose
        created = ensure_pods(body, pool=pool)
        metrics.RECONCILES.labels("SparkJob", "ok").inc()
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
