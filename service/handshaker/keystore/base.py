"""The KeyStore protocol, its errors, and the SNI index every backend shares.

A backend hands out Credentials (a chain plus a Signer) and trust bundles; it
never hands out private key bytes, and no message raised or logged here may
carry one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import PublicKeyAlgorithmOID

from handshaker.tls.config import Credential

from .system_bundle import SYSTEM_TRUST_BUNDLE, system_anchors

if TYPE_CHECKING:
    # policy.py imports this module for KeystoreError; the protocol only names the type.
    from .policy import Policy


class KeystoreError(Exception):
    """Base of every keystore error. Messages name files and reasons, never key material."""


class KeyNotFound(KeystoreError, LookupError):
    """No credential or trust bundle has that name."""


class KeystoreUnavailable(KeystoreError):
    """The backend cannot be read right now (the service answers UNAVAILABLE)."""


class InvalidCredential(KeystoreError, ValueError):
    """A certificate chain or private key is malformed, or the key does not match the leaf."""


@runtime_checkable
class KeyStore(Protocol):
    """Where the service finds its credentials and the trust bundles it validates peers with."""

    def credential(self, name: str) -> Credential:
        """The credential called `name`; raises KeyNotFound."""
        ...

    def select(
        self,
        server_name: str | None,
        signature_schemes: Sequence[int],
        allowed: Callable[[str], bool] | None = None,
    ) -> Credential | None:
        """The credential for a ClientHello: exact DNS SAN, then wildcard, then the default.

        Only credentials that can sign with one of `signature_schemes` are chosen
        (an empty list does not filter), and only names `allowed` accepts (the
        caller's policy grants) when it is given. Fits ServerConfig.credential_selector.
        """
        ...

    def trust_bundle(self, name: str) -> tuple[x509.Certificate, ...]:
        """The trust anchors called `name`; raises KeyNotFound."""
        ...

    def names(self) -> list[str]:
        """The credential names, sorted."""
        ...

    def trust_bundle_names(self) -> list[str]:
        """The trust bundle names, sorted."""
        ...

    def default_name(self) -> str | None:
        """The name of the credential served when no SAN matches the server_name."""
        ...

    def policy(self) -> Policy:
        """The authorization policy in force (default deny: the empty policy)."""
        ...


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """What `keys list` shows about a credential: no key material."""

    name: str
    dns_sans: tuple[str, ...]
    ip_sans: tuple[str, ...]
    uri_sans: tuple[str, ...]
    key_type: str
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    is_default: bool

    @property
    def sans(self) -> tuple[str, ...]:
        return (
            *(f"DNS:{n}" for n in self.dns_sans),
            *(f"IP:{n}" for n in self.ip_sans),
            *(f"URI:{n}" for n in self.uri_sans),
        )


def key_type(certificate: x509.Certificate) -> str:
    """A short name of the certificate's public key type, as the CLI spells key types."""
    if certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSASSA_PSS:
        return f"rsa-pss-{_public_key_size(certificate)}"
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {
            "secp256r1": "ecdsa-p256",
            "secp384r1": "ecdsa-p384",
            "secp521r1": "ecdsa-p521",
        }.get(key.curve.name, f"ecdsa-{key.curve.name}")
    if isinstance(key, rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return "dsa"
    return "unknown"


def _public_key_size(certificate: x509.Certificate) -> int:
    key = certificate.public_key()
    return key.key_size if isinstance(key, rsa.RSAPublicKey) else 0


@dataclass(frozen=True, slots=True)
class SubjectAltNames:
    dns: tuple[str, ...] = ()
    ip: tuple[str, ...] = ()
    uri: tuple[str, ...] = ()


def subject_alt_names(certificate: x509.Certificate) -> SubjectAltNames:
    """The certificate's DNS, IP and URI subjectAltName entries (DNS names lowercased)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return SubjectAltNames()
    return SubjectAltNames(
        dns=tuple(n.lower() for n in san.get_values_for_type(x509.DNSName)),
        ip=tuple(str(a) for a in san.get_values_for_type(x509.IPAddress)),
        uri=tuple(san.get_values_for_type(x509.UniformResourceIdentifier)),
    )


def describe(name: str, credential: Credential, *, is_default: bool = False) -> CredentialInfo:
    """The public facts of a credential's leaf certificate."""
    leaf = credential.certificate_chain[0]
    sans = subject_alt_names(leaf)
    return CredentialInfo(
        name=name,
        dns_sans=sans.dns,
        ip_sans=sans.ip,
        uri_sans=sans.uri,
        key_type=key_type(leaf),
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        is_default=is_default,
    )


def _normalize_server_name(server_name: str) -> str:
    # DNS names compare case-insensitively; an absolute name's trailing dot is
    # not part of the SNI value (RFC 6066 section 3) but callers send it anyway.
    return server_name.rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class KeystoreSnapshot:
    """An immutable view of a keystore's contents, with the SNI index built once.

    Backends swap whole snapshots, so a reader never sees half an update.
    """

    credentials: Mapping[str, Credential]
    trust_bundles: Mapping[str, tuple[x509.Certificate, ...]]
    default: str | None = None
    # DNS SAN -> credential names having it, in name order.
    _exact: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    # The part after "*." of a wildcard SAN -> credential names, in name order.
    _wildcard: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.default is not None and self.default not in self.credentials:
            raise ValueError("the default credential is not in the keystore")
        exact: dict[str, list[str]] = {}
        wildcard: dict[str, list[str]] = {}
        for name in sorted(self.credentials):
            for dns in subject_alt_names(self.credentials[name].certificate_chain[0]).dns:
                if dns.startswith("*."):
                    wildcard.setdefault(dns[2:], []).append(name)
                else:
                    exact.setdefault(dns, []).append(name)
        object.__setattr__(self, "_exact", {k: tuple(v) for k, v in exact.items()})
        object.__setattr__(self, "_wildcard", {k: tuple(v) for k, v in wildcard.items()})

    def credential(self, name: str) -> Credential:
        try:
            return self.credentials[name]
        except KeyError:
            raise KeyNotFound(f"no credential named {name!r}") from None

    def trust_bundle(self, name: str) -> tuple[x509.Certificate, ...]:
        try:
            return self.trust_bundles[name]
        except KeyError:
            if name == SYSTEM_TRUST_BUNDLE:
                # Every backend has the host's CA store, unless it holds a bundle so named.
                return system_anchors()
            raise KeyNotFound(f"no trust bundle named {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self.credentials)

    def trust_bundle_names(self) -> list[str]:
        return sorted({*self.trust_bundles, SYSTEM_TRUST_BUNDLE})

    def candidates(self, server_name: str | None) -> Iterable[str]:
        """Credential names for a server_name, best first: exact, wildcard, default."""
        if server_name:
            host = _normalize_server_name(server_name)
            yield from self._exact.get(host, ())
            # RFC 6125 section 6.4.3: the wildcard stands for exactly the left-most label.
            _, dot, parent = host.partition(".")
            if dot and parent and not _is_ip_literal(host):
                yield from self._wildcard.get(parent, ())
        if self.default is not None:
            yield self.default

    def select(
        self,
        server_name: str | None,
        signature_schemes: Sequence[int],
        allowed: Callable[[str], bool] | None = None,
    ) -> Credential | None:
        offered = set(signature_schemes)
        for name in self.candidates(server_name):
            if allowed is not None and not allowed(name):
                continue
            credential = self.credentials[name]
            if not offered or offered.intersection(credential.signer.signature_schemes):
                return credential
        return None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
