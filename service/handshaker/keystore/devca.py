"""The local development CA: key generation and certificate issuance for `keys generate`.

This CA exists so a fresh install serves TLS at once. It is not a production CA:
its key sits next to the credentials it signs, in the keystore directory.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from handshaker.tls.signer import PrivateKey

CA_COMMON_NAME = "handshaker development CA"
CA_VALIDITY = datetime.timedelta(days=3652)
# 397 days: the longest validity that clients enforcing the CA/Browser Forum
# limit for leaf certificates still accept.
LEAF_VALIDITY = datetime.timedelta(days=397)
# Issue slightly in the past so a peer whose clock runs behind accepts the certificate.
BACKDATE = datetime.timedelta(minutes=5)

KEY_TYPES: tuple[str, ...] = ("ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "ed25519")
DEFAULT_KEY_TYPE = "ecdsa-p256"

_DNS_NAME = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def generate_private_key(key_type: str) -> PrivateKey:
    """A fresh private key of one of KEY_TYPES."""
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type in ("rsa-2048", "rsa-3072"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}")


def parse_san(text: str) -> x509.GeneralName:
    """A subjectAltName from `DNS:name`, `IP:address` or `URI:uri` (a bare value is DNS or IP)."""
    kind, sep, value = text.partition(":")
    if not sep or kind.upper() not in ("DNS", "IP", "URI"):
        kind, value = ("IP", text) if _is_ip(text) else ("DNS", text)
    kind = kind.upper()
    value = value.strip()
    if kind == "IP":
        try:
            return x509.IPAddress(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"not an IP address: {value!r}") from None
    if kind == "URI":
        if ":" not in value:
            raise ValueError(f"not an absolute URI: {value!r}")
        return x509.UniformResourceIdentifier(value)
    name = value.rstrip(".").lower()
    if not _DNS_NAME.match(name) or len(name) > 253:
        raise ValueError(f"not a DNS name: {value!r}")
    return x509.DNSName(name)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.key_size >= 384:
        return hashes.SHA384()
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return hashes.SHA256()
    return None  # Ed25519 and Ed448 sign without a separate hash


def create_ca(
    now: datetime.datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed ECDSA P-256 CA, valid for ten years, that may sign leaves only."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "handshaker"),
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def issue(
    ca_certificate: x509.Certificate,
    ca_key: PrivateKey,
    subject_key: PrivateKey,
    sans: Iterable[x509.GeneralName],
    *,
    now: datetime.datetime | None = None,
    validity: datetime.timedelta = LEAF_VALIDITY,
) -> x509.Certificate:
    """A leaf certificate for `subject_key`, usable as a TLS server and client certificate."""
    return issue_for_public_key(
        ca_certificate, ca_key, subject_key.public_key(), sans, now=now, validity=validity
    )


def issue_for_public_key(
    ca_certificate: x509.Certificate,
    ca_key: PrivateKey,
    public_key: ec.EllipticCurvePublicKey
    | rsa.RSAPublicKey
    | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey,
    sans: Iterable[x509.GeneralName],
    *,
    now: datetime.datetime | None = None,
    validity: datetime.timedelta = LEAF_VALIDITY,
) -> x509.Certificate:
    """A leaf certificate over a public key whose private half is elsewhere (a token)."""
    names = list(sans)
    if not names:
        raise ValueError("a certificate needs at least one subjectAltName")
    now = now or datetime.datetime.now(datetime.UTC)
    first = names[0].value
    common_name = str(first)[:64]
    ca_ski = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(public_key)
        .serial_number(_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + validity, ca_certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                # RSA leaves may also serve the opt-in TLS 1.2 RSA key exchange.
                key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, _signature_hash(ca_key))
    )
    return certificate


def _serial() -> int:
    # RFC 5280 section 4.1.2.2: positive, at most 20 octets; 159 random bits fit.
    return int.from_bytes(os.urandom(20), "big") >> 1 or 1
