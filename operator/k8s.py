"""The operator's one door to the Kubernetes API (besides kopf's own watching and patching).

Everything is plain dicts in and out, as ``kubectl get -o json`` prints objects, so the builders
and the solver adapters never see client classes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from kubernetes import client, config, dynamic
from kubernetes.dynamic import exceptions as dynamic_exceptions

FIELD_MANAGER = "fairpack-operator"
"""Server-side apply field manager: the fields the operator owns on the objects it creates."""

Obj = dict[str, Any]

NotFound = dynamic_exceptions.NotFoundError
Conflict = dynamic_exceptions.ConflictError
ApiError = dynamic_exceptions.DynamicApiError


def load_config() -> None:
    """In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


@functools.cache
def api() -> dynamic.DynamicClient:
    """One shared dynamic client (discovery runs once per process)."""
    return dynamic.DynamicClient(client.ApiClient())  # type: ignore[no-untyped-call]


def resource(api_version: str, kind: str) -> Any:
    """The dynamic client's handle of ``kind`` in ``api_version``."""
    return api().resources.get(api_version=api_version, kind=kind)


def apply(obj: Mapping[str, Any]) -> Obj:
    """Server-side apply ``obj`` (create it, or make the fields we own equal to it)."""
    res = resource(obj["apiVersion"], obj["kind"])
    applied = res.server_side_apply(
        body=dict(obj),
        namespace=obj["metadata"].get("namespace"),
        field_manager=FIELD_MANAGER,
        force_conflicts=True,
    )
    return as_dict(applied)


def create(obj: Mapping[str, Any]) -> Obj | None:
    """Create ``obj``; None when an object of that name exists already (creation is idempotent)."""
    res = resource(obj["apiVersion"], obj["kind"])
    try:
        return as_dict(res.create(body=dict(obj), namespace=obj["metadata"].get("namespace")))
    except Conflict:
        return None


def get(api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
    """The object, or None when it does not exist."""
    try:
        return as_dict(resource(api_version, kind).get(name=name, namespace=namespace))
    except NotFound:
        return None


def list_objects(
    api_version: str, kind: str, *, namespace: str | None = None, label_selector: str = ""
) -> list[Obj]:
    """All objects of ``kind`` (in every namespace unless ``namespace``)."""
    found = resource(api_version, kind).get(namespace=namespace, label_selector=label_selector)
    return [as_dict(item) for item in found.items]


def crd_exists(name: str) -> bool:
    """Whether the CustomResourceDefinition ``name`` exists, asked of the API server (the discovery
    cache on disk may still remember a deleted one)."""
    crds = resource("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    return bool(crds.get(field_selector=f"metadata.name={name}").items)


def patch(
    api_version: str,
    kind: str,
    name: str,
    body: Mapping[str, Any],
    *,
    namespace: str | None = None,
    subresource: str = "",
    content_type: str = "application/merge-patch+json",
) -> Obj:
    """Patch ``name`` (a merge patch unless ``content_type`` says otherwise); ``subresource="status"``
    patches the status subresource."""
    res = resource(api_version, kind)
    if subresource:
        res = res.subresources[subresource]
    return as_dict(res.patch(name=name, namespace=namespace, body=dict(body), content_type=content_type))


def delete(api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
    """Delete ``name``; False when it was gone already."""
    try:
        resource(api_version, kind).delete(name=name, namespace=namespace)
    except NotFound:
        return False
    return True


def error_text(exc: ApiError) -> str:
    """The API's refusal as one line: status, reason and the server's message."""
    return f"{exc.status} {exc.reason}: {exc.summary()}"  # type: ignore[no-untyped-call]


def as_dict(obj: Any) -> Obj:
    """A dynamic client's result as a plain dict."""
    result: Obj = obj.to_dict()
    return result


def owner_reference(owner: Mapping[str, Any]) -> Obj:
    """The controller owner reference to ``owner``: the garbage collector deletes the owned object
    with it, and ``blockOwnerDeletion`` keeps foreground deletion honest."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
