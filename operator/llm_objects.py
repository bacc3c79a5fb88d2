"""What an LLMService becomes: a Deployment per role, a Service and a PodDisruptionBudget.

Pure: spec dicts (as the API server returns them, defaults filled in) in, object dicts out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fairpack.operator import k8s
from fairpack.solver import labels

GROUP_VERSION = "fairpack.io/v1alpha1"
SERVICE_LABEL = f"{labels.DOMAIN}/llmservice"
"""Label on every object and pod of an LLMService: the service's name."""
ROLE_LABEL = f"{labels.DOMAIN}/role"
"""Label on a role's Deployment and pods: ``serve``, ``prefill`` or ``decode``."""
MANAGED_BY = {"app.kubernetes.io/managed-by": "fairpack-operator"}

SERVE, PREFILL, DECODE = "serve", "prefill", "decode"
CONTAINER = "server"
SLO_ANNOTATIONS = {"ttftMs": f"{labels.DOMAIN}/slo-ttft-ms", "tpotMs": f"{labels.DOMAIN}/slo-tpot-ms"}
"""Pod annotations carrying spec.slo, for whatever routes or observes requests (a gateway, a
dashboard): the targets travel with the pods."""
SLO_ENV = {"ttftMs": "FAIRPACK_SLO_TTFT_MS", "tpotMs": "FAIRPACK_SLO_TPOT_MS"}
"""Environment variables carrying spec.slo into the serving container, for an engine or a wrapper
script that tunes itself to them (e.g. vLLM's batch size or chunked-prefill budget)."""


@dataclass(frozen=True)
class Role:
    """One role of a service with the part of the spec that sizes it."""

    name: str
    spec: Mapping[str, Any]
    """Holds replicas, gpu, tensorParallel and resources (top-level spec or spec.prefill)."""

    @property
    def replicas(self) -> int:
        """spec.replicas; unset, the autoscaler's minimum (it then writes the field), else 1."""
        return desired_replicas(self.spec)


def desired_replicas(spec: Mapping[str, Any]) -> int:
    """The replicas a role's spec part asks for (see ``Role.replicas``)."""
    if "replicas" in spec:
        return int(spec["replicas"])
    scaling = spec.get("autoscaling")
    return int(scaling["minReplicas"]) if scaling else 1


def roles(spec: Mapping[str, Any]) -> list[Role]:
    """``serve`` alone, or ``prefill`` and ``decode`` when the spec disaggregates."""
    if "prefill" in spec:
        return [Role(PREFILL, spec["prefill"]), Role(DECODE, spec)]
    return [Role(SERVE, spec)]


def main_role(spec: Mapping[str, Any]) -> str:
    """The role spec.replicas sizes, the Service selects and the autoscaler scales."""
    return DECODE if "prefill" in spec else SERVE


def deployment_name(service: str, role: str) -> str:
    return f"{service}-{role}"


def selector(service: str, role: str | None = None) -> dict[str, str]:
    """Labels selecting the service's pods (of one role when given)."""
    found = {SERVICE_LABEL: service}
    if role is not None:
        found[ROLE_LABEL] = role
    return found


