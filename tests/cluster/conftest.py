"""Fixtures of every test on a real cluster (marker ``cluster``).

The cluster is the local control plane (hack/fairpack_dev/cluster.py), started once per run in a
temporary state directory with the small GPU inventory and stopped at the end. Its components'
logs are then copied to a directory of this run (``~/.cache/fairpack/logs/last-run`` links to the
newest; the path is printed at the end of the run). A process of it still running after the stop
fails the run. A SIGTERM to pytest (a CI timeout) runs this teardown too.

With ``FAIRPACK_KUBECONFIG`` set, the tests use that cluster instead (``make kind-e2e``); then there
are no local processes to reconfigure and ``fairpack_scheduler`` skips, and so do tests marked
``local_only`` (the API server calls back to the test process, which only a local one can reach).

Session: ``cluster`` (TestCluster), ``kubeconfig`` (str, admin), ``api`` (kubernetes ApiClient).
Per test: ``namespace`` (fresh, deleted after), ``gpu_nodes`` (node groups from inventory pools,
deleted after), ``pod`` (fluent builder bound to the test's namespace), ``wait_for``,
``fairpack_scheduler`` (restart the fairpack-scheduler with another extender entry).

Missing binaries fail the tests, naming ``make binaries``; only FAIRPACK_SKIP_CLUSTER=1 skips them.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fairpack_dev import cluster as localcluster
from fairpack_dev import inventory, processes, testkit
from fairpack_dev.scheduler_config import ExtenderConfig
from kubernetes import client, config

HERE = pathlib.Path(__file__).resolve().parent
LOGS_KEPT_KEY = pytest.StashKey[pathlib.Path]()
"""This run's copy of the control plane's logs (localcluster.run_logs_dir)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "local_only: the API server must reach this machine (a webhook); skipped on kind"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/cluster is a cluster test; FAIRPACK_SKIP_CLUSTER=1 skips them, an
    external cluster (FAIRPACK_KUBECONFIG) the ``local_only`` ones."""
    skip = os.environ.get("FAIRPACK_SKIP_CLUSTER") == "1"
    external = bool(os.environ.get("FAIRPACK_KUBECONFIG"))
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.cluster)
        if skip and item.get_closest_marker("cluster"):
            item.add_marker(pytest.mark.skip(reason="FAIRPACK_SKIP_CLUSTER=1"))
        elif external and item.get_closest_marker("local_only"):
            reason = "needs the local control plane: its API server calls a webhook on this machine"
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say where the control plane's logs are (in red when the run failed)."""
    logs = config.stash.get(LOGS_KEPT_KEY, None)
    if logs is not None:
        terminalreporter.write_line(f"local control-plane logs of this run: {logs}", red=exitstatus != 0)


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
    restore_sigterm = processes.interrupt_on_sigterm()
    logs = request.config.stash[LOGS_KEPT_KEY] = localcluster.run_logs_dir()
    try:
        local = _start_local(tmp_path_factory, request.config, logs)
        try:
            yield TestCluster(local.kubeconfig, local)
        finally:
            _down(local, logs)
    finally:
        restore_sigterm()


START_ATTEMPTS = 2


def _start_local(
    factory: pytest.TempPathFactory, config: pytest.Config, logs: pathlib.Path
) -> localcluster.LocalCluster:
    """A started local control plane. A component that dies while starting gets one more try
    (reported on the terminal; the logs of the failed start are kept in ``logs/start-attempt-<n>``):
    a CI run once lost every cluster test to an apiserver that died at start with an empty log."""
    error: Exception | None = None
    for attempt in range(1, START_ATTEMPTS + 1):
        if error is not None:
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"local control plane did not start, trying again: {error}", yellow=True)
        local = localcluster.LocalCluster(localcluster.Settings(state_dir=factory.mktemp("cluster")))
        try:
            return local.up()
        except Exception as e:
            left = _stop_and_kill_leftovers(local, logs / f"start-attempt-{attempt}")
            # Reported with the next try: a component taken for dead may have been running.
            error = Exception(f"{e}\n(still running after the stop, now killed:\n{left})") if left else e
    pytest.fail(f"local control plane did not start: {error}", pytrace=False)


def _down(local: localcluster.LocalCluster, logs: pathlib.Path) -> None:
    """Stop ``local``, keeping its logs in ``logs``. Fails the run if any of its processes
    outlived the stop (they are killed, so none stays behind)."""
    left = _stop_and_kill_leftovers(local, logs)
    if left:
        pytest.fail(
            f"processes of the local control plane outlived its stop (now killed):\n{left}", pytrace=False
        )


def _stop_and_kill_leftovers(local: localcluster.LocalCluster, logs: pathlib.Path) -> str:
    """``local.down`` keeping the logs; then SIGKILL whatever of it still runs and describe it
    (empty when the stop was clean)."""
    local.down(keep_logs=logs)
    left = local.processes_left()
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return "\n".join(f"  pid {pid}: {args}" for pid, args in left.items())


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
