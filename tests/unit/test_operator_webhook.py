"""The webhook's development certificate: valid for the host the API server calls."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509

from fairpack.operator import webhook


@pytest.mark.parametrize(
    ("host", "san"),
    [
        pytest.param("127.0.0.1", x509.IPAddress(ipaddress.ip_address("127.0.0.1")), id="ip"),
        pytest.param(
            "fairpack-operator.fairpack-system.svc",
            x509.DNSName("fairpack-operator.fairpack-system.svc"),
            id="dns",
        ),
    ],
)
def test_self_signed_certificate_names_the_host(host: str, san: x509.GeneralName) -> None:
    cert_pem, key_pem = webhook.self_signed(host)
    cert = x509.load_pem_x509_certificate(cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san in names
    assert b"PRIVATE KEY" in key_pem
