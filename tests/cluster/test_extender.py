"""The extender with the real kube-scheduler: the fairpack-scheduler asks it to filter, prioritize,
preempt and bind (nodeCacheCapable, not ignorable) on KWOK GPU nodes of the local control plane.

The extender runs in this process (uvicorn in a thread) and watches the cluster as it would in one.
"""

from __future__ import annotations

import collections
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fairpack_dev import testkit
from fairpack_dev.scheduler_config import ExtenderConfig
from kubernetes import client

from fairpack.extender import app as app_
from fairpack.extender import settings as settings_
from fairpack.solver import labels

from .conftest import GpuNodes, TestCluster

PodBuilder = Callable[[str], testkit.Pod]
Configure = Callable[[ExtenderConfig | None], None]
ISLAND = {labels.REQUIRE_NVLINK_ANNOTATION: "true"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RunningExtender:
    """The extender app served by uvicorn in a thread, watching the test cluster."""

    def __init__(self, kubeconfig: str) -> None:
        self.port = free_port()
        settings = settings_.load(environ={}, host="127.0.0.1", port=self.port, kubeconfig=kubeconfig)
        config = uvicorn.Config(app_.create_app(settings), host="127.0.0.1", port=self.port, log_config=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="extender", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        testkit.wait_for(self._ready, 30, what="the extender's /readyz")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="module")
def extender(cluster: TestCluster) -> Iterator[RunningExtender]:
    running = RunningExtender(str(cluster.kubeconfig))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def with_extender(extender: RunningExtender, fairpack_scheduler: Configure) -> RunningExtender:
    fairpack_scheduler(ExtenderConfig(url_prefix=extender.url, ignorable=False, http_timeout_s=5.0))
    return extender


def occupy(api: client.ApiClient, builder: testkit.Pod, node: str, **annotations: str) -> None:
    """A pod bound straight to ``node`` (no scheduler) holding the devices ``annotations`` name."""
    body: Any = builder.annotate(**annotations).manifest()
    body["spec"]["nodeName"] = node
    client.CoreV1Api(api).create_namespaced_pod(builder.namespace, body)


def running_on(api: client.ApiClient, namespace: str, name: str) -> Callable[[], Any]:
    def check() -> Any:
        current = testkit.read_pod(api, namespace, name)
        return current if current.status.phase == "Running" and current.spec.node_name else None

    return check


def test_island_pod_lands_where_one_nvlink_island_has_four_free_gpus(
    api: client.ApiClient,
    namespace: str,
    gpu_nodes: GpuNodes,
    pod: PodBuilder,
    with_extender: RunningExtender,
) -> None:
    group = gpu_nodes("a100-40", count=2)
    spread, packed = group.names
    # Both nodes have 4 free GPUs; only "packed" has them in one island (4-7).
    occupy(api, pod("s1").gpus(2).on(group), spread, **{labels.GPU_INDICES_ANNOTATION: "0,1"})
    occupy(api, pod("s2").gpus(2).on(group), spread, **{labels.GPU_INDICES_ANNOTATION: "4,5"})
    occupy(api, pod("p1").gpus(4).on(group), packed, **{labels.GPU_INDICES_ANNOTATION: "0,1,2,3"})
    for name in ("s1", "s2", "p1"):
        testkit.wait_for(running_on(api, namespace, name), 30, what=f"pre-placed pod {name} Running")
    pod("big").gpus(4).annotate(**ISLAND).fairpack().on(group).create(api)
    placed = testkit.wait_for(running_on(api, namespace, "big"), 60, what="the island pod Running")
    assert placed.spec.node_name == packed
    assert placed.metadata.annotations[labels.GPU_INDICES_ANNOTATION] == "4,5,6,7"


def test_mig_pods_get_distinct_valid_instances_and_the_extra_one_waits_with_a_reason(
    api: client.ApiClient,
    namespace: str,
    gpu_nodes: GpuNodes,
    pod: PodBuilder,
    with_extender: RunningExtender,
) -> None:
    group = gpu_nodes("a100-80-mig")
    (node,) = group.names
    # The layout has two 3g.40gb instances (GPU 0 and GPU 1, both at slot 4); one is taken already.
    occupy(api, pod("held").mig("3g.40gb").on(group), node, **{labels.MIG_INSTANCE_ANNOTATION: "0:3g.40gb@4"})
    testkit.wait_for(running_on(api, namespace, "held"), 30, what="the pre-placed MIG pod Running")
    pod("slice").mig("3g.40gb").fairpack().on(group).create(api)
    placed = testkit.wait_for(running_on(api, namespace, "slice"), 60, what="the MIG pod Running")
    assert placed.metadata.annotations[labels.MIG_INSTANCE_ANNOTATION] == "1:3g.40gb@4"
    pod("extra").mig("3g.40gb").fairpack().on(group).create(api)
    judged = testkit.wait_for(
        lambda: testkit.condition(testkit.read_pod(api, namespace, "extra"), "PodScheduled"),
        60,
        what="the third MIG pod judged",
    )
    assert judged.status == "False"
    assert judged.reason == "Unschedulable"


@pytest.fixture
def priority_classes(api: client.ApiClient) -> Iterator[dict[str, str]]:
    scheduling = client.SchedulingV1Api(api)
    names = {"low": testkit.unique("low"), "high": testkit.unique("high")}
    for kind, value in (("low", 10), ("high", 100000)):
        body: Any = {"metadata": {"name": names[kind]}, "value": value}
        scheduling.create_priority_class(body)
    yield names
    for name in names.values():
        scheduling.delete_priority_class(name)


def test_high_priority_island_pod_preempts_the_fewest_low_priority_pods_of_one_island(
    api: client.ApiClient,
    namespace: str,
    gpu_nodes: GpuNodes,
    pod: PodBuilder,
    with_extender: RunningExtender,
    priority_classes: dict[str, str],
) -> None:
    group = gpu_nodes("a100-40")
    (node,) = group.names
    core = client.CoreV1Api(api)
    # Islands 0-3 and 4-7: one 2-GPU pod on each of 0,1 and 4,5; 1-GPU pods on 2, 3, 6 and 7.
    layout = {"a": "0,1", "b": "4,5", "c": "2", "d": "3", "e": "6", "f": "7"}
    for name, gpus in layout.items():
        builder = pod(name).gpus(len(gpus.split(","))).on(group)
        body: Any = builder.annotate(**{labels.GPU_INDICES_ANNOTATION: gpus}).manifest()
        body["spec"]["nodeName"] = node
        body["spec"]["priorityClassName"] = priority_classes["low"]
        core.create_namespaced_pod(namespace, body)
    for name in layout:
        testkit.wait_for(running_on(api, namespace, name), 30, what=f"low-priority pod {name} Running")
    high: Any = pod("high").gpus(4).annotate(**ISLAND).fairpack().on(group).manifest()
    high["spec"]["priorityClassName"] = priority_classes["high"]
    core.create_namespaced_pod(namespace, high)
    placed = testkit.wait_for(running_on(api, namespace, "high"), 90, what="the high-priority pod Running")
    listed: Any = core.list_namespaced_pod(namespace).items
    remaining = {p.metadata.name for p in listed if p.metadata.deletion_timestamp is None}
    evicted = set(layout) - remaining
    # Every island needs 3 evictions (one 2-GPU and two 1-GPU pods); none needs more.
    assert len(evicted) == 3, evicted
    freed = {int(g) for name in evicted for g in layout[name].split(",")}
    assert freed in ({0, 1, 2, 3}, {4, 5, 6, 7})
    assert {int(g) for g in placed.metadata.annotations[labels.GPU_INDICES_ANNOTATION].split(",")} == freed


def test_fifty_pods_bound_concurrently_never_share_a_gpu(
    api: client.ApiClient,
    namespace: str,
    gpu_nodes: GpuNodes,
    pod: PodBuilder,
    with_extender: RunningExtender,
) -> None:
    group = gpu_nodes("h100", count=7)  # 56 GPUs for 50 one-GPU pods
    names = [f"w{i}" for i in range(50)]
    for name in names:
        pod(name).gpus(1).fairpack().on(group).create(api)
    placed = [testkit.wait_for(running_on(api, namespace, n), 120, what=f"pod {n} Running") for n in names]
    devices = [(p.spec.node_name, p.metadata.annotations[labels.GPU_INDICES_ANNOTATION]) for p in placed]
    assert len(set(devices)) == 50, collections.Counter(devices).most_common(3)


def test_with_the_extender_stopped_an_ignorable_extender_lets_scheduling_go_on(
    cluster: TestCluster,
    api: client.ApiClient,
    namespace: str,
    gpu_nodes: GpuNodes,
    pod: PodBuilder,
    fairpack_scheduler: Configure,
) -> None:
    stopped = RunningExtender(str(cluster.kubeconfig))
    stopped.start()
    stopped.stop()
    fairpack_scheduler(ExtenderConfig(url_prefix=stopped.url, ignorable=True, http_timeout_s=1.0))
    group = gpu_nodes("h100")
    pod("goes-on").gpus(2).fairpack().on(group).create(api)
    placed = testkit.wait_for(
        running_on(api, namespace, "goes-on"), 60, what="the pod Running without extender"
    )
    assert placed.spec.node_name == group.names[0]
    assert labels.GPU_INDICES_ANNOTATION not in (placed.metadata.annotations or {})
