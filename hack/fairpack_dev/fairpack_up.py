"""The demo's fairpack stage: install the chart on a running cluster, run its three components as
local processes with the chart's ServiceAccount credentials, apply the sample workloads, and show
live what happens (fairpack.cli.views, the same view as ``fairpack status``).

Why local processes: this machine has no container runtime, so the chart's Deployments would only
be simulated by KWOK. The chart is installed with zero replicas of each, and the very programs its
pods would run (fairpack-extender, fairpack-operator, kube-scheduler with the chart's configuration)
run here instead, each with a token of the ServiceAccount the chart made for it.
"""

from __future__ import annotations

import argparse
import base64
import os
import pathlib
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes import client, config, dynamic
from rich.console import Console
from rich.live import Live

from fairpack.cli import views
from fairpack.solver import labels
from fairpack_dev import chart, credentials, operator_process, processes

NAMESPACE = chart.NAMESPACE
RELEASE = chart.RELEASE
EXTENDER_PORT = 18443
EXAMPLES = chart.REPO / "manifests" / "examples"

DEMO_VALUES: Mapping[str, Any] = {
    # The local processes stand in for the pods (see the module docstring).
    "operator": {"replicas": 0, "pdb": {"enabled": False}},
    "extender": {
        "replicas": 0,
        "pdb": {"enabled": False},
        # The local scheduler dials the local extender: its certificate must name 127.0.0.1 too.
        "tls": {"extraDNSNames": ["localhost"], "extraIPs": ["127.0.0.1"]},
    },
    "scheduler": {"replicas": 0, "pdb": {"enabled": False}},
}

DEMO_JOBS: Sequence[tuple[str, str, int, int, int]] = (
    # (tenant, user, jobs, executors, GPUs per executor): one heavy tenant, two lighter ones.
    ("research", "alice", 3, 4, 2),
    ("research", "bob", 2, 2, 4),
    ("analytics", "carol", 6, 4, 1),
    ("batch", "dave", 10, 8, 1),
)


# --- Install -----------------------------------------------------------------------------


def install(kubeconfig: pathlib.Path) -> str:
    """``helm upgrade --install`` the chart with the demo's values; returns helm's status line."""
    out = chart.helm(
        "upgrade",
        "--install",
        RELEASE,
        str(chart.CHART),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        *chart.set_args(DEMO_VALUES),
        kubeconfig=kubeconfig,
    )
    return next((line for line in out.splitlines() if line.startswith("STATUS")), out.strip())


@dataclass(frozen=True)
class Credentials:
    """What the local processes authenticate and serve with."""

    operator: pathlib.Path
    extender: pathlib.Path
    scheduler: pathlib.Path
    tls_cert: pathlib.Path
    tls_key: pathlib.Path
    ca: pathlib.Path


def credentials_for(
    kubeconfig: pathlib.Path, workdir: pathlib.Path, *, fullname: str = RELEASE, namespace: str = NAMESPACE
) -> Credentials:
    """A kubeconfig per component (its ServiceAccount's token) and the extender's TLS files, for
    the release whose objects are named ``<fullname>-<component>`` in ``namespace``."""
    files = {
        component: credentials.write_kubeconfig(
            kubeconfig,
            workdir / f"{component}.kubeconfig",
            namespace=namespace,
            service_account=f"{fullname}-{component}",
        )
        for component in ("operator", "extender", "scheduler")
    }
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:  # type: ignore[no-untyped-call]
        secret: Any = client.CoreV1Api(api).read_namespaced_secret(f"{fullname}-extender-tls", namespace)
    tls = {}
    for key in ("tls.crt", "tls.key", "ca.crt"):
        path = workdir / f"extender-{key}"
        path.write_bytes(base64.b64decode(secret.data[key]))
        path.chmod(0o600)
        tls[key] = path
    return Credentials(
        operator=files["operator"],
        extender=files["extender"],
        scheduler=files["scheduler"],
        tls_cert=tls["tls.crt"],
        tls_key=tls["tls.key"],
        ca=tls["ca.crt"],
    )


def local_scheduler_config(
    chart_config: Mapping[str, Any],
    *,
    kubeconfig: pathlib.Path,
    ca_file: pathlib.Path,
    extender_url: str | None,
) -> dict[str, Any]:
    """The chart's KubeSchedulerConfiguration, changed only where a local process must differ:
    its kubeconfig, the extender's address and CA file. With ``extender_url`` None (no extender
    to run) the extenders block is dropped, so the profile schedules on its own plugins."""
    local = dict(chart_config)
    local["clientConnection"] = {"kubeconfig": str(kubeconfig)}
    if extender_url is None:
        local.pop("extenders", None)
        return local
    extenders = []
    for extender in chart_config.get("extenders", []):
        changed = {**extender, "urlPrefix": extender_url}
        if "tlsConfig" in extender:
            changed["tlsConfig"] = {
                **extender["tlsConfig"],
                "serverName": "127.0.0.1",
                "caFile": str(ca_file),
            }
        extenders.append(changed)
    local["extenders"] = extenders
    return local


