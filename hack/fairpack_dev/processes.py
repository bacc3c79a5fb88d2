"""Long-running child processes with a pid file and a log each, stoppable from any process.

Each component runs in its own session (process group), so stopping it also stops anything it
spawned. A pid file holds the pid and the program path: ``stop`` signals only a process that
still runs that program, never a recycled pid.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

_children: dict[int, subprocess.Popen[bytes]] = {}
"""Components this process started, kept so they are reaped (and not warned about) when stopped."""
_ended: dict[int, int] = {}
"""Return codes of those children once reaped, by pid (negative: the signal that ended them)."""


KILL_WAIT_S = 30.0
"""How long SIGKILLed processes may take to be gone (a process in uninterruptible sleep lingers)."""


class StopError(RuntimeError):
    """A component's processes survived SIGKILL (left in the process table, pid file kept)."""


@dataclass(frozen=True, slots=True)
class Component:
    """A component's files under the state directory."""

    name: str
    state_dir: pathlib.Path

    @property
    def log(self) -> pathlib.Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    @property
    def pid_file(self) -> pathlib.Path:
        return self.state_dir / "pids" / f"{self.name}.pid"

    def start(self, args: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
        """Start ``args`` detached (new session), appending its output to the log; returns the pid."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(args)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        _children[proc.pid] = proc
        self.pid_file.write_text(f"{proc.pid}\n{args[0]}\n")
        return proc.pid

    def pid(self) -> int | None:
        """The pid of this component if it is still running its program, else None."""
        try:
            pid_text, program = self.pid_file.read_text().splitlines()[:2]
        except (FileNotFoundError, ValueError):
            return None
        pid = int(pid_text)
        child = _children.get(pid)
        if child is not None:
            # Our own child: poll() is the truth. /proc/<pid>/cmdline reads empty while the kernel
            # still sets up the new program: Popen returns once close-on-exec fires, before the
            # arguments are in place, and on a loaded machine a readiness poll lands in that gap
            # (a live kube-apiserver reported as "exited" with an empty log).
            if child.poll() is None:
                return pid
        elif running(pid, program):
            return pid
        _reap(pid)
        return None

    def stop(self, *, grace_s: float) -> None:
        """SIGTERM the component's process group, SIGKILL it after ``grace_s``; drop the pid file.

        Returns once the process and everything else in its group (what it spawned) are gone."""
        pid = self.pid()
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout_s=grace_s):
                _signal_group(pid, signal.SIGKILL)
                if not self._wait_gone(pid, timeout_s=KILL_WAIT_S):
                    raise StopError(f"{self.name}: processes of group {pid} outlived SIGKILL")
        self.pid_file.unlink(missing_ok=True)

    def _recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def _wait_gone(self, pid: int, *, timeout_s: float | None) -> bool:
        """Whether the process and its group ended within ``timeout_s`` (None: as long as it takes)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        proc = _children.pop(pid, None)
        if proc is not None:
            # Our own child: wait() reaps it (its /proc entry may vanish before it can be reaped).
            try:
                _ended[pid] = proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                _children[pid] = proc
                return False
        # A pgid is not reused while any member lives, so the group is still this component's.
        while self.pid() is not None or group_members(pid):
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def ending(self) -> str:
        """How the component's last process ended, as far as this process can tell."""
        pid = self._recorded_pid()
        if pid is None:
            return "no pid file"
        code = _ended.get(pid)
        if code is None:
            return "exit status unknown: not started by this process"
        if code < 0:
            # An empty log and SIGKILL: the kernel's OOM killer or something outside.
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def running(pid: int, program: str) -> bool:
    """Whether ``pid`` is alive (not a zombie) and runs ``program``."""
    stat = _stat(pid)
    try:
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat is not None and cmdline == program


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    members = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and int(stat[2]) == pgid:
                members.append(int(entry.name))
    return members


def with_argument(text: str) -> list[int]:
    """Live (not zombie) processes, other than this one, with ``text`` in an argument.

    Every component's command line names its state directory, so this finds them whatever
    became of their pid files or process groups."""
    found = []
    needle = text.encode()
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if any(needle in arg for arg in args) and _stat(int(entry.name)) is not None:
            found.append(int(entry.name))
    return found


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...); None when
    the process is gone or a zombie."""
    try:
        text = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def _reap(pid: int) -> None:
    # A child of this very process stays a zombie until waited for.
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        _ended[pid] = proc.returncode
        del _children[pid]


def probe(url: str, *, context: ssl.SSLContext | None = None, timeout_s: float = 2.0) -> bool:
    """Whether GET ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class StartError(RuntimeError):
    """A component died or did not become healthy; the message ends with its log's tail."""


def wait_healthy(component: Component, url: str, *, context: ssl.SSLContext | None, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; fail early if the component exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if probe(url, context=context):
            return
        if component.pid() is None:
            raise StartError(
                f"{component.name} exited ({component.ending()}); {component.log}:\n{component.tail()}"
            )
        time.sleep(0.2)
    raise StartError(
        f"{component.name} not healthy at {url} after {timeout_s} s; {component.log}:\n{component.tail()}"
    )


def interrupt_on_sigterm() -> Callable[[], None]:
    """Make SIGTERM raise KeyboardInterrupt in the main thread; returns a function that puts the
    previous handler back.

    Components run in sessions of their own, so a SIGTERM to the process that started them (a
    CI timeout stopping pytest) does not reach them, and by default it ends that process without
    its cleanup. As a KeyboardInterrupt, the cleanup (pytest's fixture teardown, ``finally``)
    runs. Further SIGTERMs are ignored meanwhile, so they cannot cut that cleanup short."""
    previous = signal.getsignal(signal.SIGTERM)
    if previous is None:  # installed outside Python: the default is the nearest we can restore
        previous = signal.SIG_DFL

    def interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    signal.signal(signal.SIGTERM, interrupt)
    return restore
