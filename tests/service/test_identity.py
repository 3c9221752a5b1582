"""The principal a client certificate names: SANs read with their types, refused when ambiguous."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from handshaker.api.identity import Unauthenticated, certificate_principal

_KEY = ec.generate_private_key(ec.SECP256R1())


def certificate(*names: x509.GeneralName) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice.test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


URI = x509.UniformResourceIdentifier
DNS = x509.DNSName


@pytest.mark.parametrize(
    ("names", "principal"),
    [
        ((URI("spiffe://test/alice"),), "spiffe://test/alice"),
        ((DNS("alice.test"), URI("spiffe://test/alice")), "spiffe://test/alice"),  # SPIFFE first
        ((DNS("Alice.Test"),), "dns:alice.test"),
        ((URI("https://alice.test/"), DNS("alice.test")), "dns:alice.test"),  # not a SPIFFE ID
        ((DNS("alice.test"), DNS("bob.test")), "dns:alice.test"),  # the first DNS SAN
    ],
)
def test_a_certificate_names_its_spiffe_id_else_its_first_dns_name(
    names: tuple[x509.GeneralName, ...], principal: str
) -> None:
    assert str(certificate_principal(certificate(*names))) == principal


@pytest.mark.parametrize(
    ("names", "reason"),
    [
        ((), "no subjectAltName"),
        ((x509.IPAddress(ipaddress.ip_address("127.0.0.1")),), "neither"),
        ((URI("https://alice.test/"),), "neither"),
        ((DNS("spiffe://test/alice"),), "not a DNS name"),
        ((DNS("*.test"),), "not a DNS name"),
        ((URI("spiffe://test/a"), URI("spiffe://test/b")), "more than one SPIFFE ID"),
        ((URI("spiffe://Test/alice"),), "not a SPIFFE ID"),
    ],
)
def test_a_certificate_without_one_clear_name_is_unauthenticated(
    names: tuple[x509.GeneralName, ...], reason: str
) -> None:
    with pytest.raises(Unauthenticated) as raised:
        certificate_principal(certificate(*names))
    assert reason in str(raised.value)
