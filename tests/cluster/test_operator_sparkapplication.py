"""spark-operator SparkApplications admitted through fairpack's UWFQ queue on the real control plane.

spark-operator itself does not run here: the test installs a trimmed SparkApplication CRD
(tests/cluster/data) and plays spark-operator by writing ``status.applicationState``. Two tenants
share a one-node pool with room for one application at a time; only applications labelled
``fairpack.io/queue: "true"`` may be touched, and they must be unsuspended one at a time in UWFQ
order, the next only once the one before is COMPLETED, across an operator restart.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from fairpack_dev.operator_fixtures import FAIRPACK, TEST_LABEL, Kube, kube, ns, run_operator
from fairpack_dev.testkit import wait_for
from kubernetes import client

from fairpack.solver import labels

pytestmark = pytest.mark.cluster
__all__ = ["kube", "ns", "run_operator"]

CRD = pathlib.Path(__file__).parent / "data" / "sparkapplication-crd.yaml"
SPARK = "sparkoperator.k8s.io/v1beta2"


@pytest.fixture
def spark_operator_crd(kube: Kube) -> Iterator[None]:
    """The SparkApplication CRD, established; deleted afterwards (with every SparkApplication) so
    the operators of later tests see a cluster without it."""
    ext = client.ApiextensionsV1Api(kube.api)
    crd = yaml.safe_load(CRD.read_text())
    ext.create_custom_resource_definition(crd)

    def established() -> bool:
        status = ext.read_custom_resource_definition(crd["metadata"]["name"]).status
        conditions = (status.conditions if status else None) or ()
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_for(established, 30, what="the SparkApplication CRD to be established")
    yield
    ext.delete_custom_resource_definition(crd["metadata"]["name"])
    wait_for(
        lambda: (
            not ext.list_custom_resource_definition(
                field_selector=f"metadata.name={crd['metadata']['name']}"
            ).items
        ),
        60,
        what="the SparkApplication CRD to be deleted",
    )


def application(ns: str, name: str, tenant: str, *, queued: bool, suspend: bool) -> dict[str, Any]:
    # Two executors of 3 GPUs: one application takes 6 of the pool node's 8 GPUs.
    app_labels = {labels.TENANT_LABEL: tenant, labels.USER_LABEL: "u"}
    if queued:
        app_labels[labels.QUEUE_LABEL] = "true"
    return {
        "apiVersion": SPARK,
        "kind": "SparkApplication",
        "metadata": {"name": name, "namespace": ns, "labels": app_labels},
        "spec": {
            "type": "Scala",
            "mode": "cluster",
            "sparkVersion": "3.5.0",
            "mainClass": "org.apache.spark.examples.SparkPi",
            "mainApplicationFile": "local:///opt/spark/examples/jars/spark-examples.jar",
            "suspend": suspend,
            "driver": {"cores": 1, "memory": "512m"},
            "executor": {
                "instances": 2,
                "cores": 1,
                "memory": "1g",
                "gpu": {"name": labels.GPU_RESOURCE, "quantity": 3},
            },
        },
    }


def record(app: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        (app["metadata"].get("annotations") or {}).get(labels.ADMISSION_ANNOTATION) or "{}"
    )
    return found


def test_opted_in_sparkapplications_are_unsuspended_one_at_a_time_in_uwfq_order(
    kube: Kube,
    ns: str,
    spark_operator_crd: None,
    gpu_nodes: Callable[..., Any],
    run_operator: Callable[..., Any],
) -> None:
    group = gpu_nodes("h100", count=1, taint=False)
    weights = {"a": 1.0, "b": 10.0}
    tenants = {short: f"{ns}-{short}" for short in weights}
    for short, name in tenants.items():
        kube.create(
            {
                "apiVersion": FAIRPACK,
                "kind": "Tenant",
                "metadata": {"name": name, "labels": {TEST_LABEL: ns}},
                "spec": {"weight": weights[short], "users": ["u"]},
            }
        )
    pool = ",".join(f"{k}={v}" for k, v in group.selector.items())
    env = {
        "FAIRPACK_ADMISSION_POOL": pool,
        "FAIRPACK_ADMISSION_CYCLE_INTERVAL_S": "0.5",
        # A long estimate and b's weight of 10: b's application, arriving after a's three,
        # finishes virtually long before a's second one, so the order a-0, b-0, a-1, a-2 is
        # UWFQ's with a wide margin whatever the test's own timing.
        "FAIRPACK_ADMISSION_DEFAULT_JOB_SECONDS": "60",
    }
    operator = run_operator(**env)

    # Not opted in: one suspended, one not; neither may be touched.
    for name, suspend in (("plain-held", True), ("plain-free", False)):
        kube.create(application(ns, name, tenants["a"], queued=False, suspend=suspend))

    def get(name: str) -> dict[str, Any]:
        return kube.get(SPARK, "SparkApplication", name, ns) or {}

    def submit(name: str, tenant: str) -> None:
        """Create the application and wait until the queue has it (one arrival time each)."""
        kube.create(application(ns, name, tenants[tenant], queued=True, suspend=True))
        wait_for(lambda: record(get(name)).get("submittedAt"), 30, what=f"{name} to be queued")

    def running() -> list[str]:
        """Opted-in applications unsuspended and not finished."""
        apps = kube.list(SPARK, "SparkApplication", ns, selector=f"{labels.QUEUE_LABEL}=true")
        return sorted(
            a["metadata"]["name"]
            for a in apps
            if a["spec"].get("suspend") is False
            and ((a.get("status") or {}).get("applicationState") or {}).get("state") != "COMPLETED"
        )

    for name in ("a-0", "a-1", "a-2", "b-0"):
        submit(name, name[0])
    wait_for(lambda: running() == ["a-0"], 60, what="a-0 alone to be unsuspended")

    order = ["a-0"]
    for step in range(3):
        current = order[-1]
        # The next waits while the current one holds the pool.
        assert running() == [current]
        if step == 1:
            # A restarted operator rebuilds the queue from the applications' records.
            operator.kill()
            operator = run_operator(**env)
        kube.patch(
            SPARK,
            "SparkApplication",
            current,
            {"status": {"applicationState": {"state": "COMPLETED"}}},
            namespace=ns,
            subresource="status",
        )
        admitted = wait_for(
            lambda: running() if len(running()) == 1 else None, 60, what=f"the one after {current}"
        )
        assert admitted is not None
        order.append(admitted[0])
    assert order == ["a-0", "b-0", "a-1", "a-2"]

    finished = record(get("a-0"))
    assert finished["phase"] == "Succeeded"
    assert finished["admittedAt"] <= finished["finishedAt"]
    waiting = record(get("a-2"))
    assert waiting["phase"] == "Admitted"
    assert waiting["demand"] >= 750  # 6 of the pool's 8 GPUs

    for name, suspend in (("plain-held", True), ("plain-free", False)):
        plain = get(name)
        assert plain["spec"]["suspend"] is suspend, name
        assert labels.ADMISSION_ANNOTATION not in (plain["metadata"].get("annotations") or {}), name
