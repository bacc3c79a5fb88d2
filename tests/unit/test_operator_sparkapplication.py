"""spark-operator SparkApplications on plain data: their requests, record and state, and that the
queue orders them together with SparkJobs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fairpack.operator import admission, resources, settings, sparkapplication, tenant
from fairpack.solver import labels


def app(
    name: str = "pi",
    *,
    tenant_name: str = "a",
    record: dict[str, Any] | None = None,
    state: str = "",
    executor: dict[str, Any] | None = None,
) -> dict[str, Any]:
    annotations = {labels.ADMISSION_ANNOTATION: json.dumps(record)} if record else {}
    return {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "labels": {labels.QUEUE_LABEL: "true", labels.TENANT_LABEL: tenant_name, labels.USER_LABEL: "u"},
            "annotations": annotations,
        },
        "spec": {
            "type": "Scala",
            "mainClass": "Pi",
            "mainApplicationFile": "local:///app.jar",
            "suspend": True,
            "driver": {"cores": 1, "memory": "512m"},
            "executor": executor or {"instances": 2, "cores": 1, "memory": "1g"},
        },
        "status": {"applicationState": {"state": state}} if state else {},
    }


@pytest.mark.parametrize(
    ("spark", "quantity"),
    [
        pytest.param("512m", "512Mi", id="spark-mebibytes"),
        pytest.param("2g", "2Gi", id="spark-gibibytes"),
        pytest.param("4G", "4Gi", id="upper-case"),
        pytest.param("1024", "1024Mi", id="bare-number-is-mib"),
        pytest.param("3gb", "3Gi", id="with-b"),
        pytest.param("1Gi", "1Gi", id="kubernetes-quantity"),
    ],
)
def test_spark_memory_sizes_become_kubernetes_quantities(spark: str, quantity: str) -> None:
    assert sparkapplication.memory_quantity(spark) == quantity


def test_requests_are_the_driver_plus_every_executor_with_gpus_and_core_requests() -> None:
    executor = {
        "instances": 3,
        "cores": 4,
        "coreRequest": "500m",
        "memory": "2g",
        "gpu": {"name": labels.GPU_RESOURCE, "quantity": 2},
    }
    job = sparkapplication.Application(app(executor=executor))
    gib = 2**30
    assert job.requests() == resources.Resources(cpu=1 + 3 * 0.5, memory=gib / 2 + 3 * 2 * gib, gpus=6)


def test_tenant_user_and_record_come_from_labels_and_the_admission_annotation() -> None:
    record = {"phase": "Queued", "submittedAt": "2026-01-01T00:00:00Z", "demand": 10, "estimatedSeconds": 5}
    job = sparkapplication.Application(app(tenant_name="t", record=record))
    assert (job.tenant, job.user, job.phase, job.template) == ("t", "u", "Queued", "u/Pi")
    assert job.fact().job.work_s == 50


@pytest.mark.parametrize(
    ("state", "seen"),
    [
        pytest.param("", None, id="new"),
        pytest.param("SUSPENDED", None, id="suspended"),
        pytest.param("SUBMITTED", None, id="submitted"),
        pytest.param("RUNNING", admission.RUNNING, id="running"),
        pytest.param("COMPLETED", admission.SUCCEEDED, id="completed"),
        pytest.param("FAILED", admission.FAILED, id="failed"),
        pytest.param("SUBMISSION_FAILED", admission.FAILED, id="submission-failed"),
    ],
)
def test_spark_operators_state_is_what_the_queue_follows(state: str, seen: str | None) -> None:
    assert sparkapplication.Application(app(state=state)).observe([]) == seen


def test_a_started_application_is_not_held_back_and_is_left_alone() -> None:
    body = app(state="RUNNING")
    body["spec"]["suspend"] = False
    # No API call: a held() that tried to suspend would fail here without a cluster.
    assert sparkapplication.Application(body).held([]) is False


def test_applications_and_sparkjobs_share_one_uwfq_order() -> None:
    def record(arrival: str) -> dict[str, Any]:
        return {"phase": "Queued", "submittedAt": arrival, "estimatedSeconds": 100.0, "demand": 100}

    spark_job = {
        "metadata": {"name": "job-a", "namespace": "ns", "uid": "uid-job-a"},
        "spec": {"tenant": "a", "user": "u", "mainApplicationFile": "x.jar", "mainClass": "Pi"},
        "status": record("2026-01-01T00:00:00Z"),
    }
    snap = admission.Snapshot(
        now=admission.seconds("2026-01-01T00:01:00Z") or 0.0,
        jobs=[
            admission.Job(spark_job),
            sparkapplication.Application(
                app("app-a", tenant_name="a", record=record("2026-01-01T00:00:01Z"))
            ),
            sparkapplication.Application(
                app("app-b", tenant_name="b", record=record("2026-01-01T00:00:02Z"))
            ),
        ],
        tenants={
            "a": tenant.Tenant("a", 1.0, frozenset(), None, None),
            "b": tenant.Tenant("b", 1.0, frozenset(), None, None),
        },
        nodes=[],
        pods=[],
    )
    queue, _ = admission.rebuild(snap, settings.AdmissionSettings())
    # Equal weights: b's first job finishes virtually before a's second, whatever its kind.
    assert [j.removeprefix("uid-") for j in queue.waiting()] == ["job-a", "app-b", "app-a"]


def test_an_admitted_application_without_pods_yet_holds_its_whole_request() -> None:
    body = app(
        record={"phase": "Running", "submittedAt": "2026-01-01T00:00:00Z", "demand": 1, "estimatedSeconds": 1}
    )
    job = sparkapplication.Application(body)
    snap = admission.Snapshot(now=0.0, jobs=[job], tenants={}, nodes=[], pods=[])
    assert admission.outstanding(snap) == job.requests()
    driver = {
        "metadata": {
            "name": "pi-driver",
            "namespace": "ns",
            "labels": {sparkapplication.APP_NAME_LABEL: "pi"},
        },
        "spec": {"containers": [{"name": "d", "resources": {"requests": {"cpu": "1", "memory": "512Mi"}}}]},
    }
    snap = admission.Snapshot(now=0.0, jobs=[job], tenants={}, nodes=[], pods=[driver])
    assert admission.outstanding(snap) == job.requests() - resources.pod_requests(driver)
