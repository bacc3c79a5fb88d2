"""Helpers for tests on a real cluster: waiting, GPU node groups, a fluent pod builder.

tests/cluster/conftest.py turns these into fixtures; tests import ``wait_for`` and ``Pod`` from
here directly when they need them outside a fixture.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import pytest
from kubernetes import client

from fairpack.solver import labels
from fairpack_dev import inventory

T = TypeVar("T")

GROUP_LABEL = "fairpack.io/test-group"
"""Label (and NoSchedule taint key) of a test's own node group: pods land there only if they
select and tolerate it, and other tests' pods never do."""


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, *, what: str, every: float = 0.2) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; fail the test with
    ``what`` and the last value seen when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what} (last value: {last!r})")
        time.sleep(every)


def unique(prefix: str) -> str:
    """``prefix`` plus a short random suffix: names that never collide between tests or runs."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """Nodes a test created from an inventory pool, tainted for that test only."""

    names: tuple[str, ...]
    key: str
    """Value of GROUP_LABEL (and of the taint) on every node of the group."""
    pool: inventory.Pool

    @property
    def selector(self) -> dict[str, str]:
        return {GROUP_LABEL: self.key}

    @property
    def toleration(self) -> dict[str, str]:
        return {"key": GROUP_LABEL, "operator": "Equal", "value": self.key, "effect": "NoSchedule"}


def create_group(
    api: client.ApiClient, pool: inventory.Pool, *, count: int, taint: bool, timeout_s: float = 60.0
) -> NodeGroup:
    """``count`` nodes of ``pool`` named ``<key>-<pool>-<i>``, labelled (and, with ``taint``,
    tainted) with a fresh group key; returns once KWOK reports them Ready."""
    key = unique("g")
    nodes = []
    for i in range(count):
        node = pool.node(f"{key}-{pool.name}-{i}")
        node["metadata"]["labels"][GROUP_LABEL] = key
        if taint:
            node["spec"] = {"taints": [{"key": GROUP_LABEL, "value": key, "effect": "NoSchedule"}]}
        nodes.append(node)
    inventory.create(api, nodes, timeout_s=timeout_s)
    return NodeGroup(tuple(n["metadata"]["name"] for n in nodes), key, pool)


def delete_group(api: client.ApiClient, group: NodeGroup) -> None:
    core = client.CoreV1Api(api)
    for name in group.names:
        try:
            core.delete_node(name)
        except client.ApiException as e:
            if e.status != 404:
                raise


@dataclass(slots=True)
class Pod:
    """A fluent pod builder: ``Pod("p", ns).gpus(2).fairpack().on(group).create(api)``."""

    name: str
    namespace: str
    scheduler: str = "default-scheduler"
    limits: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    pod_labels: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, str]] = field(default_factory=list)
    image: str = "registry.k8s.io/pause:3.10"
    """Never pulled: KWOK nodes only pretend to run containers."""

    def fairpack(self) -> Self:
        """Scheduled by the ``fairpack-scheduler`` profile (the scheduler with the extender)."""
        self.scheduler = labels.SCHEDULER_NAME
        return self

    def gpus(self, n: int) -> Self:
        self.limits[labels.GPU_RESOURCE] = str(n)
        return self

    def mig(self, profile: str, n: int = 1) -> Self:
        self.limits[labels.MIG_RESOURCE_PREFIX + profile] = str(n)
        return self

    def resources(self, **amounts: str) -> Self:
        """Other limits (= requests), e.g. ``cpu="2"``, ``memory="4Gi"``."""
        self.limits.update(amounts)
        return self

    def runs_for(self, duration: str) -> Self:
        """KWOK marks the pod Succeeded ``duration`` (a Go duration, ``"5s"``) after it runs."""
        self.annotations[labels.SIMULATED_RUN_TIME_ANNOTATION] = duration
        return self

    def annotate(self, **annotations: str) -> Self:
        self.annotations.update(annotations)
        return self

    def label(self, **pod_labels: str) -> Self:
        self.pod_labels.update(pod_labels)
        return self

    def on(self, group: NodeGroup) -> Self:
        """Only on ``group``'s nodes (selects and tolerates them)."""
        self.node_selector.update(group.selector)
        self.tolerations.append(group.toleration)
        return self

    def manifest(self) -> dict[str, Any]:
        container: dict[str, Any] = {"name": "main", "image": self.image}
        if self.limits:
            container["resources"] = {"limits": dict(self.limits)}
        spec: dict[str, Any] = {"schedulerName": self.scheduler, "containers": [container]}
        if self.node_selector:
            spec["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            spec["tolerations"] = list(self.tolerations)
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": dict(self.pod_labels),
                "annotations": dict(self.annotations),
            },
            "spec": spec,
        }

    def create(self, api: client.ApiClient) -> client.V1Pod:
        body: Any = self.manifest()
        created: client.V1Pod = client.CoreV1Api(api).create_namespaced_pod(self.namespace, body)
        return created


def read_pod(api: client.ApiClient, namespace: str, name: str) -> Any:
    """The pod as the client's model (typed Any: its optional fields are always set once read)."""
    return client.CoreV1Api(api).read_namespaced_pod(name, namespace)


def condition(obj: Any, kind: str) -> Any:
    """The status condition of type ``kind`` of a pod or node (client model), or None."""
    return next((c for c in (obj.status.conditions or ()) if c.type == kind), None)


def phase_is(api: client.ApiClient, namespace: str, name: str, phase: str) -> Callable[[], str | None]:
    """A predicate for wait_for: the pod's phase once it is ``phase``, else None."""

    def check() -> str | None:
        current = read_pod(api, namespace, name).status.phase
        return current if current == phase else None

    return check
