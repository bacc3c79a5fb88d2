"""The API server rejects malformed fairpack resources with a message that names the field."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml
from fairpack_dev import chart
from fairpack_dev.operator_fixtures import FAIRPACK, Kube, kube, ns
from kubernetes.dynamic import exceptions

pytestmark = pytest.mark.cluster
__all__ = ["kube", "ns"]


def llm(**spec: Any) -> dict[str, Any]:
    return {"model": {"name": "m", "image": "i"}, "gpu": {"count": 2}, **spec}


@pytest.mark.parametrize(
    ("kind", "spec", "field", "says"),
    [
        pytest.param(
            "LLMService",
            llm(gpu={"count": 2, "migProfile": "3g.40gb"}),
            "spec.gpu",
            "exactly one of",
            id="gpu-and-mig",
        ),
        pytest.param("LLMService", llm(gpu={}), "spec.gpu", "exactly one of", id="neither-gpu-nor-mig"),
        pytest.param(
            "LLMService", llm(tensorParallel=3), "spec.tensorParallel", "must divide", id="tp-not-dividing"
        ),
        pytest.param(
            "LLMService",
            llm(gpu={"migProfile": "1g.10gb"}, tensorParallel=2),
            "spec.tensorParallel",
            "must be 1",
            id="tp-on-mig",
        ),
        pytest.param(
            "LLMService",
            llm(gpu={"migProfile": "big"}),
            "spec.gpu.migProfile",
            "Unsupported value",
            id="bad-mig-name",
        ),
        pytest.param(
            "LLMService",
            llm(gpu={"migProfile": "5g.33gb"}),
            "spec.gpu.migProfile",
            "Unsupported value",
            id="unknown-mig-profile",
        ),
        pytest.param(
            "LLMService",
            llm(replicas=2, autoscaling={"minReplicas": 4, "maxReplicas": 3, "target": 1}),
            "spec.autoscaling.minReplicas",
            "must not exceed",
            id="min-above-max",
        ),
        pytest.param(
            "LLMService",
            llm(replicas=9, autoscaling={"minReplicas": 1, "maxReplicas": 3, "target": 1}),
            "spec.replicas",
            "within",
            id="replicas-outside-bounds",
        ),
        pytest.param("LLMService", {"gpu": {"count": 1}}, "spec.model", "Required", id="no-model"),
        pytest.param(
            "SparkJob",
            {"tenant": "t", "user": "u"},
            "spec.mainApplicationFile",
            "Required",
            id="no-application",
        ),
        pytest.param(
            "SparkJob",
            {"tenant": "t", "user": "u", "mainApplicationFile": "x", "executor": {"instances": -1}},
            "spec.executor.instances",
            "greater than or equal to 0",
            id="negative-executors",
        ),
    ],
)
def test_malformed_resource_is_rejected_naming_the_field(
    kube: Kube, ns: str, kind: str, spec: dict[str, Any], field: str, says: str
) -> None:
    body = {"apiVersion": FAIRPACK, "kind": kind, "metadata": {"name": "bad", "namespace": ns}, "spec": spec}
    with pytest.raises(exceptions.UnprocessibleEntityError) as refused:
        kube.create(body)
    message = refused.value.summary()  # type: ignore[no-untyped-call]
    assert field in message
    assert says in message


def test_tenant_weight_must_be_positive(kube: Kube) -> None:
    body = {
        "apiVersion": FAIRPACK,
        "kind": "Tenant",
        "metadata": {"name": "bad-weight"},
        "spec": {"weight": 0},
    }
    with pytest.raises(exceptions.UnprocessibleEntityError) as refused:
        kube.create(body)
    assert "spec.weight" in refused.value.summary()  # type: ignore[no-untyped-call]


def test_sparkjob_spec_cannot_change_after_submission(kube: Kube, ns: str) -> None:
    body = {
        "apiVersion": FAIRPACK,
        "kind": "SparkJob",
        "metadata": {"name": "job", "namespace": ns},
        "spec": {"tenant": "t", "user": "u", "mainApplicationFile": "x"},
    }
    kube.create(body)
    with pytest.raises(exceptions.UnprocessibleEntityError) as refused:
        kube.patch(FAIRPACK, "SparkJob", "job", {"spec": {"user": "v"}}, namespace=ns)
    assert "immutable" in refused.value.summary()  # type: ignore[no-untyped-call]


def test_defaults_are_filled_in_by_the_api_server(kube: Kube, ns: str) -> None:
    created = kube.create(
        {
            "apiVersion": FAIRPACK,
            "kind": "LLMService",
            "metadata": {"name": "d", "namespace": ns},
            "spec": llm(),
        }
    )
    spec = created["spec"]
    # replicas has no default: unset, the operator runs 1 (or autoscaling.minReplicas).
    assert "replicas" not in spec
    assert (spec["tensorParallel"], spec["model"]["port"]) == (1, 8000)
    assert spec["resources"] == {"cpu": "4", "memory": "32Gi"}


def test_an_autoscaled_service_may_leave_replicas_to_the_autoscaler(
    kubeconfig: str, kube: Kube, ns: str
) -> None:
    # As a user would: kubectl apply of a service with only autoscaling bounds (minReplicas above 1).
    body = {
        "apiVersion": FAIRPACK,
        "kind": "LLMService",
        "metadata": {"name": "auto", "namespace": ns},
        "spec": llm(autoscaling={"minReplicas": 2, "maxReplicas": 4, "target": 5}),
    }
    applied = subprocess.run(
        [str(chart.kubectl_binary()), "--kubeconfig", kubeconfig, "apply", "-f", "-"],
        input=yaml.safe_dump(body),
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    found = kube.get(FAIRPACK, "LLMService", "auto", ns)
    assert found is not None
    assert "replicas" not in found["spec"]
    assert found["spec"]["autoscaling"]["minReplicas"] == 2
