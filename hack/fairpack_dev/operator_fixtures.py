"""pytest fixtures for the operator's tests on the real control plane.

A test module imports the ones it uses (``from fairpack_dev.operator_fixtures import ...``);
they need a ``kubeconfig`` fixture (the path of an admin kubeconfig of the running cluster).
"""

from __future__ import annotations

import contextlib
import pathlib
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from kubernetes import config, dynamic

from fairpack_dev import operator_process

Obj = dict[str, Any]


class Kube:
    """A dynamic client with the few verbs the tests use, on plain dicts."""

    def __init__(self, kubeconfig: str) -> None:
        self.api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        self.dyn = dynamic.DynamicClient(self.api)  # type: ignore[no-untyped-call]

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


def wait_for(what: str, probe: Callable[[], Any], *, timeout_s: float = 60.0, every_s: float = 0.25) -> Any:
    """Poll ``probe`` until it returns something truthy; fail the test naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every_s)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def kube(kubeconfig: str) -> Kube:
    """API access, with fairpack's CRDs applied."""
    kube = Kube(kubeconfig)
    operator_process.apply_crds(kube.api)
    return kube


FAIRPACK = "fairpack.io/v1alpha1"
TEST_LABEL = "fairpack.io/test-namespace"
"""Label on the cluster-scoped objects (Tenants) a test creates: its namespace."""


@pytest.fixture
def ns(kube: Kube) -> Iterator[str]:
    """A fresh namespace, deleted afterwards with the fairpack objects of the test (Tenants
    labelled with TEST_LABEL included). kopf's finalizers are removed first: the operator may
    already be stopped, and it would then hold the deletion forever."""
    name = f"op-{uuid.uuid4().hex[:8]}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait_for("the default service account", lambda: kube.get("v1", "ServiceAccount", "default", name))
    yield name
    leftovers = [
        *((kind, o, name) for kind in ("LLMService", "SparkJob") for o in kube.list(FAIRPACK, kind, name)),
        *(("Tenant", o, None) for o in kube.list(FAIRPACK, "Tenant", selector=f"{TEST_LABEL}={name}")),
    ]
    for kind, obj, namespace in leftovers:
        obj_name = obj["metadata"]["name"]
        kube.patch(FAIRPACK, kind, obj_name, {"metadata": {"finalizers": None}}, namespace=namespace)
        kube.delete(FAIRPACK, kind, obj_name, namespace)
    kube.delete("v1", "Namespace", name)


@pytest.fixture
def pool(kube: Kube, ns: str) -> Iterator[Callable[..., dict[str, str]]]:
    """``pool(nodes=1, cpu="8", gpus="4")``: KWOK nodes of the test's own, labelled with a selector
    (returned) that only this test uses; deleted afterwards."""
    made: list[str] = []

    def make(
        *,
        nodes: int = 1,
        cpu: str = "8",
        memory: str = "64Gi",
        gpus: str = "4",
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        selector = {"fairpack.io/test-pool": ns}
        for _ in range(nodes):
            name = f"{ns}-node-{len(made)}"
            amounts = {"cpu": cpu, "memory": memory, "pods": "110", "nvidia.com/gpu": gpus}
            kube.create(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {"kwok.x-k8s.io/node": "fake"},
                        "labels": {
                            **selector,
                            **(labels or {}),
                            "kubernetes.io/hostname": name,
                            "type": "kwok",
                        },
                    },
                    "spec": {
                        "taints": [{"key": "fairpack.io/test-pool", "value": ns, "effect": "NoSchedule"}]
                    },
                    "status": {"allocatable": amounts, "capacity": amounts},
                }
            )
            made.append(name)
        wait_for("the pool's nodes Ready", lambda: all(_ready(kube.get("v1", "Node", n)) for n in made))
        return selector

    yield make
    for name in made:
        kube.delete("v1", "Node", name)


def _ready(node: Obj | None) -> bool:
    conditions = ((node or {}).get("status") or {}).get("conditions") or ()
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


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
