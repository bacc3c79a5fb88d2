"""A mutating webhook (kopf's own server) that gates the executor pods a Spark driver creates.

A SparkJob's driver may ask Kubernetes for more executors (dynamic allocation), as Spark on
Kubernetes does. Those pods are created by the driver, not the operator; the webhook labels them
as the job's and adds the admission gate, so they wait like the rest of queued work. The queue
cycle lifts the gates of an admitted job's pods (``admission.lift_gates``).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
from typing import Any

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fairpack.operator import k8s, spark_pods
from fairpack.operator.settings import WebhookSettings
from fairpack.solver import labels

logger = logging.getLogger(__name__)

CONFIGURATION = "fairpack.io"
"""Name of the MutatingWebhookConfiguration kopf manages."""


def self_signed(host: str) -> tuple[bytes, bytes]:
    """A self-signed certificate and key for ``host`` (an IP or a DNS name), valid a week."""
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def job_labels(pod: kopf.Body) -> dict[str, str] | None:
    """The SparkJob labels of the driver that created ``pod``; None if it is not a SparkJob's."""
    for ref in pod["metadata"].get("ownerReferences") or ():
        if ref.get("kind") != "Pod":
            continue
        driver = k8s.get("v1", "Pod", ref["name"], pod["metadata"].get("namespace"))
        found = ((driver or {}).get("metadata") or {}).get("labels") or {}
        if spark_pods.JOB_LABEL in found:
            keys = (spark_pods.JOB_LABEL, labels.TENANT_LABEL, labels.USER_LABEL)
            return {k: found[k] for k in keys if k in found}
    return None


def register(registry: kopf.OperatorRegistry, webhook: WebhookSettings, *, workdir: str) -> None:
    """Serve the webhook; kopf keeps the MutatingWebhookConfiguration ``fairpack.io`` up to date
    unless ``webhook.manage`` is off (the Helm chart renders the configuration itself)."""

    @kopf.on.startup(registry=registry)
    def serve(settings: kopf.OperatorSettings, **_: Any) -> None:
        certfile, keyfile = webhook.certfile, webhook.keyfile
        if not certfile:
            cert, key = self_signed(webhook.host or webhook.addr)
            certfile, keyfile = f"{workdir}/webhook.crt", f"{workdir}/webhook.key"
            with open(certfile, "wb") as out:
                out.write(cert)
            with open(keyfile, "wb") as out:
                out.write(key)
        settings.admission.server = kopf.WebhookServer(
            addr=webhook.addr,
            port=webhook.port,
            host=webhook.host or None,
            certfile=certfile,
            pkeyfile=keyfile,
            cafile=certfile,
        )
        if webhook.manage:
            settings.admission.managed = CONFIGURATION

    @kopf.on.mutate(
        "",
        "v1",
        "pods",
        id="gate-spark-executors",
        operations=["CREATE"],
        labels={spark_pods.SPARK_ROLE: spark_pods.EXECUTOR},
        ignore_failures=True,
        registry=registry,
    )
    def gate(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        if spark_pods.JOB_LABEL in (body["metadata"].get("labels") or {}):
            return  # the operator's own executors are created gated already
        found = job_labels(body)
        if found is None:
            return
        gates = list(body.get("spec", {}).get("schedulingGates") or ())
        patch.metadata.setdefault("labels", {}).update(found)
        patch.spec["schedulingGates"] = [*gates, {"name": labels.ADMISSION_GATE}]
        logger.info(
            "gated executor %s of SparkJob %s", body["metadata"].get("name"), found[spark_pods.JOB_LABEL]
        )
