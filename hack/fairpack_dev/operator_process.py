"""Run ``fairpack-operator`` as a process against a cluster, for tests and the demo.

The operator runs exactly as it does in a pod (the console script, settings from FAIRPACK_*),
only with a kubeconfig; its JSON log goes to a file the caller can read when something fails.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from types import TracebackType

import yaml
from kubernetes import client

REPO = pathlib.Path(__file__).resolve().parents[2]
CRDS = REPO / "manifests" / "crds"
SCRIPT = pathlib.Path(sys.executable).parent / "fairpack-operator"


def apply_crds(api: client.ApiClient, *, timeout_s: float = 30.0) -> None:
    """Create or replace fairpack's CRDs and wait until the API serves them."""
    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        names.append(crd["metadata"]["name"])
        try:
            ext.create_custom_resource_definition(crd)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            current = ext.read_custom_resource_definition(crd["metadata"]["name"])
            assert current.metadata is not None
            crd["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(crd["metadata"]["name"], crd)
    deadline = time.monotonic() + timeout_s
    for name in names:
        while True:
            status = ext.read_custom_resource_definition(name).status
            conditions = (status.conditions if status else None) or ()
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not established after {timeout_s} s")
            time.sleep(0.2)


class OperatorProcess:
    """``with OperatorProcess(kubeconfig, log) as op: ...`` runs the operator until the block ends.

    ``kill()`` sends SIGKILL (a crash mid-reconcile), ``start()`` starts a fresh one.
    """

    def __init__(
        self, kubeconfig: str | os.PathLike[str], log: pathlib.Path, *, env: Mapping[str, str] | None = None
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.log = log
        self.env = {
            "FAIRPACK_LIVENESS_PORT": "0",
            "FAIRPACK_METRICS_PORT": "0",
            "FAIRPACK_ADMISSION_CYCLE_INTERVAL_S": "0.5",
            "FAIRPACK_LLMSERVICE_STATUS_INTERVAL_S": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **self.env, "KUBECONFIG": self.kubeconfig, "PYTHONWARNINGS": "ignore"}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([str(SCRIPT)], env=env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies under the operator."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        """SIGTERM and wait (kopf stops gracefully)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> OperatorProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
