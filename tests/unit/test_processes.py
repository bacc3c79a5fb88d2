"""The dev tooling's process handling: a component that dies while starting is reported with how it
ended; a stopped cluster's logs are kept."""

from __future__ import annotations

import io
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from fairpack_dev import cluster, demo, processes
from rich.console import Console


@pytest.mark.parametrize(
    ("script", "ending"),
    [("echo starting; exit 3", "exit status 3"), ("kill -KILL $$", "killed by SIGKILL")],
)
def test_a_component_that_dies_at_start_is_reported_with_its_ending(
    tmp_path: pathlib.Path, script: str, ending: str
) -> None:
    component = processes.Component("doomed", tmp_path)
    component.start(["/bin/sh", "-c", script])
    with pytest.raises(processes.StartError) as error:
        # Nothing listens on port 9 (discard): only the death ends the wait.
        processes.wait_healthy(component, "http://127.0.0.1:9/", context=None, timeout_s=30)
    assert f"doomed exited ({ending})" in str(error.value)
    assert component.pid() is None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_for_file(path: pathlib.Path, timeout_s: float = 10) -> str:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} not written"
        time.sleep(0.05)
    return path.read_text().strip()


@pytest.mark.parametrize(
    "trap",
    [
        pytest.param("", id="group-ends-on-sigterm"),
        # Ignored signals stay ignored across fork and exec: the grandchild ignores SIGTERM too.
        pytest.param("trap '' TERM;", id="group-ignoring-sigterm-is-killed-after-the-grace"),
    ],
)
def test_stop_ends_the_components_whole_process_group_with_its_grandchild(
    tmp_path: pathlib.Path, trap: str
) -> None:
    component = processes.Component("parent", tmp_path)
    marker = tmp_path / "grandchild.pid"
    pid = component.start(["/bin/sh", "-c", f"{trap} sleep 1000 & echo $! > {marker}; wait"])
    grandchild = int(_wait_for_file(marker))
    assert set(processes.group_members(pid)) == {pid, grandchild}

    component.stop(grace_s=0.5)

    assert not _alive(grandchild)
    assert processes.group_members(pid) == []
    assert component.pid() is None
    assert not component.pid_file.exists()


def test_a_process_naming_a_path_is_found_until_it_is_stopped(tmp_path: pathlib.Path) -> None:
    component = processes.Component("named", tmp_path)
    # The path is the shell's $0; the shell stays (a command follows sleep, so no exec).
    pid = component.start(["/bin/sh", "-c", "sleep 1000; true", f"{tmp_path}/state"])

    # Popen returns before the kernel has set the new program's arguments (/proc/<pid>/cmdline
    # reads empty in that gap on a loaded machine): the process is found once they are there.
    deadline = time.monotonic() + 10
    while not (found := processes.with_argument(f"{tmp_path}/")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert found == [pid]

    component.stop(grace_s=5)

    assert processes.with_argument(f"{tmp_path}/") == []


CONFTEST = """
import pathlib

import pytest
from fairpack_dev import cluster, processes


@pytest.fixture(scope="session")
def component():
    restore = processes.interrupt_on_sigterm()
    component = processes.Component("sleeper", pathlib.Path(__file__).parent / "state")
    component.start(["/bin/sleep", "1000"])
    try:
        yield component
    finally:
        component.stop(grace_s=5)
        restore()
"""
TEST = """
import pathlib
import time


def test_runs_until_stopped(component):
    (pathlib.Path(__file__).parent / "running").write_text("yes")
    time.sleep(60)
"""


@pytest.mark.slow
def test_sigterm_to_a_test_run_still_stops_the_components_it_started(tmp_path: pathlib.Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_it.py").write_text(TEST)
    hack = pathlib.Path(processes.__file__).resolve().parent.parent
    run = subprocess.Popen(
        [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(hack)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    component = processes.Component("sleeper", tmp_path / "state")
    try:
        _wait_for_file(tmp_path / "running", timeout_s=60)
        pid = component.pid()
        assert pid is not None

        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=60)

        assert not _alive(pid), output.decode()
        assert b"KeyboardInterrupt" in output
    finally:
        run.kill()
        run.communicate()
        component.stop(grace_s=1)


def test_each_run_keeps_its_logs_in_a_directory_of_its_own_linked_as_the_last_run(
    tmp_path: pathlib.Path,
) -> None:
    (tmp_path / "last-run").mkdir()  # as kept before there were run directories
    made = []
    for number in range(4):
        run = cluster.run_logs_dir(tmp_path, keep=2)
        (run / "etcd.log").write_text(f"run {number}\n")
        made.append(run)

    assert len(set(made)) == 4
    assert (tmp_path / "last-run").resolve() == made[-1]
    assert (tmp_path / "last-run" / "etcd.log").read_text() == "run 3\n"
    assert sorted(p for p in tmp_path.iterdir() if p.name.startswith("run-")) == made[-2:]


def _stopped_cluster_with_a_log(state_dir: pathlib.Path) -> cluster.LocalCluster:
    """A cluster's state directory as a failed run leaves it: the apiserver's log, nothing running."""
    local = cluster.LocalCluster(cluster.Settings(state_dir=state_dir, inventory=None))
    local.logs.mkdir(parents=True)
    (local.logs / "kube-apiserver.log").write_text("apiserver died\n")
    # fairpack's own processes, as the demo starts them in a folder of the state directory
    (state_dir / "fairpack").mkdir()
    (state_dir / "fairpack" / "operator.log").write_text("operator said\n")
    return local


def test_cluster_down_keeps_the_components_logs_as_the_last_run_and_says_where(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cluster, "LOGS_ROOT", tmp_path / "logs")
    local = _stopped_cluster_with_a_log(tmp_path / "state")

    assert cluster.main(["down", "--state-dir", str(local.state_dir)]) == 0

    assert not local.state_dir.exists()
    last = tmp_path / "logs" / "last-run"
    assert (last / "kube-apiserver.log").read_text() == "apiserver died\n"
    assert (last / "fairpack" / "operator.log").read_text() == "operator said\n"
    assert f"logs are kept in {last.resolve()}" in capsys.readouterr().out


def test_the_demos_teardown_keeps_the_components_logs_as_the_last_run_and_says_where(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "LOGS_ROOT", tmp_path / "logs")
    local = _stopped_cluster_with_a_log(tmp_path / "state")
    out = io.StringIO()

    demo.step_cluster_down(Console(file=out, width=500), local)

    assert not local.state_dir.exists()
    last = tmp_path / "logs" / "last-run"
    assert (last / "kube-apiserver.log").read_text() == "apiserver died\n"
    assert (last / "fairpack" / "operator.log").read_text() == "operator said\n"
    assert f"logs are kept in {last.resolve()}" in out.getvalue()


def test_taking_down_a_cluster_that_never_ran_keeps_no_empty_run(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "LOGS_ROOT", tmp_path / "logs")
    local = cluster.LocalCluster(cluster.Settings(state_dir=tmp_path / "state", inventory=None))

    assert local.down_keeping_logs() is None
    assert not (tmp_path / "logs").exists()


def test_an_own_child_whose_command_line_is_not_readable_yet_counts_as_running(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Right after exec the kernel has not yet filled in /proc/<pid>/cmdline: the command-line
    # check fails for a process that is alive and about to serve.
    component = processes.Component("starting", tmp_path)
    pid = component.start(["/bin/sleep", "30"])
    monkeypatch.setattr(processes, "running", lambda pid, program: False)
    try:
        assert component.pid() == pid
    finally:
        component.stop(grace_s=5)
    assert component.pid() is None
