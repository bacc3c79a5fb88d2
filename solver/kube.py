"""Adapters from Kubernetes object dicts (as ``kubectl get -o json`` prints them) to the model.

The only place in the solver that knows the shape of Kubernetes objects. Nothing here talks to
an API server: callers pass dicts they listed or read from a file. Invalid input raises
:class:`InvalidObjectError` (a ValueError) naming the object and the field or annotation.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from fairpack.solver import gpumodels, labels, mig, model, quantity

Obj = Mapping[str, Any]


class InvalidObjectError(ValueError):
    """A Kubernetes object fairpack cannot read; the message names the object and the field."""


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""What the API server accepts as a Node's name (RFC 1123 subdomain)."""


# --- snapshots --------------------------------------------------------------------------------


def snapshot_from_list(document: Obj) -> model.Snapshot:
    """A ``kind: List`` of Nodes and Pods (``kubectl get nodes,pods -A -o json``) as a snapshot."""
    items = document.get("items") or ()
    nodes = [i for i in items if i.get("kind") == "Node"]
    pods = [i for i in items if i.get("kind") == "Pod"]
    return snapshot_from_dicts(nodes, pods)


def snapshot_from_dicts(nodes: Iterable[Obj], pods: Iterable[Obj]) -> model.Snapshot:
    """Nodes and pods as listed; terminated pods (Succeeded, Failed) are left out: they use nothing."""
    live = (pod_from_dict(p) for p in pods)
    return model.Snapshot(
        nodes=tuple(node_from_dict(n) for n in nodes), pods=tuple(p for p in live if not p.terminated)
    )


# --- nodes ------------------------------------------------------------------------------------


def node_from_dict(obj: Obj) -> model.Node:
    """A Node object: allocatable, labels, taints, GPUs, MIG layout and NVLink islands."""
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    if not _DNS_SUBDOMAIN.fullmatch(name) or len(name) > 253:
        raise InvalidObjectError(
            f"node {name!r}: metadata.name must be a DNS subdomain name (lowercase letters, digits,"
            " '-' and '.', starting and ending with a letter or digit; at most 253 characters)"
        )
    where = f"node {name}"
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    node_labels: dict[str, str] = dict(meta.get("labels") or {})
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    allocatable = _resources(
        status.get("allocatable") or status.get("capacity") or {}, where, "status.allocatable"
    )
    instances = _mig_layout(annotations, node_labels, where)
    islands = _islands(annotations, where)
    gpus = _gpus(node_labels, allocatable, instances, islands, where)
    return model.Node(
        name=name,
        allocatable=allocatable,
        labels=node_labels,
        taints=tuple(_taint(t) for t in spec.get("taints") or ()),
        gpus=gpus,
        mig=instances,
        islands=islands,
        unschedulable=bool(spec.get("unschedulable", False)),
    )


def _gpus(
    node_labels: Mapping[str, str],
    allocatable: model.Resources,
    instances: tuple[model.MigInstance, ...],
    islands: tuple[tuple[int, ...], ...],
    where: str,
) -> tuple[model.Gpu, ...]:
    # The device plugin's nvidia.com/gpu counts only GPUs outside MIG mode (mixed strategy); the
    # feature-discovery label counts all of them. Trust whichever says more.
    mig_gpus = {i.gpu for i in instances}
    labelled = _int_label(node_labels, labels.GPU_COUNT_LABEL, where)
    count = max(labelled, allocatable.amount(labels.GPU_RESOURCE) + len(mig_gpus), *(i + 1 for i in mig_gpus))
    count = max(count, *(i + 1 for island in islands for i in island), 0)
    product = node_labels.get(labels.GPU_PRODUCT_LABEL, "")
    gpu_model = gpumodels.by_product(product)
    memory = _int_label(node_labels, labels.GPU_MEMORY_LABEL, where) or (
        gpu_model.memory_mib if gpu_model else 0
    )
    island_of = {gpu: position for position, island in enumerate(islands) for gpu in island}
    return tuple(model.Gpu(i, gpu_model, product, memory, island_of.get(i)) for i in range(count))


def _int_label(node_labels: Mapping[str, str], key: str, where: str) -> int:
    value = node_labels.get(key)
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        raise InvalidObjectError(f"{where}: label {key}: {value!r} is not an integer") from None