def selector_string(service: str, role: str) -> str:
    """The label selector of a role's pods as the scale subresource reports it."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector(service, role).items()))


def gpu_resources(gpu: Mapping[str, Any]) -> dict[str, str]:
    """Extended resources of one replica: whole GPUs or one MIG instance."""
    if "migProfile" in gpu:
        return {f"{labels.MIG_RESOURCE_PREFIX}{gpu['migProfile']}": "1"}
    return {labels.GPU_RESOURCE: str(gpu["count"])}


def _metadata(body: Mapping[str, Any], name: str, role: str | None) -> dict[str, Any]:
    meta = body["metadata"]
    found_labels = {**MANAGED_BY, **selector(meta["name"], role)}
    if tenant := body["spec"].get("tenant"):
        found_labels[labels.TENANT_LABEL] = tenant
    return {
        "name": name,
        "namespace": meta["namespace"],
        "labels": found_labels,
        "ownerReferences": [k8s.owner_reference(body)],
    }


def replica_requests(role: Role) -> dict[str, str]:
    """A replica's cpu and memory requests: the role's ``resources``, else 4 cores and 32Gi."""
    resources = role.spec.get("resources") or {}
    return {"cpu": str(resources.get("cpu", "4")), "memory": str(resources.get("memory", "32Gi"))}


def pod_template(body: Mapping[str, Any], role: Role) -> dict[str, Any]:
    """The pod template of a role: fairpack-scheduler, GPU/MIG requests, tenant and priority."""
    spec = body["spec"]
    model = spec["model"]
    meta = _metadata(body, "", role.name)
    tensor_parallel = int(role.spec.get("tensorParallel", 1))
    amounts = replica_requests(role)
    amounts.update(gpu_resources(role.spec["gpu"]))
    args = ["--model", model["name"], "--port", str(model.get("port", 8000))]
    if tensor_parallel > 1:
        args += ["--tensor-parallel-size", str(tensor_parallel)]
    args += list(model.get("args", []))
    slo = spec.get("slo") or {}
    annotations = {SLO_ANNOTATIONS[key]: str(slo[key]) for key in SLO_ANNOTATIONS if key in slo}
    env = [{"name": "FAIRPACK_ROLE", "value": role.name}]
    env += [{"name": SLO_ENV[key], "value": str(slo[key])} for key in SLO_ENV if key in slo]
    if tensor_parallel > 1:
        # All of a replica's GPUs in one NVLink island: the extender reads this.
        annotations[labels.REQUIRE_NVLINK_ANNOTATION] = "true"
    pod_spec: dict[str, Any] = {
        "schedulerName": labels.SCHEDULER_NAME,
        "containers": [
            {
                "name": CONTAINER,
                "image": model["image"],
                "args": args,
                "env": env,
                "ports": [{"name": "http", "containerPort": int(model.get("port", 8000))}],
                "resources": {"requests": amounts, "limits": amounts},
            }
        ],
    }
    if product := role.spec["gpu"].get("product"):
        pod_spec["nodeSelector"] = {labels.GPU_PRODUCT_LABEL: product}
    if priority_class := spec.get("priorityClassName"):
        pod_spec["priorityClassName"] = priority_class
    return {"metadata": {"labels": meta["labels"], "annotations": annotations}, "spec": pod_spec}


def deployment(body: Mapping[str, Any], role: Role) -> dict[str, Any]:
    """The Deployment of one role."""
    service = body["metadata"]["name"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(body, deployment_name(service, role.name), role.name),
        "spec": {
            "replicas": role.replicas,
            "selector": {"matchLabels": selector(service, role.name)},
            "template": pod_template(body, role),
        },
    }


def service(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Service in front of the main role (decode pods take requests when disaggregated)."""
    name = body["metadata"]["name"]
    port = int(body["spec"]["model"].get("port", 8000))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(body, name, None),
        "spec": {
            "selector": selector(name, main_role(body["spec"])),
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
        },
    }


def prefill_service(body: Mapping[str, Any]) -> dict[str, Any]:
    """A headless Service of the prefill pods (``<name>-prefill``): decode pods and request routers
    find the prefill replicas by DNS, one address per pod, as disaggregated serving needs."""
    name = body["metadata"]["name"]
    port = int(body["spec"]["model"].get("port", 8000))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(body, f"{name}-{PREFILL}", PREFILL),
        "spec": {
            "clusterIP": "None",
            "selector": selector(name, PREFILL),
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
        },
    }


def service_names(body: Mapping[str, Any]) -> list[str]:
    """The Services the spec wants: the main one, and the prefill one when disaggregated."""
    name = body["metadata"]["name"]
    return [name, f"{name}-{PREFILL}"] if "prefill" in body["spec"] else [name]


def disruption_budget(body: Mapping[str, Any]) -> dict[str, Any]:
    """At most one of the service's pods disrupted at a time (the fallback's evictions respect it)."""
    name = body["metadata"]["name"]
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(body, name, None),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(name)}},
    }


def desired_objects(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Everything the operator keeps in place for the service."""
    found = [*(deployment(body, role) for role in roles(body["spec"])), service(body)]
    if "prefill" in body["spec"]:
        found.append(prefill_service(body))
    return [*found, disruption_budget(body)]
