"""Handshake settings for each role, checked once when they are built.

A config is frozen and validated in __post_init__: an inconsistent or insecure
combination is refused up front (ValueError), never discovered mid-handshake.
Nothing here touches the wire.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .certificates import TrustStore
from .codepoints import (
    CERTIFICATE_VERIFY_SCHEMES,
    CipherSuite,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from .groups import SUPPORTED_GROUPS
from .keyops import PrivateKeyHandle
from .tls12.suites import DEFAULT_TLS12_CIPHER_SUITES, TLS12_SUITES

DEFAULT_CIPHER_SUITES: tuple[int, ...] = (
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
)

# Most preferred first (a server takes the first of these that the client sent a share
# for, else retries for the first one in common). The ECDHE-MLKEM hybrids come first, in
# Go's order. FFDHE comes last, so a server uses it only when the client shares no other
# group here (and, to retry, has no other in common): a 4096-bit exchange costs tens of
# milliseconds of CPU where X25519 costs a fraction of one (OpenSSL lists them last too).
# The pure ML-KEM groups are supported but opt-in (draft-ietf-tls-mlkem: nothing
# classical to fall back on if ML-KEM breaks).
DEFAULT_GROUPS: tuple[int, ...] = (
    NamedGroup.X25519MLKEM768,
    NamedGroup.SECP256R1MLKEM768,
    NamedGroup.SECP384R1MLKEM1024,
    NamedGroup.X25519,
    NamedGroup.SECP256R1,
    NamedGroup.SECP384R1,
    NamedGroup.SECP521R1,
    NamedGroup.X448,
    NamedGroup.FFDHE2048,
    NamedGroup.FFDHE3072,
    NamedGroup.FFDHE4096,
)

# Groups a client sends key shares for in its first ClientHello.
DEFAULT_KEY_SHARE_GROUPS: tuple[int, ...] = (NamedGroup.X25519MLKEM768, NamedGroup.X25519)

# Schemes we accept in CertificateVerify, most preferred first.
DEFAULT_SIGNATURE_SCHEMES: tuple[int, ...] = (
    SignatureScheme.ECDSA_SECP256R1_SHA256,
    SignatureScheme.ED25519,
    SignatureScheme.RSA_PSS_RSAE_SHA256,
    SignatureScheme.RSA_PSS_PSS_SHA256,
    SignatureScheme.ECDSA_SECP384R1_SHA384,
    SignatureScheme.RSA_PSS_RSAE_SHA384,
    SignatureScheme.RSA_PSS_PSS_SHA384,
    SignatureScheme.ECDSA_SECP521R1_SHA512,
    SignatureScheme.RSA_PSS_RSAE_SHA512,
    SignatureScheme.RSA_PSS_PSS_SHA512,
    SignatureScheme.ED448,
)

# Schemes we accept in certificate signatures (signature_algorithms_cert): the
# CertificateVerify ones plus RSASSA-PKCS1-v1_5, which CAs still use.
DEFAULT_CERTIFICATE_SIGNATURE_SCHEMES: tuple[int, ...] = (
    *DEFAULT_SIGNATURE_SCHEMES,
    SignatureScheme.RSA_PKCS1_SHA256,
    SignatureScheme.RSA_PKCS1_SHA384,
    SignatureScheme.RSA_PKCS1_SHA512,
)

# Schemes accepted in TLS 1.2 handshake signatures (ServerKeyExchange, CertificateVerify)
# besides signature_schemes: RSASSA-PKCS1-v1_5, which TLS 1.2 peers still sign with.
DEFAULT_TLS12_SIGNATURE_SCHEMES: tuple[int, ...] = (
    SignatureScheme.RSA_PKCS1_SHA256,
    SignatureScheme.RSA_PKCS1_SHA384,
    SignatureScheme.RSA_PKCS1_SHA512,
)

MAX_RECORD_SIZE_LIMIT = 2**14 + 1
_VERSIONS = (ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_3)


class ClientAuth(enum.Enum):
    """Whether a server asks for, and insists on, a client certificate."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True, slots=True)
class Credential:
    """A certificate chain (leaf first) and the handle of the leaf's private key.

    The handle is a Signer the engine calls inline, or a DeferredKey whose
    operations the engine's caller performs (keyops.py).
    """

    certificate_chain: tuple[x509.Certificate, ...]
    signer: PrivateKeyHandle
    # DER of each certificate, encoded once here so no handshake re-encodes it.
    chain_der: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    # Messages built from the chain alone, encoded by the first handshake that sends
    # them (keyed by the protocol's name for them, e.g. "tls13 Certificate").
    encodings: dict[str, bytes] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not self.certificate_chain:
            raise ValueError("a credential needs at least its leaf certificate")
        if not any(s in CERTIFICATE_VERIFY_SCHEMES for s in self.signer.signature_schemes):
            raise ValueError("the credential's signer offers no TLS 1.3 signature scheme")
        der = tuple(c.public_bytes(Encoding.DER) for c in self.certificate_chain)
        object.__setattr__(self, "chain_der", der)


