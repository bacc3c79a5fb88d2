"""The extender serves HTTPS and picks up a renewed certificate without a restart."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import socket
import ssl
import subprocess
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fairpack_dev import testkit


def self_signed(common_name: str, cert: pathlib.Path, key: pathlib.Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(private, hashes.SHA256())
    )
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def served_name(port: int) -> str | None:
    try:
        pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=2)
    except OSError:
        return None
    subject = x509.load_pem_x509_certificate(pem.encode()).subject
    return str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path: pathlib.Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    self_signed("first", cert, key)
    snapshot = tmp_path / "empty.json"
    snapshot.write_text(json.dumps({"kind": "List", "items": []}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "FAIRPACK_EXTENDER_TLS_CERT_FILE": str(cert),
        "FAIRPACK_EXTENDER_TLS_KEY_FILE": str(key),
        "FAIRPACK_EXTENDER_TLS_RELOAD_S": "0.2",
    }
    script = pathlib.Path(sys.executable).parent / "fairpack-extender"
    args = [str(script), "--snapshot", str(snapshot), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert testkit.wait_for(lambda: served_name(port), 60, what="the first certificate") == "first"
        time.sleep(1.1)  # a new modification time, on file systems with one-second stamps
        self_signed("second", cert, key)
        testkit.wait_for(lambda: served_name(port) == "second", 30, what="the renewed certificate served")
    finally:
        process.terminate()
        process.wait(timeout=15)