def _mig_layout(
    annotations: Mapping[str, str], node_labels: Mapping[str, str], where: str
) -> tuple[model.MigInstance, ...]:
    raw = annotations.get(labels.MIG_LAYOUT_ANNOTATION)
    if raw is None:
        return ()
    context = f"{where}: annotation {labels.MIG_LAYOUT_ANNOTATION}"
    layout = _json(raw, context)
    if not isinstance(layout, dict):
        raise InvalidObjectError(f"{context}: expected an object from GPU index to instances, got {raw!r}")
    gpu_model = gpumodels.by_product(node_labels.get(labels.GPU_PRODUCT_LABEL, ""))
    if gpu_model is None or not gpu_model.mig_profiles:
        product = node_labels.get(labels.GPU_PRODUCT_LABEL, "no product label")
        raise InvalidObjectError(f"{context}: the node's GPU ({product}) has no MIG profiles fairpack knows")
    instances: list[model.MigInstance] = []
    for gpu, entries in layout.items():
        if not str(gpu).isdigit() or not isinstance(entries, list):
            raise InvalidObjectError(f"{context}: GPU {gpu!r} must be an index with a list of instances")
        taken = 0
        for entry in entries:
            instance = _mig_instance(int(gpu), entry, gpu_model, context)
            slots = mig.mask(gpu_model.profile(instance.profile), instance.start)
            if taken & slots:
                raise InvalidObjectError(f"{context}: {instance} overlaps another instance on GPU {gpu}")
            taken |= slots
            instances.append(instance)
    return tuple(instances)


def _mig_instance(gpu: int, entry: object, gpu_model: gpumodels.GpuModel, context: str) -> model.MigInstance:
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("profile"), str)
        or not isinstance(entry.get("start"), int)
    ):
        raise InvalidObjectError(f"{context}: GPU {gpu}: {entry!r} is not {{'profile': str, 'start': int}}")
    try:
        profile = gpu_model.profile(entry["profile"])
    except KeyError as error:
        raise InvalidObjectError(f"{context}: GPU {gpu}: {error.args[0]}") from None
    if entry["start"] not in profile.starts:
        raise InvalidObjectError(
            f"{context}: GPU {gpu}: {profile.name} cannot start at slot {entry['start']} "
            f"(valid starts: {', '.join(map(str, profile.starts))})"
        )
    return model.MigInstance(gpu, profile.name, int(entry["start"]))


def _islands(annotations: Mapping[str, str], where: str) -> tuple[tuple[int, ...], ...]:
    raw = annotations.get(labels.NVLINK_ISLANDS_ANNOTATION)
    if raw is None:
        return ()
    context = f"{where}: annotation {labels.NVLINK_ISLANDS_ANNOTATION}"
    islands = _json(raw, context)
    valid = isinstance(islands, list) and all(
        isinstance(island, list) and all(isinstance(i, int) and i >= 0 for i in island) for island in islands
    )
    if not valid:
        raise InvalidObjectError(f"{context}: expected a list of lists of GPU indices, got {raw!r}")
    flat = [i for island in islands for i in island]
    if len(flat) != len(set(flat)):
        raise InvalidObjectError(f"{context}: a GPU is in more than one island: {raw!r}")
    return tuple(tuple(island) for island in islands)


def _json(raw: str, context: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, TypeError) as error:
        raise InvalidObjectError(f"{context}: not valid JSON ({error}): {raw!r}") from None


def _taint(obj: Obj) -> model.Taint:
    return model.Taint(str(obj.get("key", "")), str(obj.get("value") or ""), obj.get("effect", "NoSchedule"))


# --- pods -------------------------------------------------------------------------------------