# Chooses the server's credential from the ClientHello's server_name (None when
# absent) and the client's signature_algorithms; None means "nothing fits".
CredentialSelector = Callable[[str | None, Sequence[int]], Credential | None]


def _check_common(
    cipher_suites: Sequence[int],
    groups: Sequence[int],
    signature_schemes: Sequence[int],
    alpn_protocols: Sequence[bytes],
    record_size_limit: int | None,
) -> None:
    if not cipher_suites or not set(cipher_suites) <= set(DEFAULT_CIPHER_SUITES):
        raise ValueError("cipher_suites must be a non-empty subset of the TLS 1.3 suites")
    if not groups or not set(groups) <= SUPPORTED_GROUPS:
        raise ValueError("supported_groups must be a non-empty subset of the supported groups")
    if not signature_schemes or not set(signature_schemes) <= CERTIFICATE_VERIFY_SCHEMES:
        raise ValueError("signature_schemes must be TLS 1.3 CertificateVerify schemes")
    for proto in alpn_protocols:
        if not 1 <= len(proto) <= 255:
            raise ValueError("each ALPN protocol name must be 1 to 255 bytes")
    if record_size_limit is not None and not 64 <= record_size_limit <= MAX_RECORD_SIZE_LIMIT:
        raise ValueError("record_size_limit must be between 64 and 2^14+1 (RFC 8449)")


def _check_versions(
    min_version: int,
    max_version: int,
    tls12_cipher_suites: Sequence[int],
    tls12_signature_schemes: Sequence[int],
) -> None:
    if min_version not in _VERSIONS or max_version not in _VERSIONS:
        raise ValueError("min_version and max_version must be TLS 1.2 (0x0303) or TLS 1.3 (0x0304)")
    if min_version > max_version:
        raise ValueError("min_version is above max_version")
    if not set(tls12_cipher_suites) <= set(TLS12_SUITES):
        raise ValueError("tls12_cipher_suites must be a subset of the TLS 1.2 AEAD suites")
    if min_version == ProtocolVersion.TLS1_2 and not tls12_cipher_suites:
        raise ValueError("TLS 1.2 is enabled but tls12_cipher_suites is empty")
    if not set(tls12_signature_schemes) <= set(DEFAULT_TLS12_SIGNATURE_SCHEMES):
        raise ValueError("tls12_signature_schemes must be RSASSA-PKCS1-v1_5 schemes (no SHA-1)")


