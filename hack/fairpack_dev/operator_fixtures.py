"""pytest fixtures for the operator's tests on the real control plane.

A test module imports the ones it uses (``from fairpack_dev.operator_fixtures import ...``);
they build on tests/cluster/conftest.py's ``api``, ``kubeconfig`` and ``namespace``.
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from kubernetes import client, dynamic

from fairpack_dev import operator_process
from fairpack_dev.testkit import Pod

Obj = dict[str, Any]


class Kube:
    """A dynamic client with the few verbs the tests use, on plain dicts."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.dyn = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]

    def res(self, api_version: str, kind: str) -> Any:
        return self.dyn.resources.get(api_version=api_version, kind=kind)

    def create(self, obj: Mapping[str, Any]) -> Obj:
        ns = obj["metadata"].get("namespace")
        created: Obj = self.res(obj["apiVersion"], obj["kind"]).create(body=dict(obj), namespace=ns).to_dict()
        return created

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        try:
            found: Obj = self.res(api_version, kind).get(name=name, namespace=namespace).to_dict()
        except dynamic.exceptions.NotFoundError:
            return None
        return found

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, selector: str = ""
    ) -> list[Obj]:
        items = self.res(api_version, kind).get(namespace=namespace, label_selector=selector).items
        return [i.to_dict() for i in items]

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        body: Mapping[str, Any],
        *,
        namespace: str | None = None,
        subresource: str = "",
    ) -> Obj:
        res = self.res(api_version, kind)
        if subresource:
            res = res.subresources[subresource]
        patched: Obj = res.patch(
            name=name, namespace=namespace, body=dict(body), content_type="application/merge-patch+json"
        ).to_dict()
        return patched

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        with contextlib.suppress(dynamic.exceptions.NotFoundError):
            self.res(api_version, kind).delete(name=name, namespace=namespace)


@pytest.fixture(scope="session")
def kube(api: client.ApiClient) -> Kube:
    """API access on dicts, with fairpack's CRDs applied."""
    kube = Kube(api)
    operator_process.apply_crds(api)
    return kube


FAIRPACK = "fairpack.io/v1alpha1"
TEST_LABEL = "fairpack.io/test-namespace"
"""Label on the cluster-scoped objects (Tenants) a test creates: its namespace."""


def tenant(ns: str, name: str, **spec: Any) -> Obj:
    """A Tenant labelled with the test's namespace (so ``ns`` deletes it); ``spec`` as given."""
    return {
        "apiVersion": FAIRPACK,
        "kind": "Tenant",
        "metadata": {"name": name, "labels": {TEST_LABEL: ns}},
        "spec": spec,
    }


def spark_job(ns: str, name: str, tenant: str, **spec: Any) -> Obj:
    """A SparkJob of user ``u`` in ``tenant`` with one small executor; ``spec`` overrides fields."""
    return {
        "apiVersion": FAIRPACK,
        "kind": "SparkJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "tenant": tenant,
            "user": "u",
            "mainApplicationFile": "local:///app.jar",
            "driver": {"cores": 1, "memory": "256Mi"},
            "executor": {"instances": 1, "cores": 1, "memory": "256Mi"},
            **spec,
        },
    }


@pytest.fixture
def ns(kube: Kube, namespace: str) -> Iterator[str]:
    """The test's namespace; afterwards the fairpack objects of the test (Tenants labelled with
    TEST_LABEL included) are deleted with kopf's finalizers removed first: the operator may be
    stopped already, and would then hold the namespace's deletion forever."""
    name = namespace
    yield name
    leftovers = [
        *((kind, o, name) for kind in ("LLMService", "SparkJob") for o in kube.list(FAIRPACK, kind, name)),
        *(("Tenant", o, None) for o in kube.list(FAIRPACK, "Tenant", selector=f"{TEST_LABEL}={name}")),
    ]
    for kind, obj, where in leftovers:
        obj_name = obj["metadata"]["name"]
        kube.patch(FAIRPACK, kind, obj_name, {"metadata": {"finalizers": None}}, namespace=where)
        kube.delete(FAIRPACK, kind, obj_name, where)


@pytest.fixture
def run_operator(
    kubeconfig: str, tmp_path: pathlib.Path
) -> Iterator[Callable[..., operator_process.OperatorProcess]]:
    """``run_operator(FAIRPACK_X="1")`` starts ``fairpack-operator`` with those settings; every
    operator started is stopped afterwards, and its log is printed when the test fails."""
    started: list[operator_process.OperatorProcess] = []

    def start(**env: str) -> operator_process.OperatorProcess:
        op = operator_process.OperatorProcess(kubeconfig, tmp_path / f"operator-{len(started)}.log", env=env)
        op.start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
        print(f"--- {op.log.name} (last 40 lines)")
        print("\n".join(op.log.read_text(errors="replace").splitlines()[-40:]))


def executor_pod(driver: Obj, name: str, **pod_labels: str) -> Obj:
    """An executor pod as a Spark driver creates it (dynamic allocation): labelled
    ``spark-role=executor`` (and ``pod_labels``), owned by the driver pod."""
    pod = (
        Pod(name, driver["metadata"]["namespace"])
        .label(**{"spark-role": "executor", **pod_labels})
        .manifest()
    )
    pod["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": driver["metadata"]["name"],
            "uid": driver["metadata"]["uid"],
        }
    ]
    return pod


def priority_class(name: str, value: int) -> Obj:
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name},
        "value": value,
    }


def single_replica(pod: Obj, *, app: str, avoid: str | None = None) -> Obj:
    """A one-replica Deployment of ``pod``'s spec, its pods labelled ``app`` and the pod's name;
    with ``avoid``, required node affinity keeps them off that node."""
    name, spec = pod["metadata"]["name"], dict(pod["spec"])
    if avoid:
        term = {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [avoid]}
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [term]}]
                }
            }
        }
    selector = {"app": app, "name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": pod["metadata"]["namespace"]},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": selector}, "spec": spec},
        },
    }