def pod_from_dict(obj: Obj) -> model.Pod:
    """A Pod object: effective requests, priority, tenant, GPU request, placement constraints."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    namespace, name = str(meta.get("namespace", "default")), str(meta.get("name", ""))
    where = f"pod {namespace}/{name}"
    pod_labels: dict[str, str] = dict(meta.get("labels") or {})
    annotations: dict[str, str] = dict(meta.get("annotations") or {})
    requests = effective_requests(spec, where)
    selector: dict[str, str] = dict(spec.get("nodeSelector") or {})
    return model.Pod(
        namespace=namespace,
        name=name,
        uid=str(meta.get("uid", "")),
        requests=requests,
        priority=int(spec.get("priority") or 0),
        tenant=pod_labels.get(labels.TENANT_LABEL),
        user=pod_labels.get(labels.USER_LABEL),
        gpu=_gpu_request(requests, selector, annotations),
        node_selector=selector,
        affinity=_required_affinity(spec),
        tolerations=tuple(_toleration(t) for t in spec.get("tolerations") or ()),
        node_name=spec.get("nodeName") or None,
        phase=str((obj.get("status") or {}).get("phase", "Pending")),
        created=_timestamp(meta.get("creationTimestamp"), where),
        deleted=_timestamp(meta.get("deletionTimestamp"), where) if meta.get("deletionTimestamp") else None,
        scheduler_name=str(spec.get("schedulerName") or "default-scheduler"),
        controlled=any(ref.get("controller") for ref in meta.get("ownerReferences") or ()),
        labels=pod_labels,
        annotations=annotations,
    )


def effective_requests(spec: Obj, where: str) -> model.Resources:
    """Kubernetes' effective pod request (``resourcehelper.PodRequests``), plus ``pods: 1``.

    Per resource: the larger of (app containers + restartable "sidecar" init containers) and
    the peak of the init phase, where each regular init container runs alongside the sidecars
    started before it; then the pod overhead. A request defaults to the container's limit, as
    the API server's defaulting does for manifests that give only limits.
    """
    total: dict[str, int] = {}
    for i, container in enumerate(spec.get("containers") or ()):
        _accumulate(total, _container_requests(container, f"{where}: spec.containers[{i}]"))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for i, container in enumerate(spec.get("initContainers") or ()):
        requests = _container_requests(container, f"{where}: spec.initContainers[{i}]")
        if container.get("restartPolicy") == "Always":
            _accumulate(sidecars, requests)
            running = dict(sidecars)
        else:
            running = dict(sidecars)
            _accumulate(running, requests)
        for resource, value in running.items():
            init_peak[resource] = max(init_peak.get(resource, 0), value)
    _accumulate(total, sidecars)
    for resource, value in init_peak.items():
        total[resource] = max(total.get(resource, 0), value)
    _accumulate(total, _quantities(spec.get("overhead") or {}, f"{where}: spec.overhead"))
    total[model.PODS] = total.get(model.PODS, 0) + 1
    return model.Resources.of(total)


def _container_requests(container: Obj, where: str) -> dict[str, int]:
    resources = container.get("resources") or {}
    limits = _quantities(resources.get("limits") or {}, f"{where}.resources.limits")
    requests = _quantities(resources.get("requests") or {}, f"{where}.resources.requests")
    return {**limits, **requests}


def _quantities(values: Mapping[str, Any], where: str) -> dict[str, int]:
    return {name: quantity.amount(name, value, where=f"{where}.{name}") for name, value in values.items()}


def _resources(values: Mapping[str, Any], where: str, path: str) -> model.Resources:
    return model.Resources.of(_quantities(values, f"{where}: {path}"))


def _accumulate(total: dict[str, int], more: Mapping[str, int]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, 0) + value


def _gpu_request(
    requests: model.Resources, selector: Mapping[str, str], annotations: Mapping[str, str]
) -> model.GpuRequest | None:
    product = selector.get(labels.GPU_PRODUCT_LABEL)
    count = requests.amount(labels.GPU_RESOURCE)
    profiles = [
        r.removeprefix(labels.MIG_RESOURCE_PREFIX)
        for r in requests
        if r.startswith(labels.MIG_RESOURCE_PREFIX)
    ]
    if count == 0 and not profiles:
        return None
    require = annotations.get(labels.REQUIRE_NVLINK_ANNOTATION, "").lower() == "true"
    # One MIG instance per pod is what fairpack places; a pod asking for more is rare and is
    # modelled by its first profile (the extended-resource count still holds it to the total).
    return model.GpuRequest(
        count, product, require and count > 1, profiles[0] if profiles and not count else None
    )


def _required_affinity(spec: Obj) -> tuple[model.NodeSelectorTerm, ...] | None:
    node_affinity = ((spec.get("affinity") or {}).get("nodeAffinity")) or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return None
    return tuple(
        model.NodeSelectorTerm(
            tuple(requirement(r) for r in term.get("matchExpressions") or ()),
            tuple(requirement(r) for r in term.get("matchFields") or ()),
        )
        for term in required.get("nodeSelectorTerms") or ()
    )


def requirement(obj: Obj) -> model.NodeSelectorRequirement:
    """A ``{key, operator, values}`` expression, as node affinity and label selectors write it."""
    return model.NodeSelectorRequirement(str(obj["key"]), obj["operator"], tuple(obj.get("values") or ()))


def _toleration(obj: Obj) -> model.Toleration:
    return model.Toleration(
        key=str(obj.get("key") or ""),
        operator=obj.get("operator") or "Equal",
        value=str(obj.get("value") or ""),
        effect=obj.get("effect") or None,
    )


def _timestamp(value: object, where: str) -> float:
    if not value:
        return 0.0
    try:
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidObjectError(f"{where}: {value!r} is not an RFC 3339 time") from None
