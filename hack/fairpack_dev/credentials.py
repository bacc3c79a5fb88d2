"""Kubeconfigs that act as a ServiceAccount, so local processes have exactly the chart's RBAC.

The extender, the operator and the fairpack-profile kube-scheduler run outside the cluster here (no
container runtime); each gets a kubeconfig whose user is a short-lived token of the ServiceAccount
the chart created for it, issued by the TokenRequest API.
"""

from __future__ import annotations

import pathlib
from typing import Any

import yaml
from kubernetes import client, config


def token(api: client.ApiClient, *, namespace: str, service_account: str, seconds: int = 24 * 3600) -> str:
    """A token of ``namespace/service_account`` from the TokenRequest API, valid ``seconds``."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
    )
    issued = client.CoreV1Api(api).create_namespaced_service_account_token(
        service_account, namespace, request
    )
    if issued.status is None or not issued.status.token:
        raise RuntimeError(f"TokenRequest for {namespace}/{service_account} returned no token")
    return str(issued.status.token)


def write_kubeconfig(
    admin_kubeconfig: pathlib.Path, path: pathlib.Path, *, namespace: str, service_account: str
) -> pathlib.Path:
    """Write ``path``: the admin kubeconfig's cluster, with ``service_account``'s token as its user."""
    admin: dict[str, Any] = yaml.safe_load(admin_kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    api = config.new_client_from_config(config_file=str(admin_kubeconfig))  # type: ignore[no-untyped-call]
    with api:
        bearer = token(api, namespace=namespace, service_account=service_account)
    user = f"system:serviceaccount:{namespace}:{service_account}"
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{**cluster, "name": "fairpack"}],
        "users": [{"name": user, "user": {"token": bearer}}],
        "contexts": [
            {"name": "fairpack", "context": {"cluster": "fairpack", "user": user, "namespace": namespace}}
        ],
        "current-context": "fairpack",
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)
    return path
