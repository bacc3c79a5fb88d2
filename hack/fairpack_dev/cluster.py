"""A real local Kubernetes control plane with simulated GPU nodes.

Processes (each on 127.0.0.1, every port chosen free at start, so several clusters can run on
one machine): etcd; kube-apiserver (TLS, Node+RBAC authorisation, service-account signing);
kube-controller-manager; the default kube-scheduler; a second kube-scheduler with the single
profile ``fairpack-scheduler`` and an ``extenders:`` entry (scheduler_config); KWOK faking the
kubelets of nodes annotated ``kwok.x-k8s.io/node=fake`` (stages in hack/kwok/stages.yaml).

Everything lives in a state directory: ``pki/`` (certificates, kubeconfigs), ``etcd/``,
``logs/<component>.log``, ``pids/<component>.pid`` and ``cluster.json`` (ports, so another
process can attach). CLI::

    python -P -m fairpack_dev.cluster up [--inventory FILE] [--state-dir DIR]
    python -P -m fairpack_dev.cluster status|down [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import shutil
import socket
import ssl
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, Self

import yaml
from kubernetes import client, config

from fairpack_dev import inventory, pki, processes, scheduler_config

VERSIONS = pathlib.Path(__file__).resolve().parent.parent / "versions.env"
STAGES = pathlib.Path(__file__).resolve().parent.parent / "kwok" / "stages.yaml"
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "fairpack-scheduler",
    "kwok",
)


def cache_dir() -> pathlib.Path:
    """``$FAIRPACK_CACHE``, else ``~/.cache/fairpack`` (where hack/build-binaries.sh puts binaries)."""
    if "FAIRPACK_CACHE" in os.environ:
        return pathlib.Path(os.environ["FAIRPACK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base) / "fairpack"


DEFAULT_STATE_DIR = cache_dir() / "cluster"
LOGS_ROOT = cache_dir() / "logs"
"""Kept logs of clusters taken down (test runs, ``make cluster-down``, ``make demo --once``): one
directory per run, ``last-run`` links to the newest."""


def run_logs_dir(root: pathlib.Path | None = None, *, keep: int = 10) -> pathlib.Path:
    """A new directory under ``root`` (None: ``LOGS_ROOT``, looked up now so tests can move it)
    for one run's logs, linked as ``root/last-run``. Only the newest ``keep`` run directories stay:
    runs (concurrent ones too) never overwrite each other's logs, and the cache does not grow
    without end."""
    root = LOGS_ROOT if root is None else root
    root.mkdir(parents=True, exist_ok=True)
    run = root / f"run-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}-{os.getpid()}"
    run.mkdir()
    last = root / "last-run"
    if last.is_dir() and not last.is_symlink():  # a copy, as kept before there were run directories
        shutil.rmtree(last)
    link = root / f".last-run-{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(run.name)
    link.replace(last)  # atomic: the link always names a whole run
    runs = sorted(p for p in root.glob("run-*") if p.is_dir())  # by name: by start time
    for old in runs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return run


class BinariesMissingError(RuntimeError):
    """A pinned binary is not built yet."""


def versions() -> dict[str, str]:
    """The pins of hack/versions.env by name (``KUBERNETES_VERSION``: ``v1.35.4``, ...)."""
    return dict(
        line.split("=", 1)
        for line in VERSIONS.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )


def binaries() -> dict[str, pathlib.Path]:
    """Path of each binary the control plane runs, at the versions pinned in hack/versions.env."""
    pins = versions()
    bin_dir = cache_dir() / "bin"
    kube = bin_dir / f"kubernetes-{pins['KUBERNETES_VERSION']}"
    paths = {
        "etcd": bin_dir / f"etcd-{pins['ETCD_VERSION']}" / "etcd",
        "kube-apiserver": kube / "kube-apiserver",
        "kube-controller-manager": kube / "kube-controller-manager",
        "kube-scheduler": kube / "kube-scheduler",
        "kubectl": kube / "kubectl",
        "kwok": bin_dir / f"kwok-{pins['KWOK_VERSION']}" / "kwok",
    }
    missing = [str(p) for p in paths.values() if not os.access(p, os.X_OK)]
    if missing:
        raise BinariesMissingError(
            "control-plane binaries missing (run `make binaries`, it builds and caches them): "
            + ", ".join(missing)
        )
    return paths


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now (held open together so none repeats)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class Ports:
    """The ports of one cluster, all on 127.0.0.1."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    fairpack_scheduler: int
    kwok: int
    extender: int
    """Reserved for an extender: the default extender entry points here (nothing listens)."""

    @classmethod
    def pick(cls) -> Ports:
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**dict(zip(names, free_ports(len(names)), strict=True)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """How to run a local cluster."""

    state_dir: pathlib.Path = DEFAULT_STATE_DIR
    """Certificates, etcd data, kubeconfigs, logs and pid files; removed by ``down``."""
    inventory: pathlib.Path | None = inventory.SMALL
    """GPU nodes created at start (None: no nodes)."""
    start_timeout_s: float = 90.0
    """Per component: the apiserver takes 10-30 s on two busy cores."""
    stop_grace_s: float = 10.0
    """SIGTERM, then SIGKILL after this long."""
    extender: scheduler_config.ExtenderConfig | None = None
    """The fairpack-scheduler's extender; None: an ignorable one at the reserved port."""
    verbosity: int = 2
    """klog -v of the Kubernetes components."""
    kwok_stages: pathlib.Path = STAGES
    """KWOK Stage objects: how fake nodes and pods move through their lifecycle."""


class LocalCluster:
    """A control plane in ``settings.state_dir``. ``up()`` starts it (or attaches to it if that
    directory already holds a running one), ``down()`` stops it and removes the directory.
    Also a context manager (up on enter, down on exit)."""

    def __init__(self, settings: Settings = Settings()) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir.resolve()
        self.pki = pki.Pki(self.state_dir / "pki")
        self._ports: Ports | None = None
        self.extender: scheduler_config.ExtenderConfig | None = None

    # --- Where things are ------------------------------------------------------------------

    @property
    def kubeconfig(self) -> pathlib.Path:
        """The admin kubeconfig (user kubernetes-admin, group system:masters)."""
        return self.state_dir / "kubeconfig"

    @property
    def logs(self) -> pathlib.Path:
        """The directory of the components' logs, ``<component>.log`` each."""
        return self.state_dir / "logs"

    @property
    def ports(self) -> Ports:
        if self._ports is None:
            raise RuntimeError(f"cluster in {self.state_dir} is not up")
        return self._ports

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    def component(self, name: str) -> processes.Component:
        return processes.Component(name, self.state_dir)

    def api_client(self) -> client.ApiClient:
        """A new admin client (the caller closes it)."""
        api: client.ApiClient = config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]
        return api

    # --- Lifecycle -------------------------------------------------------------------------

    def running(self) -> bool:
        """Whether the state directory holds a cluster whose apiserver answers /readyz."""
        if not self._load():
            return False
        return processes.probe(f"{self.server}/readyz", context=self._ca_context())

    def up(self) -> Self:
        """Start every component and create the inventory's nodes (or attach to a running cluster)."""
        if self.running():
            return self
        paths = binaries()
        self.down()
        self.state_dir.mkdir(parents=True)
        self._ports = Ports.pick()
        self.extender = self.settings.extender or self.default_extender()
        self._save()
        identities = (pki.ADMIN, pki.CONTROLLER_MANAGER, pki.SCHEDULER, pki.KWOK)
        self.pki.create(identities=identities)
        for identity in identities:
            self.pki.write_kubeconfig(self._kubeconfig_of(identity), identity=identity, server=self.server)
        shutil.copy(self._kubeconfig_of(pki.ADMIN), self.kubeconfig)
        try:
            self._start_etcd(paths["etcd"])
            self._start_apiserver(paths["kube-apiserver"])
            self._start_controller_manager(paths["kube-controller-manager"])
            self._start_scheduler(paths["kube-scheduler"])
            self._start_fairpack_scheduler(paths["kube-scheduler"])
            self._start_kwok(paths["kwok"])
            for name in ("kube-controller-manager", "kube-scheduler", "fairpack-scheduler", "kwok"):
                self._wait(name)
            if self.settings.inventory is not None:
                self.create_nodes(inventory.load(self.settings.inventory).nodes())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every component (reverse start order); keep the state directory."""
        for name in reversed(COMPONENTS):
            self.component(name).stop(grace_s=self.settings.stop_grace_s)

    def down(self, *, keep_logs: pathlib.Path | None = None) -> None:
        """Stop every component and remove the state directory; with ``keep_logs``, first copy
        every log of the state directory into that directory (created, or added to): the
        components' at its top, the others (fairpack's own processes, which the demo starts in a
        folder of the state directory) under their path there."""
        self.stop()
        if keep_logs is not None:
            for log in self._log_files():
                inside = self.logs if log.is_relative_to(self.logs) else self.state_dir
                target = keep_logs / log.relative_to(inside)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(log, target)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self._ports = None

    def down_keeping_logs(self) -> pathlib.Path | None:
        """``down``, keeping the logs in a new run directory (run_logs_dir), so a cluster that
        misbehaved can still be looked into; that directory, or None when there were no logs
        (nothing ran here: no empty run pushes out an older one)."""
        kept = run_logs_dir() if self._log_files() else None
        self.down(keep_logs=kept)
        return kept

    def _log_files(self) -> list[pathlib.Path]:
        return sorted(self.state_dir.rglob("*.log")) if self.state_dir.is_dir() else []

    def processes_left(self) -> dict[int, str]:
        """Processes still running with a path under this cluster's state directory among their
        arguments (pid: command line); empty after a clean ``stop``. Every component's arguments
        name a file there, so this does not rely on the pid files."""
        left = {}
        for pid in processes.with_argument(f"{self.state_dir}{os.sep}"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                args = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                left[pid] = args.decode(errors="replace").strip()
        return left

    def __enter__(self) -> Self:
        return self.up()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    def status(self) -> dict[str, str]:
        """Each component: ``running (pid N)``, ``NOT RUNNING``; plus the apiserver's readiness."""
        report = {}
        for name in COMPONENTS:
            pid = self.component(name).pid()
            report[name] = f"running (pid {pid})" if pid else "NOT RUNNING"
        report["apiserver /readyz"] = "ok" if self.running() else "not ready"
        return report

    def restart_fairpack_scheduler(self, extender: scheduler_config.ExtenderConfig | None) -> None:
        """Restart the fairpack-scheduler process with ``extender`` as its extenders entry (None:
        no extender at all) and wait until it is healthy."""
        self.extender = extender
        self.component("fairpack-scheduler").stop(grace_s=self.settings.stop_grace_s)
        self._start_fairpack_scheduler(binaries()["kube-scheduler"])
        self._wait("fairpack-scheduler")
        self._save()

    @contextlib.contextmanager
    def scheduler_paused(self) -> Iterator[None]:
        """The default kube-scheduler stopped for the block, started again (healthy) after it.

        Whatever is created inside is pending all at once when it starts: its queue then holds
        every pod, in priority order, as a model that schedules a batch assumes."""
        self.component("kube-scheduler").stop(grace_s=self.settings.stop_grace_s)
        try:
            yield
        finally:
            self._start_scheduler(binaries()["kube-scheduler"])
            self._wait("kube-scheduler")

    def default_extender(self) -> scheduler_config.ExtenderConfig:
        """The extender entry a fresh cluster has: ignorable, at the reserved (empty) port."""
        return scheduler_config.ExtenderConfig(url_prefix=f"http://127.0.0.1:{self.ports.extender}")

    # --- Nodes -----------------------------------------------------------------------------

    def create_nodes(self, nodes: Sequence[dict[str, Any]], *, timeout_s: float = 60.0) -> None:
        """Create nodes (inventory.Pool.node dicts) and wait until KWOK reports them Ready."""
        with self.api_client() as api:
            inventory.create(api, nodes, timeout_s=timeout_s)

    # --- Components ------------------------------------------------------------------------

    def _kubeconfig_of(self, identity: pki.Identity) -> pathlib.Path:
        return self.pki.root / f"{identity.name}.kubeconfig"

    def _start_etcd(self, binary: pathlib.Path) -> None:
        p = self.ports
        client_url = f"http://127.0.0.1:{p.etcd_client}"
        peer_url = f"http://127.0.0.1:{p.etcd_peer}"
        self.component("etcd").start(
            [
                str(binary),
                "--name=fairpack",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=fairpack={peer_url}",
                # Throw-away data: no fsync keeps etcd fast on a busy shared disk.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ]
        )
        self._wait("etcd")

    def _start_apiserver(self, binary: pathlib.Path) -> None:
        k = self.pki
        self.component("kube-apiserver").start(
            [
                str(binary),
                f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports.apiserver}",
                f"--cert-dir={self.state_dir / 'apiserver'}",
                f"--tls-cert-file={k.serving_cert}",
                f"--tls-private-key-file={k.serving_key}",
                f"--client-ca-file={k.ca_cert}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={k.sa_pub}",
                f"--service-account-signing-key-file={k.sa_key}",
                "--service-cluster-ip-range=10.96.0.0/16",
                # The apiserver's own address is loopback, which Endpoints may not hold.
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--profiling=false",
                f"--v={self.settings.verbosity}",
            ]
        )
        self._wait("kube-apiserver")

    def _start_controller_manager(self, binary: pathlib.Path) -> None:
        kubeconfig = self._kubeconfig_of(pki.CONTROLLER_MANAGER)
        self.component("kube-controller-manager").start(
            [
                str(binary),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports.controller_manager}",
                f"--cert-dir={self.state_dir / 'controller-manager'}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--root-ca-file={self.pki.ca_cert}",
                f"--service-account-private-key-file={self.pki.sa_key}",
                f"--cluster-signing-cert-file={self.pki.ca_cert}",
                f"--cluster-signing-key-file={self.pki.ca_key}",
                f"--v={self.settings.verbosity}",
            ]
        )

    def _scheduler_args(self, binary: pathlib.Path, name: str, port: int, conf: dict[str, Any]) -> list[str]:
        kubeconfig = self._kubeconfig_of(pki.SCHEDULER)
        path = self.state_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(conf, sort_keys=False))
        return [
            str(binary),
            f"--config={path}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.state_dir / name}",
            f"--v={self.settings.verbosity}",
        ]

    def _start_scheduler(self, binary: pathlib.Path) -> None:
        conf = scheduler_config.default_scheduler(kubeconfig=self._kubeconfig_of(pki.SCHEDULER))
        args = self._scheduler_args(binary, "kube-scheduler", self.ports.scheduler, conf)
        self.component("kube-scheduler").start(args)

    def _start_fairpack_scheduler(self, binary: pathlib.Path) -> None:
        conf = scheduler_config.fairpack_scheduler(
            kubeconfig=self._kubeconfig_of(pki.SCHEDULER), extender=self.extender
        )
        args = self._scheduler_args(binary, "fairpack-scheduler", self.ports.fairpack_scheduler, conf)
        self.component("fairpack-scheduler").start(args)

    def _start_kwok(self, binary: pathlib.Path) -> None:
        self.component("kwok").start(
            [
                str(binary),
                f"--kubeconfig={self._kubeconfig_of(pki.KWOK)}",
                f"--config={self.settings.kwok_stages}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={inventory.KWOK_NODE_ANNOTATION}={inventory.KWOK_NODE_VALUE}",
                "--node-lease-duration-seconds=40",
                "--cidr=10.0.0.1/16",
                f"--server-address=127.0.0.1:{self.ports.kwok}",
            ],
            # KWOK also reads ~/.kwok/kwok.yaml; a private HOME keeps a user's file out.
            env={"HOME": str(self.state_dir / "kwok-home")},
        )

    def _health_url(self, name: str) -> str:
        p = self.ports
        return {
            "etcd": f"http://127.0.0.1:{p.etcd_client}/health",
            "kube-apiserver": f"{self.server}/readyz",
            "kube-controller-manager": f"https://127.0.0.1:{p.controller_manager}/healthz",
            "kube-scheduler": f"https://127.0.0.1:{p.scheduler}/healthz",
            "fairpack-scheduler": f"https://127.0.0.1:{p.fairpack_scheduler}/healthz",
            "kwok": f"http://127.0.0.1:{p.kwok}/healthz",
        }[name]

    def _wait(self, name: str) -> None:
        # The apiserver's certificate is ours; the others serve self-signed ones from their cert-dir.
        context = self._ca_context() if name == "kube-apiserver" else _unverified()
        processes.wait_healthy(
            self.component(name),
            self._health_url(name),
            context=context,
            timeout_s=self.settings.start_timeout_s,
        )

    def _ca_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.ca_cert))

    # --- cluster.json ----------------------------------------------------------------------

    def _save(self) -> None:
        state = {"ports": asdict(self.ports), "extender": _extender_json(self.extender)}
        (self.state_dir / "cluster.json").write_text(json.dumps(state, indent=2))

    def _load(self) -> bool:
        try:
            state = json.loads((self.state_dir / "cluster.json").read_text())
        except FileNotFoundError:
            return False
        self._ports = Ports(**state["ports"])
        extender = state.get("extender")
        self.extender = None if extender is None else _extender_from_json(extender)
        return True


