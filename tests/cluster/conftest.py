"""Fixtures of every test on a real cluster (marker ``cluster``).

The cluster is the local control plane (hack/fairpack_dev/cluster.py), started once per run in a
temporary state directory with the small GPU inventory and stopped at the end. With
``FAIRPACK_KUBECONFIG`` set, the tests use that cluster instead (``make kind-e2e``); then there
are no local processes to reconfigure and ``fairpack_scheduler`` skips.

Session: ``cluster`` (TestCluster), ``kubeconfig`` (str, admin), ``api`` (kubernetes ApiClient).
Per test: ``namespace`` (fresh, deleted after), ``gpu_nodes`` (node groups from inventory pools,
deleted after), ``pod`` (fluent builder bound to the test's namespace), ``wait_for``,
``fairpack_scheduler`` (restart the fairpack-scheduler with another extender entry).

Missing binaries fail the tests, naming ``make binaries``; only FAIRPACK_SKIP_CLUSTER=1 skips them.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fairpack_dev import cluster as localcluster
from fairpack_dev import inventory, testkit
from fairpack_dev.scheduler_config import ExtenderConfig
from kubernetes import client, config

HERE = pathlib.Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/cluster is a cluster test; FAIRPACK_SKIP_CLUSTER=1 skips them."""
    skip = os.environ.get("FAIRPACK_SKIP_CLUSTER") == "1"
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.cluster)
        if skip and item.get_closest_marker("cluster"):
            item.add_marker(pytest.mark.skip(reason="FAIRPACK_SKIP_CLUSTER=1"))


@dataclass(frozen=True, slots=True)
class TestCluster:
    """The cluster the tests run on."""

    __test__ = False  # not a test class, despite the name

    kubeconfig: pathlib.Path
    """Admin kubeconfig (system:masters)."""
    local: localcluster.LocalCluster | None
    """The local control plane; None on an external (kind) cluster."""


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[TestCluster]:
    """The cluster for this run: ``$FAIRPACK_KUBECONFIG``'s, or a local control plane started
    now (small inventory) and stopped, processes and state, at the end of the run."""
    external = os.environ.get("FAIRPACK_KUBECONFIG")
    if external:
        yield TestCluster(pathlib.Path(external), None)
        return
    try:
        localcluster.binaries()
    except localcluster.BinariesMissingError as e:
        pytest.fail(str(e), pytrace=False)
    local = _start_local(tmp_path_factory, request.config)
    try:
        yield TestCluster(local.kubeconfig, local)
    finally:
        local.down()


START_ATTEMPTS = 2


def _start_local(factory: pytest.TempPathFactory, config: pytest.Config) -> localcluster.LocalCluster:
    """A started local control plane. A component that dies while starting gets one more try
    (reported on the terminal): a CI run once lost every cluster test to an apiserver that died
    at start with an empty log."""
    error: Exception | None = None
    for _ in range(START_ATTEMPTS):
        if error is not None:
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"local control plane did not start, trying again: {error}", yellow=True)
        local = localcluster.LocalCluster(localcluster.Settings(state_dir=factory.mktemp("cluster")))
        try:
            return local.up()
        except Exception as e:
            local.down()
            error = e
    pytest.fail(f"local control plane did not start: {error}", pytrace=False)


@pytest.fixture(scope="session")
def kubeconfig(cluster: TestCluster) -> str:
    """Path of the admin kubeconfig, as a string."""
    return str(cluster.kubeconfig)


@pytest.fixture(scope="session")
def api(cluster: TestCluster) -> Iterator[client.ApiClient]:
    """An admin kubernetes ApiClient (wrap it: ``client.CoreV1Api(api)``)."""
    with config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:  # type: ignore[no-untyped-call]
        yield api


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace (its default ServiceAccount exists); deleted after the test."""
    core = client.CoreV1Api(api)
    name = testkit.unique("t")
    body: Any = {"metadata": {"name": name}}
    core.create_namespace(body)
    testkit.wait_for(
        lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items,
        30,
        what=f"the default ServiceAccount of namespace {name}",
    )
    yield name
    core.delete_namespace(name)


GpuNodes = Callable[..., testkit.NodeGroup]


@pytest.fixture
def gpu_nodes(api: client.ApiClient) -> Iterator[GpuNodes]:
    """``gpu_nodes(pool="h100", count=1, inventory_file=inventory.SMALL, taint=True)``: nodes of an
    inventory pool that only this test uses (unique names; with ``taint`` a NoSchedule taint, so
    only pods built with ``.on(group)`` land there). Returns a NodeGroup once KWOK has them Ready;
    they are deleted after the test."""
    made: list[testkit.NodeGroup] = []

    def create(
        pool: str = "h100",
        *,
        count: int = 1,
        inventory_file: pathlib.Path = inventory.SMALL,
        taint: bool = True,
    ) -> testkit.NodeGroup:
        group = testkit.create_group(api, inventory.load(inventory_file).pool(pool), count=count, taint=taint)
        made.append(group)
        return group

    yield create
    for group in made:
        testkit.delete_group(api, group)


@pytest.fixture
def pod(namespace: str) -> Callable[[str], testkit.Pod]:
    """``pod("name")``: a testkit.Pod builder in the test's namespace (``.create(api)`` to submit)."""
    return lambda name: testkit.Pod(name, namespace)


@pytest.fixture
def wait_for() -> Callable[..., object]:
    """testkit.wait_for: ``wait_for(predicate, timeout, what="...")`` returns the first truthy value
    of ``predicate()`` or fails the test naming ``what``."""
    return testkit.wait_for


@pytest.fixture
def fairpack_scheduler(cluster: TestCluster) -> Iterator[Callable[[ExtenderConfig | None], None]]:
    """``fairpack_scheduler(ExtenderConfig(url_prefix=..., ignorable=False))`` restarts the local
    fairpack-scheduler with that extender entry (None: without extenders); the default entry is
    restored after the test. Skips on an external cluster (nothing local to restart)."""
    local = cluster.local
    if local is None:
        pytest.skip("needs the local control plane (the fairpack-scheduler is a local process)")
    changed = False

    def configure(extender: ExtenderConfig | None) -> None:
        nonlocal changed
        changed = True
        local.restart_fairpack_scheduler(extender)

    yield configure
    if changed:
        local.restart_fairpack_scheduler(local.default_extender())
