"""The pods of a SparkJob, labelled as Spark on Kubernetes labels its own.

Pure: the SparkJob dict in, pod dicts out. Every pod is created with the admission gate; the
queue lifts it when UWFQ admits the job. Names are deterministic so that creating them again
(after an operator restart mid-way) can never duplicate a pod.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fairpack.operator import k8s
from fairpack.solver import labels

JOB_LABEL = f"{labels.DOMAIN}/sparkjob"
"""Label on a SparkJob's pods: the job's name."""
SPARK_ROLE = "spark-role"
SPARK_APP_SELECTOR = "spark-app-selector"
SPARK_APP_NAME = "spark-app-name"
SPARK_EXEC_ID = "spark-exec-id"
SPARK_VERSION = "spark-version"
DRIVER, EXECUTOR = "driver", "executor"
DRIVER_PORT = 7078


def app_id(body: Mapping[str, Any]) -> str:
    """Spark's application id (the spark-app-selector label), derived from the job's uid."""
    return "spark-" + str(body["metadata"]["uid"]).replace("-", "")[:24]


def driver_name(job: str) -> str:
    return f"{job}-driver"


def driver_service_name(job: str) -> str:
    """The driver's headless Service, named as Spark on Kubernetes names it."""
    return f"{job}-driver-svc"


_VERSION_TAG = re.compile(r":v?(\d+\.\d+(?:\.\d+)?)(?:[-_][\w.-]*)?$")


def spark_version(image: str) -> str | None:
    """The Spark version an image's tag names (``apache/spark:3.5.3-scala2.12`` -> 3.5.3), if any."""
    found = _VERSION_TAG.search(image.split("@", 1)[0])
    return found.group(1) if found else None


def executor_name(job: str, index: int) -> str:
    return f"{job}-exec-{index}"


def pod_requests(part: Mapping[str, Any]) -> dict[str, str]:
    """Requests of one driver or executor pod from its spec part (cores, memory, gpus)."""
    amounts = {"cpu": str(part.get("cores", 1)), "memory": str(part.get("memory", "2Gi"))}
    if int(part.get("gpus", 0)) > 0:
        amounts[labels.GPU_RESOURCE] = str(part["gpus"])
    return amounts


def _pod(
    body: Mapping[str, Any], *, name: str, role: str, part: Mapping[str, Any], pool: Mapping[str, str]
) -> dict[str, Any]:
    spec = body["spec"]
    meta = body["metadata"]
    pod_labels = {
        "app.kubernetes.io/managed-by": "fairpack-operator",
        JOB_LABEL: meta["name"],
        SPARK_ROLE: role,
        SPARK_APP_SELECTOR: app_id(body),
        SPARK_APP_NAME: meta["name"],
        labels.TENANT_LABEL: spec["tenant"],
        labels.USER_LABEL: spec["user"],
    }
    image = spec.get("image", "apache/spark:3.5.3")
    if version := spark_version(image):
        pod_labels[SPARK_VERSION] = version
    requests = pod_requests(part)
    limits = {k: v for k, v in requests.items() if k != "cpu"}
    pod_spec: dict[str, Any] = {
        "schedulerName": labels.SCHEDULER_NAME,
        "schedulingGates": [{"name": labels.ADMISSION_GATE}],
        "restartPolicy": "Never",
        "containers": [
            {
                "name": f"spark-kubernetes-{role}",
                "image": image,
                "resources": {"requests": requests, "limits": limits},
            }
        ],
    }
    if priority_class := spec.get("priorityClassName"):
        pod_spec["priorityClassName"] = priority_class
    if pool:
        pod_spec["nodeSelector"] = dict(pool)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": pod_labels,
            "annotations": dict(spec.get("podAnnotations") or {}),
            "ownerReferences": [k8s.owner_reference(body)],
        },
        "spec": pod_spec,
    }


def driver_pod(body: Mapping[str, Any], *, pool: Mapping[str, str]) -> dict[str, Any]:
    """The driver: runs the application (spark-submit in client mode, as Spark's entrypoint does)."""
    spec = body["spec"]
    pod = _pod(
        body, name=driver_name(body["metadata"]["name"]), role=DRIVER, part=spec.get("driver", {}), pool=pool
    )
    args = ["driver", "--deploy-mode", "client"]
    if main_class := spec.get("mainClass"):
        args += ["--class", main_class]
    for key, value in sorted((spec.get("sparkConf") or {}).items()):
        args += ["--conf", f"{key}={value}"]
    args += [spec["mainApplicationFile"], *spec.get("arguments", [])]
    container = pod["spec"]["containers"][0]
    container["args"] = args
    container["ports"] = [{"name": "driver-rpc-port", "containerPort": DRIVER_PORT}]
    return pod


def executor_pod(body: Mapping[str, Any], index: int, *, pool: Mapping[str, str]) -> dict[str, Any]:
    """Executor ``index`` (1-based, as Spark numbers them)."""
    spec = body["spec"]
    name = body["metadata"]["name"]
    executor = spec.get("executor", {})
    pod = _pod(body, name=executor_name(name, index), role=EXECUTOR, part=executor, pool=pool)
    pod["metadata"]["labels"][SPARK_EXEC_ID] = str(index)
    pod["spec"]["containers"][0]["args"] = ["executor"]
    pod["spec"]["containers"][0]["env"] = [
        {"name": "SPARK_EXECUTOR_ID", "value": str(index)},
        {"name": "SPARK_APPLICATION_ID", "value": app_id(body)},
        {"name": "SPARK_EXECUTOR_CORES", "value": str(executor.get("cores", 1))},
        {
            "name": "SPARK_DRIVER_URL",
            "value": f"spark://CoarseGrainedScheduler@{driver_service_name(name)}:{DRIVER_PORT}",
        },
    ]
    return pod


def driver_service(body: Mapping[str, Any]) -> dict[str, Any]:
    """The headless Service executors reach the driver through (Spark's ``<app>-driver-svc``)."""
    meta = body["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": driver_service_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": {"app.kubernetes.io/managed-by": "fairpack-operator", JOB_LABEL: meta["name"]},
            "ownerReferences": [k8s.owner_reference(body)],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {SPARK_APP_SELECTOR: app_id(body), SPARK_ROLE: DRIVER},
            "ports": [{"name": "driver-rpc-port", "port": DRIVER_PORT, "targetPort": DRIVER_PORT}],
        },
    }


def pods(body: Mapping[str, Any], *, pool: Mapping[str, str]) -> list[dict[str, Any]]:
    """The driver and every executor, constrained to the ``pool`` nodes (a node selector)."""
    instances = int(body["spec"].get("executor", {}).get("instances", 2))
    return [driver_pod(body, pool=pool), *(executor_pod(body, i, pool=pool) for i in range(1, instances + 1))]
