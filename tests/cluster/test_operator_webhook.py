"""kopf's mutating webhook, served by the operator to the real API server: an executor pod that a
SparkJob's driver creates is labelled as the job's and gated, then released by the queue."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fairpack_dev.operator_fixtures import (
    FAIRPACK,
    Kube,
    executor_pod,
    kube,
    ns,
    run_operator,
    spark_job,
    tenant,
)
from fairpack_dev.testkit import Pod, wait_for

from fairpack.solver import labels

# local_only: the API server calls the webhook at 127.0.0.1 on this machine (not from kind).
pytestmark = [pytest.mark.cluster, pytest.mark.local_only]
__all__ = ["kube", "ns", "run_operator"]

JOB_LABEL = "fairpack.io/sparkjob"


@pytest.fixture
def webhook_port(kube: Kube) -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    yield port
    # kopf leaves its managed configuration behind; it fails open, but remove it anyway.
    kube.delete("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "fairpack.io")


def test_executors_a_driver_creates_are_gated_as_the_jobs_and_released(
    kube: Kube, ns: str, gpu_nodes: Callable[..., Any], run_operator: Callable[..., Any], webhook_port: int
) -> None:
    group = gpu_nodes("h100", count=1, taint=False)
    team = f"{ns}-t"
    kube.create(tenant(ns, team))
    run_operator(
        FAIRPACK_ADMISSION_POOL=",".join(f"{k}={v}" for k, v in group.selector.items()),
        FAIRPACK_WEBHOOK_ENABLED="true",
        FAIRPACK_WEBHOOK_ADDR="127.0.0.1",
        FAIRPACK_WEBHOOK_PORT=str(webhook_port),
    )
    wait_for(
        lambda: kube.get("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "fairpack.io"),
        60,
        what="kopf's MutatingWebhookConfiguration",
    )
    kube.create(spark_job(ns, "job", team, executor={"instances": 1, "cores": 1, "memory": "1Gi"}))
    wait_for(
        lambda: (
            ((kube.get(FAIRPACK, "SparkJob", "job", ns) or {}).get("status") or {}).get("phase") == "Running"
        ),
        60,
        what="the job running",
    )
    driver = kube.get("v1", "Pod", "job-driver", ns) or {}

    # The driver asks for another executor, as Spark's dynamic allocation does.
    created = kube.create(executor_pod(driver, "job-exec-extra", **{"spark-app-selector": "spark-x"}))
    assert created["metadata"]["labels"][JOB_LABEL] == "job"
    assert created["metadata"]["labels"][labels.TENANT_LABEL] == team
    assert {"name": labels.ADMISSION_GATE} in created["spec"]["schedulingGates"]
    wait_for(
        lambda: not (kube.get("v1", "Pod", "job-exec-extra", ns) or {})["spec"].get("schedulingGates"),
        30,
        what="the admitted job's extra executor released",
    )

    # A pod that merely looks like an executor, without a SparkJob's driver, is left alone.
    stranger = kube.create(Pod("stranger", ns).label(**{"spark-role": "executor"}).manifest())
    assert not stranger["spec"].get("schedulingGates")
    assert JOB_LABEL not in stranger["metadata"]["labels"]