def _extender_json(extender: scheduler_config.ExtenderConfig | None) -> dict[str, Any] | None:
    if extender is None:
        return None
    data = asdict(extender)
    data["ca_file"] = None if extender.ca_file is None else str(extender.ca_file)
    data["managed_resources"] = list(extender.managed_resources)
    return data


def _extender_from_json(data: dict[str, Any]) -> scheduler_config.ExtenderConfig:
    ca_file = data.pop("ca_file")
    return scheduler_config.ExtenderConfig(
        **{**data, "managed_resources": tuple(data["managed_resources"])},
        ca_file=None if ca_file is None else pathlib.Path(ca_file),
    )


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --- CLI -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -P -m fairpack_dev.cluster", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--state-dir", type=pathlib.Path, default=DEFAULT_STATE_DIR)
    parser.add_argument(
        "--inventory", type=pathlib.Path, default=inventory.SMALL, help="GPU node inventory (YAML) for `up`"
    )
    args = parser.parse_args(argv)
    cluster = LocalCluster(Settings(state_dir=args.state_dir, inventory=args.inventory))
    try:
        if args.command == "up":
            cluster.up()
            print(f"cluster up; state and logs in {cluster.state_dir}")
            print(f"  export KUBECONFIG={cluster.kubeconfig}")
            print("  kubectl get nodes  # stop with: make cluster-down")
        elif args.command == "down":
            kept = cluster.down_keeping_logs()
            print(f"cluster down; removed {cluster.state_dir}")
            if kept is not None:
                print(f"  its logs are kept in {kept}")
        else:
            for name, state in cluster.status().items():
                print(f"{name:26} {state}")
    except (BinariesMissingError, processes.StartError, inventory.InventoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
