"""``fairpack status`` (the installed command, once) against the real control plane: it lists the
objects a test made, reads the fallback's plans from their ConfigMap, and counts fragmentation."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fairpack_dev import testkit
from fairpack_dev.operator_fixtures import FAIRPACK, TEST_LABEL, Kube, kube, ns
from kubernetes import client

from fairpack.cli import views
from fairpack.solver import labels

pytestmark = pytest.mark.cluster
__all__ = ["kube", "ns"]

FAIRPACK_CLI = Path(sys.executable).with_name("fairpack")


def status(kubeconfig: str, *args: str) -> str:
    """The output of ``fairpack status --kubeconfig ... args`` (fails the test on a non-zero exit)."""
    done = subprocess.run(
        [str(FAIRPACK_CLI), "status", "--kubeconfig", kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_status_names_the_clusters_jobs_tenant_waits_fragmentation_and_fallback_plans(
    kube: Kube,
    ns: str,
    api: client.ApiClient,
    kubeconfig: str,
    gpu_nodes: Callable[..., testkit.NodeGroup],
    pod: Callable[[str], testkit.Pod],
) -> None:
    tenant = f"{ns}-team"
    kube.create(
        {
            "apiVersion": FAIRPACK,
            "kind": "Tenant",
            "metadata": {"name": tenant, "labels": {TEST_LABEL: ns}},
            "spec": {"weight": 3, "users": ["u"]},
        }
    )
    job: dict[str, Any] = {
        "apiVersion": FAIRPACK,
        "kind": "SparkJob",
        "metadata": {"name": "etl", "namespace": ns},
        "spec": {
            "tenant": tenant,
            "user": "u",
            "mainApplicationFile": "local:///opt/spark/examples/jars/spark-examples.jar",
            "mainClass": "org.apache.spark.examples.SparkPi",
            "driver": {"cores": 1, "memory": "1Gi"},
            "executor": {"instances": 2, "cores": 1, "memory": "1Gi", "gpus": 1},
        },
    }
    kube.create(job)
    # No operator runs here: write the status it would, queued for 3 minutes.
    submitted = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=3)
    kube.patch(
        FAIRPACK,
        "SparkJob",
        "etl",
        {
            "status": {
                "phase": "Queued",
                "queuePosition": 0,
                "submittedAt": submitted.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        },
        namespace=ns,
        subresource="status",
    )
    group = gpu_nodes("a100-40", count=1)
    pod("holder").gpus(2).fairpack().on(group).label(**{labels.TENANT_LABEL: tenant}).create(api)
    testkit.wait_for(
        lambda: testkit.read_pod(api, ns, "holder").spec.node_name, 60, what="the 2-GPU pod bound"
    )
    plan = {
        "time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "time_ns": 1,
        "outcome": "blocked",
        "high_priority_placed": {"before": 0, "after": 2},
        "pending": [f"{ns}/urgent"],
        "pins": {f"{ns}/urgent": group.names[0]},
        "evictions": [f"{ns}/holder"],
        "solve_s": 0.5,
        "refusal": f"{ns}/holder: Cannot evict pod as it would violate the pod's disruption budget.",
    }
    client.CoreV1Api(api).create_namespaced_config_map(
        ns,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=views.PLANS_CONFIGMAP), data={"plan-1": json.dumps(plan)}
        ),
    )

    out = status(kubeconfig, "--namespace", ns)

    job_row = next(line for line in out.splitlines() if " etl " in line)
    assert job_row.split()[:5] == [tenant, "Spark", "etl", "u", "Queued"]
    tenant_row = next(line for line in out.splitlines() if line.strip().startswith(f"{tenant} "))
    assert tenant_row.split()[-1] == "3m"  # its oldest queued job's wait so far
    assert group.names[0][-14:] in out  # the node in the occupancy grid
    stranded = re.search(r"Fragmentation: (\d+) of \d+ free whole GPUs stranded", out)
    assert stranded is not None, out
    assert int(stranded.group(1)) >= 6  # the 6 free GPUs beside the held two
    assert "Fallback plans: 1 kept, 1 blocked" in out
    assert "disruption budget" in out

    # Elsewhere there is no ConfigMap: the status says so and shows the rest.
    elsewhere = status(kubeconfig, "--namespace", "default")
    assert f"no ConfigMap default/{views.PLANS_CONFIGMAP}" in elsewhere
    assert " etl " in elsewhere
