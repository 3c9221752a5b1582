"""Peer certificate validation through cryptography.x509.verification.

Builds the chain from the peer's Certificate message to the configured trust
anchors, checks the server's name (DNS or IP) or the client's certificate, and
maps each failure to its RFC 8446 alert. The time comes from the injected clock.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache

from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from .errors import (
    AlertError,
    BadCertificate,
    CertificateExpired,
    CertificateUnknown,
    UnknownCA,
    UnsupportedCertificate,
)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


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


def _require_client_auth_eku(
    policy: verification.Policy,
    certificate: x509.Certificate,
    extension: x509.ExtendedKeyUsage | None,
) -> None:
    # RFC 5280 section 4.2.1.12: when the EKU is present it must allow the use.
    if extension is not None and not (
        ExtendedKeyUsageOID.CLIENT_AUTH in extension
        or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in extension
    ):
        raise ValueError("client certificate's extendedKeyUsage does not allow clientAuth")


@lru_cache(maxsize=1)
def _client_policies() -> tuple[verification.ExtensionPolicy, verification.ExtensionPolicy]:
    # A client certificate may carry no subjectAltName; its EKU, if any, must
    # allow clientAuth. The CA rules stay the Web PKI ones.
    ee = (
        verification.ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None)
        .may_be_present(
            x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _require_client_auth_eku
        )
    )
    return verification.ExtensionPolicy.webpki_defaults_ca(), ee


def _require_server_auth_eku(
    policy: verification.Policy,
    certificate: x509.Certificate,
    extension: x509.ExtendedKeyUsage | None,
) -> None:
    if extension is not None and not (
        ExtendedKeyUsageOID.SERVER_AUTH in extension
        or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in extension
    ):
        raise ValueError("server certificate's extendedKeyUsage does not allow serverAuth")


@lru_cache(maxsize=1)
def _uri_server_policies() -> tuple[verification.ExtensionPolicy, verification.ExtensionPolicy]:
    # A server known by a SPIFFE ID: its URI SAN is checked after the path is built;
    # its EKU, if any, must allow serverAuth.
    ee = (
        verification.ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None)
        .may_be_present(
            x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _require_server_auth_eku
        )
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


def _window(chain: list[x509.Certificate]) -> tuple[float, float]:
    """The time span in which every certificate of a built path is valid."""
    not_before = max(c.not_valid_before_utc for c in chain)
    not_after = min(c.not_valid_after_utc for c in chain)
    return (not_before - _EPOCH).total_seconds(), (not_after - _EPOCH).total_seconds()


class TrustStore:
    """Trust anchors, the verifier store built once from them, and recent verdicts.

    A chain that verified is remembered (by its exact bytes and the name checked)
    until the first of: a certificate in its path expires or is not yet valid at
    the injected time, `max_age` seconds pass, or `size` newer chains push it out.
    A repeat handshake with the same peer then skips path building and the CA
    signature check; failures are never cached. The anchors are fixed for the
    store's life, so a cached verdict cannot outlive a change of trust.
    """

    def __init__(
        self, anchors: tuple[x509.Certificate, ...], *, size: int = 256, max_age: float = 300.0
    ) -> None:
        self.anchors = anchors
        self.size = size
        self.max_age = max_age
        self._store = verification.Store(list(anchors)) if anchors else None
        # The builder with the store set, made once: each verification adds only its time.
        self._policy = (
            verification.PolicyBuilder().store(self._store) if self._store is not None else None
        )
        # (kind, server_name, chain) -> (valid from, valid until, leaf)
        self._cache: OrderedDict[
            tuple[str, str | None, tuple[bytes, ...]], tuple[float, float, x509.Certificate]
        ] = OrderedDict()

    def __repr__(self) -> str:
        return f"TrustStore({len(self.anchors)} anchors)"

    def __len__(self) -> int:
        return len(self._cache)

    def _cache_hit_for_tests(
        self, chain_der: tuple[bytes, ...], server_name: str | None, now: float
    ) -> bool:
        return self._cached(("server", server_name, chain_der), now) is not None

    def _cached(
        self, key: tuple[str, str | None, tuple[bytes, ...]], now: float
    ) -> x509.Certificate | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        valid_from, valid_until, leaf = hit
        if not valid_from <= now < valid_until:
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return leaf

    def _remember(
        self,
        key: tuple[str, str | None, tuple[bytes, ...]],
        path: list[x509.Certificate],
        now: float,
    ) -> None:
        if self.size <= 0:
            return
        valid_from, valid_until = _window(path)
        self._cache[key] = (valid_from, min(valid_until, now + self.max_age), path[0])
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)

    def _builder(self, now: float) -> verification.PolicyBuilder:
        if self._policy is None:
            raise UnknownCA("no trust anchors configured")
        # PolicyBuilder is immutable: time() returns a new builder, the shared one is unchanged.
        return self._policy.time(_at(now))

    def verify_server(
        self, chain_der: tuple[bytes, ...], server_name: str | None, now: float
    ) -> x509.Certificate:
        """Check a server's chain (and name, unless None); returns the parsed leaf."""
        key = ("server", server_name, chain_der)
        leaf = self._cached(key, now)
        if leaf is not None:
            return leaf
        chain = load_chain(chain_der)
        builder = self._builder(now)
        try:
            if server_name is None:
                ca_policy, ee_policy = _relaxed_policies()
                path = (
                    builder.extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
                    .build_client_verifier()
                    .verify(chain[0], chain[1:])
                    .chain
                )
            else:
                path = builder.build_server_verifier(_subject(server_name)).verify(
                    chain[0], chain[1:]
                )
        except verification.VerificationError as error:
            raise _map_error(error) from None
        except ValueError as bad_name:
            raise BadCertificate(f"server name check failed: {bad_name}") from None
        self._remember(key, path, now)
        return chain[0]

    def verified_path(
        self,
        chain_der: tuple[bytes, ...],
        *,
        server: bool,
        identity: x509.DNSName | x509.IPAddress | x509.UniformResourceIdentifier | None,
        now: float,
    ) -> list[x509.Certificate]:
        """The path from the leaf to an anchor, for the CertificateValidator service.

        `server` picks the purpose (serverAuth or clientAuth EKU when the leaf has one);
        `identity` is what the leaf must name: a DNS name (RFC 6125, one left-most
        wildcard label), an IP address, or a URI (a SPIFFE ID, compared exactly). A
        server's chain needs one. Failures raise the AlertError a TLS stack would send.
        Not cached: the caller asks once per peer, and the answer carries the path.
        """
        chain = load_chain(chain_der)
        if not chain:
            raise BadCertificate("the chain is empty")
        builder = self._builder(now)
        try:
            if server and not isinstance(identity, x509.UniformResourceIdentifier):
                if identity is None:
                    raise BadCertificate("a server's chain is checked against a name")
                return builder.build_server_verifier(identity).verify(chain[0], chain[1:])
            ca_policy, ee_policy = _uri_server_policies() if server else _client_policies()
            verified = (
                builder.extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
                .build_client_verifier()
                .verify(chain[0], chain[1:])
            )
        except verification.VerificationError as error:
            raise _map_error(error) from None
        if identity is not None and not _names(verified.subjects or (), identity):
            raise BadCertificate(f"the certificate does not name {identity.value}")
        return verified.chain

    def verify_client(self, chain_der: tuple[bytes, ...], now: float) -> x509.Certificate:
        """Check a client's chain; returns the parsed leaf."""
        key = ("client", None, chain_der)
        leaf = self._cached(key, now)
        if leaf is not None:
            return leaf
        chain = load_chain(chain_der)
        ca_policy, ee_policy = _client_policies()
        try:
            path = (
                self._builder(now)
                .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
                .build_client_verifier()
                .verify(chain[0], chain[1:])
                .chain
            )
        except verification.VerificationError as error:
            raise _map_error(error) from None
        self._remember(key, path, now)
        return chain[0]


def _names(
    subjects: Sequence[x509.GeneralName],
    identity: x509.DNSName | x509.IPAddress | x509.UniformResourceIdentifier,
) -> bool:
    """Whether a leaf's subjectAltNames name `identity` (a client's, or a SPIFFE server's)."""
    if isinstance(identity, x509.DNSName):
        wanted = identity.value.rstrip(".").lower()
        for subject in subjects:
            if isinstance(subject, x509.DNSName):
                name = subject.value.lower()
                if name == wanted:
                    return True
                # RFC 6125 section 6.4.3: "*" stands for exactly the left-most label.
                label, dot, rest = wanted.partition(".")
                if name.startswith("*.") and dot and label and name[2:] == rest:
                    return True
        return False
    return any(type(subject) is type(identity) and subject == identity for subject in subjects)