def _trust_store(
    anchors: tuple[x509.Certificate, ...], shared: TrustStore | None, size: int
) -> TrustStore:
    """The shared store when given (its own cache size applies), else a new one."""
    if shared is None:
        return TrustStore(anchors, size=size)
    # A store over other anchors would accept chains this config does not trust.
    if shared.anchors != anchors:
        raise ValueError("the shared trust store's anchors differ from the config's")
    return shared


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Settings for the client role."""

    server_name: str | None = None
    # Trust anchors for the server's chain; empty with verify_peer=True is refused.
    trust_anchors: tuple[x509.Certificate, ...] = ()
    verify_peer: bool = True
    # Check the server's certificate against server_name (DNS name or IP address).
    check_hostname: bool = True
    alpn_protocols: tuple[bytes, ...] = ()
    cipher_suites: tuple[int, ...] = DEFAULT_CIPHER_SUITES
    supported_groups: tuple[int, ...] = DEFAULT_GROUPS
    # Groups we send a key_share for in the first ClientHello; the rest are
    # reachable through HelloRetryRequest.
    key_share_groups: tuple[int, ...] = DEFAULT_KEY_SHARE_GROUPS
    signature_schemes: tuple[int, ...] = DEFAULT_SIGNATURE_SCHEMES
    certificate_signature_schemes: tuple[int, ...] = DEFAULT_CERTIFICATE_SIGNATURE_SCHEMES
    # Our certificate for a server that asks for one.
    credential: Credential | None = None
    # RFC 8446 appendix D.4: a non-empty legacy_session_id and a CCS before our
    # second flight, so middleboxes see something that looks like TLS 1.2 resumption.
    middlebox_compatibility: bool = True
    record_size_limit: int | None = None
    # Pad the ClientHello (RFC 7685) to at least this many bytes; 0 disables.
    padding_to: int = 0
    # Fill HandshakeResult.keylog with NSS key-log lines (SSLKEYLOGFILE format).
    keylog: bool = False
    # Protocol versions (IANA numbers), both enabled by default, TLS 1.3 preferred.
    min_version: int = ProtocolVersion.TLS1_2
    max_version: int = ProtocolVersion.TLS1_3
    tls12_cipher_suites: tuple[int, ...] = DEFAULT_TLS12_CIPHER_SUITES
    tls12_signature_schemes: tuple[int, ...] = DEFAULT_TLS12_SIGNATURE_SCHEMES
    # RFC 7627 section 5.2/5.3: refuse a TLS 1.2 peer without the extended master
    # secret (handshake_failure); False allows the legacy master secret.
    require_extended_master_secret: bool = True
    # How many verified server chains to remember (0: verify every chain in full).
    verified_chain_cache_size: int = 256
    # Built from trust_anchors: the verifier store and the verified-chain cache.
    trust_store: TrustStore = field(init=False, repr=False, compare=False)
    # What handshakes build from the config alone (the ClientHello's fixed extensions),
    # built by the first and reused by the rest.
    cache: dict[str, Any] = field(init=False, repr=False, compare=False, default_factory=dict)
    # A TrustStore over exactly trust_anchors to use instead of building one, so that
    # configs rebuilt for the same bundle share its verifier store and verdicts.
    shared_trust_store: TrustStore | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "trust_store",
            _trust_store(
                self.trust_anchors, self.shared_trust_store, self.verified_chain_cache_size
            ),
        )
        _check_common(
            self.cipher_suites,
            self.supported_groups,
            self.signature_schemes,
            self.alpn_protocols,
            self.record_size_limit,
        )
        _check_versions(
            self.min_version,
            self.max_version,
            self.tls12_cipher_suites,
            self.tls12_signature_schemes,
        )
        if not set(self.key_share_groups) <= set(self.supported_groups):
            raise ValueError("key_share_groups must be a subset of supported_groups")
        if len(set(self.key_share_groups)) != len(self.key_share_groups):
            raise ValueError("key_share_groups must not repeat a group")
        if self.verify_peer and not self.trust_anchors:
            raise ValueError("verify_peer needs trust_anchors")
        if self.verify_peer and self.check_hostname and not self.server_name:
            raise ValueError("check_hostname needs server_name")
        if self.server_name is not None and not 0 < len(self.server_name.encode()) < 2**16:
            raise ValueError("server_name is empty or too long")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings for the server role."""

    # The credential used for every connection, unless a selector is given.
    credential: Credential | None = None
    # Picks a credential per connection (by SNI); takes precedence over `credential`.
    credential_selector: CredentialSelector | None = None
    alpn_protocols: tuple[bytes, ...] = ()
    cipher_suites: tuple[int, ...] = DEFAULT_CIPHER_SUITES
    supported_groups: tuple[int, ...] = DEFAULT_GROUPS
    signature_schemes: tuple[int, ...] = DEFAULT_SIGNATURE_SCHEMES
    certificate_signature_schemes: tuple[int, ...] = DEFAULT_CERTIFICATE_SIGNATURE_SCHEMES
    client_auth: ClientAuth = ClientAuth.NONE
    client_trust_anchors: tuple[x509.Certificate, ...] = ()
    record_size_limit: int | None = None
    # Ask for a group we prefer through HelloRetryRequest even when the client
    # already sent a usable share (off: any acceptable share is taken).
    prefer_own_group_order: bool = False
    # Send a cookie in HelloRetryRequest and insist that the second ClientHello echoes it.
    hello_retry_cookie: bool = False
    keylog: bool = False
    # Protocol versions (IANA numbers), both enabled by default, TLS 1.3 preferred.
    min_version: int = ProtocolVersion.TLS1_2
    max_version: int = ProtocolVersion.TLS1_3
    tls12_cipher_suites: tuple[int, ...] = DEFAULT_TLS12_CIPHER_SUITES
    tls12_signature_schemes: tuple[int, ...] = DEFAULT_TLS12_SIGNATURE_SCHEMES
    # RFC 7627 section 5.2/5.3: refuse a TLS 1.2 peer without the extended master
    # secret (handshake_failure); False allows the legacy master secret.
    require_extended_master_secret: bool = True
    # How many verified client chains to remember (0: verify every chain in full).
    verified_chain_cache_size: int = 256
    # Built from client_trust_anchors: the verifier store and the verified-chain cache.
    client_trust_store: TrustStore = field(init=False, repr=False, compare=False)
    # A TrustStore over exactly client_trust_anchors to use instead of building one.
    shared_client_trust_store: TrustStore | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "client_trust_store",
            _trust_store(
                self.client_trust_anchors,
                self.shared_client_trust_store,
                self.verified_chain_cache_size,
            ),
        )
        _check_common(
            self.cipher_suites,
            self.supported_groups,
            self.signature_schemes,
            self.alpn_protocols,
            self.record_size_limit,
        )
        _check_versions(
            self.min_version,
            self.max_version,
            self.tls12_cipher_suites,
            self.tls12_signature_schemes,
        )
        if self.credential is None and self.credential_selector is None:
            raise ValueError("a server needs a credential or a credential_selector")
        if self.client_auth is not ClientAuth.NONE and not self.client_trust_anchors:
            raise ValueError("client authentication needs client_trust_anchors")