def chart_scheduler_config(
    kubeconfig: pathlib.Path, *, fullname: str = RELEASE, namespace: str = NAMESPACE
) -> dict[str, Any]:
    """The scheduler configuration the installed chart holds (its ConfigMap in the cluster)."""
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:  # type: ignore[no-untyped-call]
        found: Any = client.CoreV1Api(api).read_namespaced_config_map(
            f"{fullname}-scheduler-config", namespace
        )
    parsed: dict[str, Any] = yaml.safe_load(found.data["config.yaml"])
    return parsed


# --- Local processes ---------------------------------------------------------------------


@contextmanager
def process(
    args: Sequence[str], log: pathlib.Path, env: Mapping[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` with its output in ``log`` until the block ends (SIGTERM, then SIGKILL)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(list(args), env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def extender(creds: Credentials, log: pathlib.Path, *, port: int = EXTENDER_PORT) -> Iterator[str]:
    """fairpack-extender as a local process with the extender ServiceAccount's kubeconfig and the
    chart's certificate; yields its URL once /readyz answers (its watch of the cluster synced)."""
    env = {
        "FAIRPACK_EXTENDER_KUBECONFIG": str(creds.extender),
        "FAIRPACK_EXTENDER_HOST": "127.0.0.1",
        "FAIRPACK_EXTENDER_PORT": str(port),
        "FAIRPACK_EXTENDER_TLS_CERT_FILE": str(creds.tls_cert),
        "FAIRPACK_EXTENDER_TLS_KEY_FILE": str(creds.tls_key),
    }
    script = pathlib.Path(sys.executable).parent / "fairpack-extender"
    url = f"https://127.0.0.1:{port}"
    with process([str(script)], log, env) as proc:
        context = ssl.create_default_context(cafile=str(creds.ca))
        deadline = time.monotonic() + 60
        while not processes.probe(f"{url}/readyz", context=context):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fairpack-extender did not become ready; see {log}")
            time.sleep(0.5)
        yield url


@contextmanager
def components(
    kubeconfig: pathlib.Path, workdir: pathlib.Path, creds: Credentials, console: Console
) -> Iterator[list[str]]:
    """The extender (when present), the fairpack-profile scheduler and the operator, as local
    processes; yields notes on what runs and what is missing."""
    notes: list[str] = []
    with ExitStack() as stack:
        extender_url = stack.enter_context(extender(creds, workdir / "extender.log"))
        notes.append(f"extender: local process on {extender_url} (TLS) as {RELEASE}-extender")
        scheduler_config = local_scheduler_config(
            chart_scheduler_config(kubeconfig),
            kubeconfig=creds.scheduler,
            ca_file=creds.ca,
            extender_url=extender_url,
        )
        config_path = workdir / "fairpack-scheduler.yaml"
        config_path.write_text(yaml.safe_dump(scheduler_config))
        scheduler = chart.kubectl_binary().with_name("kube-scheduler")
        args = [str(scheduler), f"--config={config_path}", "--secure-port=0", "--v=2"]
        stack.enter_context(process(args, workdir / "fairpack-scheduler.log", {}))
        notes.append(
            f"kube-scheduler (profile {labels.SCHEDULER_NAME}): local process as {RELEASE}-scheduler"
        )
        env = {"FAIRPACK_NAMESPACE": NAMESPACE, "FAIRPACK_PEERING": RELEASE, "FAIRPACK_METRICS_PORT": "0"}
        stack.enter_context(
            operator_process.OperatorProcess(creds.operator, workdir / "operator.log", env=env)
        )
        notes.append(f"operator: local process as {RELEASE}-operator (peering {RELEASE})")
        for note in notes:
            console.print(f"  {note}", style="yellow" if "NOT" in note else "")
        yield notes


# --- Workloads ---------------------------------------------------------------------------


def demo_sparkjobs() -> list[dict[str, Any]]:
    """Several tenants' SparkJobs: research (weight 2) and two weight-1 tenants, batch submitting most."""
    jobs = []
    for tenant, user, count, executors, gpus in DEMO_JOBS:
        for i in range(count):
            # KWOK completes each pod this long after it starts, so the queue moves during the demo.
            seconds = 15 + 10 * (i % 4)
            jobs.append(
                {
                    "apiVersion": f"{labels.DOMAIN}/v1alpha1",
                    "kind": "SparkJob",
                    "metadata": {"name": f"{tenant}-{user}-{i}", "namespace": "default"},
                    "spec": {
                        "tenant": tenant,
                        "user": user,
                        "mainApplicationFile": "local:///opt/spark/examples/jars/spark-examples.jar",
                        "mainClass": "org.apache.spark.examples.SparkPi",
                        "driver": {"cores": 1, "memory": "2Gi"},
                        "executor": {"instances": executors, "cores": 4, "memory": "8Gi", "gpus": gpus},
                        "estimatedSeconds": seconds,
                        "podAnnotations": {labels.SIMULATED_RUN_TIME_ANNOTATION: f"{seconds}s"},
                    },
                }
            )
    return jobs


def apply_workloads(kubeconfig: pathlib.Path) -> int:
    """PriorityClasses, the examples (tenants, a SparkJob, LLMServices) and the demo's SparkJobs;
    returns how many objects were created (existing ones are left as they are)."""
    objects: list[dict[str, Any]] = []
    # The PriorityClasses first: the LLMServices' pods name them.
    for name in ("priorityclasses.yaml", "tenants.yaml", "llmservices.yaml", "sparkjob.yaml"):
        objects += [doc for doc in yaml.safe_load_all((EXAMPLES / name).read_text()) if doc]
    objects += demo_sparkjobs()
    created = 0
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:  # type: ignore[no-untyped-call]
        dyn = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]
        for obj in objects:
            resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            try:
                resource.create(body=obj, namespace=obj["metadata"].get("namespace"))
                created += 1
            except dynamic.exceptions.ConflictError:
                pass  # left from an earlier run: the demo reuses the cluster
    return created


# --- The live view -----------------------------------------------------------------------


def finished(snapshot: views.Snapshot) -> bool:
    """Every SparkJob has run to an end."""
    phases = [(j.get("status") or {}).get("phase") for j in snapshot.sparkjobs]
    return bool(phases) and all(p in ("Succeeded", "Failed") for p in phases)


def watch(kubeconfig: pathlib.Path, console: Console, *, seconds: float) -> views.Snapshot:
    """Show the status view live for ``seconds`` (or until every job finished); returns the last snapshot."""
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:  # type: ignore[no-untyped-call]
        snapshot = views.collect(api)
        columns = views.grid_columns(console.width)
        deadline = time.monotonic() + seconds
        with Live(views.status_view(snapshot, columns=columns), console=console, auto_refresh=False) as live:
            while time.monotonic() < deadline and not finished(snapshot):
                time.sleep(1.0)
                snapshot = views.collect(api)
                live.update(views.status_view(snapshot, columns=columns), refresh=True)
    return snapshot


def run(kubeconfig: pathlib.Path, workdir: pathlib.Path, console: Console, *, seconds: float) -> int:
    """Steps: install, credentials, components, workloads, live view, summary."""
    workdir.mkdir(parents=True, exist_ok=True)
    console.rule("fairpack: helm install")
    console.print(f"  {install(kubeconfig)} (release {RELEASE}, namespace {NAMESPACE})")
    creds = credentials_for(kubeconfig, workdir)
    console.rule("fairpack: components (local processes with the chart's ServiceAccount tokens)")
    with components(kubeconfig, workdir, creds, console) as notes:
        console.rule("fairpack: sample workloads")
        console.print(
            f"  created {apply_workloads(kubeconfig)} objects (manifests/examples and the demo's SparkJobs)"
        )
        last = watch(kubeconfig, console, seconds=seconds)
        console.print()
    console.rule("Summary")
    for line in [*views.summary_lines(last), *notes]:
        console.print(f"  {line}")
    console.print(f"  logs: {workdir}/{{operator,extender,fairpack-scheduler}}.log")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -P -m fairpack_dev.fairpack_up --kubeconfig K``: the fairpack stage on a running cluster."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kubeconfig", type=pathlib.Path, required=True, help="admin kubeconfig of the cluster"
    )
    parser.add_argument(
        "--workdir", type=pathlib.Path, default=pathlib.Path(".build/demo"), help="logs and credentials"
    )
    parser.add_argument("--seconds", type=float, default=90.0, help="how long to show the live view")
    args = parser.parse_args(argv)
    return run(args.kubeconfig, args.workdir, Console(), seconds=args.seconds)


if __name__ == "__main__":
    sys.exit(main())
