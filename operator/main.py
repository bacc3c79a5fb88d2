"""The ``fairpack-operator`` entry point: settings, handler registration, kopf's run loop.

Wiring happens here once: each resource module registers its handlers on one registry with its
own settings, so nothing is registered at import time and tests can build operators freely.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import socket
import sys
import tempfile
from typing import Any

import kopf
import prometheus_client

from fairpack.operator import (
    admission,
    fallback,
    k8s,
    kicks,
    llmservice,
    sparkapplication,
    sparkjob,
    tenant,
    webhook,
)
from fairpack.operator import settings as settings_mod
from fairpack.operator.settings import OperatorSettings
from fairpack.solver.packing import adapter


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (structured logs for the cluster's log pipeline)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        obj = getattr(record, "k8s_ref", None)
        if obj:
            entry["object"] = obj
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    """A registry with every handler of the operator."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same credentials the kubernetes client loaded (in-cluster or kubeconfig).
        info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return info

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Progress and the last-handled spec go to our own annotations (the CRD schemas prune
        # unknown status fields, so kopf's default status storage would be lost).
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="fairpack.io")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="fairpack.io", key="last-handled-configuration"
        )
        settings.persistence.finalizer = "fairpack.io/operator"
        settings.posting.level = logging.INFO
        settings.execution.max_workers = 16

    llmservice.register(registry, settings.llmservice)
    sparkjob.register(registry, settings.admission)
    tenant.register(registry, interval_s=settings.admission.cycle_interval_s)
    sources: list[admission.Source] = []
    if sparkapplication.crd_installed():
        # spark-operator's CRD is checked once, at start: installing it later needs a restart.
        sparkapplication.register(registry)
        sources.append(sparkapplication.list_jobs)
    admission.register(registry, settings.admission, sources=sources)
    if settings.fallback.enabled:
        fallback.register(
            registry, settings.fallback, namespace=settings.namespace, build=adapter.instance_from_dicts
        )
    if settings.webhook.enabled:
        webhook.register(registry, settings.webhook, workdir=tempfile.mkdtemp(prefix="fairpack-webhook-"))
    return registry


async def run(settings: OperatorSettings, *, stop: asyncio.Event | None = None) -> None:
    """Run the operator until ``stop`` is set (or forever)."""
    k8s.load_config()
    if settings.metrics_port:
        prometheus_client.start_http_server(settings.metrics_port)
    # Identity and priority are chosen here, not by kopf, so that the cluster-wide loops can check
    # in the peering object that this replica leads before each pass (kicks.peering_leader).
    identity = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"
    priority = settings.peering_priority or random.randint(1, 2**31)
    active = (
        kicks.peering_leader(peering=settings.peering, identity=identity, priority=priority)
        if settings.peering
        else kicks.always
    )
    await kopf.operator(
        registry=build_registry(settings),
        clusterwide=True,
        standalone=not settings.peering,
        peering_name=settings.peering or None,
        priority=priority,
        identity=identity,  # type: ignore[arg-type]  # kopf's Identity is a NewType of str
        liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz"
        if settings.liveness_port
        else None,
        stop_flag=stop,
        memo=kopf.Memo(settings=settings, active=active),
    )


def main() -> int:
    """Console script: settings from the environment, JSON logs to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    asyncio.run(run(settings_mod.from_env()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
