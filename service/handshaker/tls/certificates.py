"""Peer certificate validation through cryptography.x509.verification.

Builds the chain from the peer's Certificate message to the configured trust
anchors, checks the server's name (DNS or IP) or the client's certificate, and
maps each failure to its RFC 8446 alert. The time comes from the injected clock.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from functools import lru_cache

from cryptography import x509
from cryptography.x509 import verification

from .errors import (
    AlertError,
    BadCertificate,
    CertificateExpired,
    CertificateUnknown,
    UnknownCA,
    UnsupportedCertificate,
)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@lru_cache(maxsize=64)
def _store(anchors: tuple[x509.Certificate, ...]) -> verification.Store:
    return verification.Store(list(anchors))


@lru_cache(maxsize=1)
def _relaxed_policies() -> tuple[verification.ExtensionPolicy, verification.ExtensionPolicy]:
    # Client certificates often carry no subjectAltName, and a server checked
    # without a name is not held to an EKU; the CA rules stay the Web PKI ones.
    ee = (
        verification.ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None)
        .may_be_present(x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, None)
    )
    return verification.ExtensionPolicy.webpki_defaults_ca(), ee


def load_chain(chain_der: Sequence[bytes]) -> list[x509.Certificate]:
    try:
        return [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError:
        raise BadCertificate("peer certificate is not valid DER X.509") from None


def _map_error(error: verification.VerificationError) -> AlertError:
    message = str(error)
    reason = message.split(" (encountered processing", 1)[0]
    if "not valid at validation time" in message:
        return CertificateExpired(reason)
    if "candidates exhausted" in message or "no candidates" in message:
        return UnknownCA(reason)
    if "subjectAltName" in message and "matching" in message:
        return BadCertificate(reason)
    if "unsupported" in message.lower():
        return UnsupportedCertificate(reason)
    if "EKU" in message or "extension" in message:
        return BadCertificate(reason)
    return CertificateUnknown(reason)


def _at(now: float) -> datetime.datetime:
    return _EPOCH + datetime.timedelta(seconds=now)


@lru_cache(maxsize=1024)
def _subject(server_name: str) -> x509.DNSName | x509.IPAddress:
    try:
        return x509.IPAddress(ipaddress.ip_address(server_name))
    except ValueError:
        return x509.DNSName(server_name)


def verify_server_chain(
    chain: list[x509.Certificate],
    anchors: tuple[x509.Certificate, ...],
    server_name: str | None,
    now: float,
) -> None:
    """Check a server's chain; `server_name` None skips the name check."""
    builder = verification.PolicyBuilder().store(_store(anchors)).time(_at(now))
    try:
        if server_name is None:
            ca_policy, ee_policy = _relaxed_policies()
            builder.extension_policies(
                ca_policy=ca_policy, ee_policy=ee_policy
            ).build_client_verifier().verify(chain[0], chain[1:])
        else:
            builder.build_server_verifier(_subject(server_name)).verify(chain[0], chain[1:])
    except verification.VerificationError as error:
        raise _map_error(error) from None
    except ValueError as error:
        raise BadCertificate(f"server name check failed: {error}") from None


def verify_client_chain(
    chain: list[x509.Certificate], anchors: tuple[x509.Certificate, ...], now: float
) -> None:
    """Check a client's chain against the server's client trust anchors."""
    ca_policy, _ = _relaxed_policies()
    ee_policy = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None
    )
    builder = (
        verification.PolicyBuilder()
        .store(_store(anchors))
        .time(_at(now))
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
    )
    try:
        builder.build_client_verifier().verify(chain[0], chain[1:])
    except verification.VerificationError as error:
        raise _map_error(error) from None
