"""The local control plane's certificates: one CA, serving and client certificates, the
service-account signing key, and kubeconfigs that use them.

Kubernetes authenticates a client certificate as user = CN and groups = O, so each identity
below is the one the upstream component expects (``system:kube-scheduler``, ...); RBAC's
bootstrap roles then give it exactly its usual rights.
"""

from __future__ import annotations

import datetime
import ipaddress
import pathlib
from dataclasses import dataclass
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
"""Long enough for any local cluster; the state directory is thrown away with it."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a client certificate says it is."""

    name: str
    """Certificate and kubeconfig file stem, e.g. ``admin``."""
    user: str
    """The CN: the Kubernetes user name."""
    groups: tuple[str, ...] = ()
    """The O entries: Kubernetes groups."""


ADMIN = Identity("admin", "kubernetes-admin", ("system:masters",))
CONTROLLER_MANAGER = Identity("controller-manager", "system:kube-controller-manager")
SCHEDULER = Identity("scheduler", "system:kube-scheduler")
KWOK = Identity("kwok", "fairpack:kwok", ("system:masters",))
"""KWOK writes node and pod status for any node it fakes: it needs cluster-wide rights."""


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: pathlib.Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass(frozen=True, slots=True)
class Pki:
    """The files of a cluster's PKI under ``root``; ``create`` makes them once."""

    root: pathlib.Path

    @property
    def ca_cert(self) -> pathlib.Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> pathlib.Path:
        return self.root / "ca.key"

    @property
    def serving_cert(self) -> pathlib.Path:
        return self.root / "apiserver.crt"

    @property
    def serving_key(self) -> pathlib.Path:
        return self.root / "apiserver.key"

    @property
    def sa_key(self) -> pathlib.Path:
        """Private key the apiserver signs service-account tokens with (and the controller manager)."""
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> pathlib.Path:
        return self.root / "sa.pub"

    def client_cert(self, identity: Identity) -> pathlib.Path:
        return self.root / f"{identity.name}.crt"

    def client_key(self, identity: Identity) -> pathlib.Path:
        return self.root / f"{identity.name}.key"

    def create(self, *, identities: tuple[Identity, ...]) -> None:
        """Write the CA, the apiserver's serving certificate (127.0.0.1, localhost and the
        in-cluster names), the service-account key pair and one client certificate per identity."""
        self.root.mkdir(parents=True, exist_ok=True)
        ca_key = _key()
        ca_name = _name("fairpack-local-ca")
        now = datetime.datetime.now(datetime.UTC)
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(self.ca_key, ca_key)
        self.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        names: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
            *(
                x509.DNSName(n)
                for n in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
            ),
        ]
        self._issue(ca, ca_key, "kube-apiserver", (), self.serving_cert, self.serving_key, server_names=names)
        for identity in identities:
            self._issue(
                ca,
                ca_key,
                identity.user,
                identity.groups,
                self.client_cert(identity),
                self.client_key(identity),
            )
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(self.sa_key, sa)
        self.sa_pub.write_bytes(
            sa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def _issue(
        self,
        ca: x509.Certificate,
        ca_key: ec.EllipticCurvePrivateKey,
        common_name: str,
        groups: tuple[str, ...],
        cert_path: pathlib.Path,
        key_path: pathlib.Path,
        *,
        server_names: list[x509.GeneralName] | None = None,
    ) -> None:
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, groups))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(server_names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_key(key_path, key)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def write_kubeconfig(self, path: pathlib.Path, *, identity: Identity, server: str) -> pathlib.Path:
        """A kubeconfig for ``identity`` at ``server``, naming the certificate files (not inlining
        them) so a reader can see which identity a component uses."""
        kubeconfig: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "fairpack-local",
                    "cluster": {"server": server, "certificate-authority": str(self.ca_cert)},
                }
            ],
            "users": [
                {
                    "name": identity.user,
                    "user": {
                        "client-certificate": str(self.client_cert(identity)),
                        "client-key": str(self.client_key(identity)),
                    },
                }
            ],
            "contexts": [
                {"name": "fairpack-local", "context": {"cluster": "fairpack-local", "user": identity.user}}
            ],
            "current-context": "fairpack-local",
        }
        path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
        path.chmod(0o600)
        return path
