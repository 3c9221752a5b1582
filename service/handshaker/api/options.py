"""Turns the contract's ClientOptions and ServerOptions into checked engine configs.

Configs are cached by the options' bytes for a short while, so the hot path
does not rebuild and re-validate them on every handshake; the short lifetime
lets a rotated credential or trust bundle take effect within a second. The
TrustStore (verifier store and verified-chain cache) outlives those entries: one
per distinct set of anchors, keyed by their DER, so a rebuilt config keeps its
bundle's verdicts and a changed bundle gets a fresh store. A bad option raises
InvalidOptions (INVALID_ARGUMENT); an unknown key or bundle KeyNotFound (NOT_FOUND).

Every field a caller sends is bounded before anything is built or cached (check_client,
check_server): a list, a name or a PEM past its limit is InvalidOptions naming the field.
The cache is bounded by an estimate of its bytes, not by its entry count: one entry
with 4 MiB of inline anchors costs as much as thousands of plain ones.

Authorization is checked on every start, before the cache, against the keystore's
current policy: a credential or trust bundle the caller's principal is not granted
raises AccessDenied (PERMISSION_DENIED). A name that does not exist is NOT_FOUND
first, as for every caller (names are not secrets; keys are). Server-role selection
by SNI only considers the credentials the caller may serve with, decided at the
ClientHello against the policy of that moment.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from typing import TypedDict

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from handshaker_wire.v1 import handshaker_pb2 as pb

from handshaker.keystore import (
    DEFAULT_TRUST_BUNDLE,
    AccessDenied,
    KeyStore,
    Principal,
    Role,
)
from handshaker.tls import ClientAuth, ClientConfig, Credential, ProtocolVersion, ServerConfig
from handshaker.tls.certificates import TrustStore
from handshaker.tls.config import (
    DEFAULT_CIPHER_SUITES,
    DEFAULT_GROUPS,
    DEFAULT_KEY_SHARE_GROUPS,
    DEFAULT_SIGNATURE_SCHEMES,
    DEFAULT_TLS12_SIGNATURE_SCHEMES,
)
from handshaker.tls.errors import InternalError
from handshaker.tls.groups import SUPPORTED_GROUPS
from handshaker.tls.tls12.suites import DEFAULT_TLS12_CIPHER_SUITES, TLS12_SUITES

from . import audit

CONFIG_CACHE_SECONDS = 1.0
# What the option cache may hold (estimated); `serve --config-cache-bytes`.
DEFAULT_CONFIG_CACHE_BYTES = 32 << 20
# What one cached config costs besides its options' bytes: the config object, its
# tuples, and parsed anchors (a parsed certificate is a few times its PEM).
CONFIG_ENTRY_OVERHEAD = 4096
CONFIG_BYTES_PER_OPTION_BYTE = 4
# Inline trust anchors (trust_anchors_pem, client_trust_anchors_pem); `serve
# --max-trust-anchors` and `--max-trust-anchors-bytes`. A real CA bundle (Mozilla's)
# is about 150 certificates in 220 KB.
DEFAULT_MAX_TRUST_ANCHORS = 200
DEFAULT_MAX_TRUST_ANCHORS_BYTES = 512 << 10
# Protocol-derived limits on the other fields (not flags: no real peer needs more).
MAX_ALPN_PROTOCOLS = 32  # browsers offer 2-3; RFC 7301 names are 1-255 bytes
MAX_ALPN_NAME_BYTES = 255
MAX_CODE_POINTS = 64  # cipher suites, groups, signature schemes: IANA lists are shorter
MAX_KEY_SHARE_GROUPS = 4
MAX_NAME_BYTES = 255  # credential and trust bundle names
MAX_HOST_NAME_BYTES = 253  # RFC 1035: 255 octets on the wire, 253 as text
# Distinct trust bundles whose TrustStore is kept (least recently used goes first).
TRUST_STORE_CACHE_SIZE = 32

_CLIENT_AUTH = {
    pb.CLIENT_AUTH_UNSPECIFIED: ClientAuth.NONE,
    pb.CLIENT_AUTH_NONE: ClientAuth.NONE,
    pb.CLIENT_AUTH_OPTIONAL: ClientAuth.OPTIONAL,
    pb.CLIENT_AUTH_REQUIRED: ClientAuth.REQUIRED,
}


class InvalidOptions(ValueError):
    """The start options are inconsistent or name something unsupported."""


# An LDH label (RFC 1123 section 2.1, as RFC 6066 section 3 asks of HostName).
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def check_server_name(name: str) -> None:
    """A DNS host name (RFC 6066 section 3): ASCII LDH labels, no trailing dot; raises
    InvalidOptions. An IP literal is refused too ("Literal IPv4 and IPv6 addresses are
    not permitted in HostName"): ClientOptions.expected_ip_address is for those."""
    if len(name) > MAX_HOST_NAME_BYTES:
        raise InvalidOptions(
            f"server_name: at most {MAX_HOST_NAME_BYTES} characters (got {len(name)})"
        )
    if is_ip_literal(name) or is_ip_literal(name.strip("[]")):
        raise InvalidOptions(
            f"server_name: {name!r} is an IP address, not a host name (RFC 6066 section 3 "
            "permits no IP literal in SNI); give it as expected_ip_address to check the "
            "certificate's iPAddress SAN without sending SNI"
        )
    if not name.isascii():
        raise InvalidOptions("server_name: not ASCII (give an internationalized name as A-labels)")
    if name.endswith("."):
        raise InvalidOptions("server_name: a host name has no trailing dot (RFC 6066 section 3)")
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise InvalidOptions(
            "server_name: not a DNS host name (labels of letters, digits and inner hyphens, "
            "1-63 characters, joined by dots)"
        )
    if labels[-1].isdigit():
        raise InvalidOptions("server_name: not a DNS host name (an all-numeric last label)")


# The longest IP literal: an IPv6 address with an embedded IPv4 one.
MAX_IP_LITERAL_LENGTH = 45


def check_expected_ip_address(text: str) -> str:
    """ClientOptions.expected_ip_address as the engine takes it (canonical text); raises
    InvalidOptions naming the field."""
    if len(text) > MAX_IP_LITERAL_LENGTH:
        raise InvalidOptions(
            f"expected_ip_address: at most {MAX_IP_LITERAL_LENGTH} characters (got {len(text)})"
        )
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidOptions(
            f"expected_ip_address: {text!r} is not an IPv4 or IPv6 address (no brackets, "
            "no port; a host name goes in server_name)"
        ) from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise InvalidOptions("expected_ip_address: no zone (a certificate's SAN has none)")
    return str(address)


def _check_list(values: Sequence[object], limit: int, field: str) -> None:
    if len(values) > limit:
        raise InvalidOptions(f"{field}: at most {limit} entries (got {len(values)})")


def _check_alpn(names: Sequence[str]) -> None:
    _check_list(names, MAX_ALPN_PROTOCOLS, "alpn_protocols")
    for name in names:
        if not 0 < len(name.encode()) <= MAX_ALPN_NAME_BYTES:
            raise InvalidOptions(f"alpn_protocols: each name is 1 to {MAX_ALPN_NAME_BYTES} bytes")


def _check_name(value: str, field: str) -> None:
    if len(value.encode()) > MAX_NAME_BYTES:
        raise InvalidOptions(f"{field}: at most {MAX_NAME_BYTES} bytes")


def _alpn(names: Sequence[str]) -> tuple[bytes, ...]:
    try:
        return tuple(name.encode("ascii") for name in names)
    except UnicodeEncodeError:
        raise InvalidOptions("ALPN protocol names must be ASCII") from None


def _code_points(
    values: Sequence[int],
    defaults: tuple[int, ...],
    what: str,
    supported: Collection[int] | None = None,
) -> tuple[int, ...]:
    """`values`, or `defaults` when empty; a value outside `supported` (by default the
    defaults themselves) is refused."""
    if not values:
        return defaults
    allowed = defaults if supported is None else supported
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise InvalidOptions(f"unsupported {what}: {', '.join(hex(v) for v in unknown)}")
    return tuple(values)


_VERSIONS = {ProtocolVersion.TLS1_2: "TLS 1.2", ProtocolVersion.TLS1_3: "TLS 1.3"}


class _Versions(TypedDict):
    min_version: int
    max_version: int


class _Suites(TypedDict):
    cipher_suites: tuple[int, ...]
    tls12_cipher_suites: tuple[int, ...]


class _Schemes(TypedDict):
    signature_schemes: tuple[int, ...]
    tls12_signature_schemes: tuple[int, ...]


def _versions(min_version: int, max_version: int) -> _Versions:
    """The engine's min_version/max_version from the options' (zero: TLS 1.2, TLS 1.3)."""
    low = min_version or ProtocolVersion.TLS1_2
    high = max_version or ProtocolVersion.TLS1_3
    for field, value in (("min_version", low), ("max_version", high)):
        if value not in _VERSIONS:
            # Below TLS 1.2 is refused as "unsupported", not silently raised.
            raise InvalidOptions(
                f"{field}: unsupported version 0x{value:04x} (0x0303 TLS 1.2 or 0x0304 TLS 1.3)"
            )
    if low > high:
        raise InvalidOptions("min_version is above max_version")
    return {"min_version": low, "max_version": high}


def _suites(values: Sequence[int]) -> _Suites:
    """One list of TLS 1.3 and TLS 1.2 suites, split per version; a version the list
    names no suite of keeps its defaults."""
    tls13 = [v for v in values if v in DEFAULT_CIPHER_SUITES]
    # TLS12_SUITES holds the opt-in RSA and DHE_RSA suites too: naming them opts in.
    tls12 = [v for v in values if v in TLS12_SUITES]
    unknown = [v for v in values if v not in DEFAULT_CIPHER_SUITES and v not in tls12]
    if unknown:
        raise InvalidOptions(f"unsupported cipher suites: {', '.join(hex(v) for v in unknown)}")
    return {
        "cipher_suites": tuple(tls13) or DEFAULT_CIPHER_SUITES,
        "tls12_cipher_suites": tuple(tls12) or DEFAULT_TLS12_CIPHER_SUITES,
    }


def _schemes(values: Sequence[int]) -> _Schemes:
    """Signature schemes, the TLS 1.2-only rsa_pkcs1_* ones split off; a list without
    either kind keeps that kind's defaults."""
    both = [v for v in values if v in DEFAULT_SIGNATURE_SCHEMES]
    tls12 = [v for v in values if v in DEFAULT_TLS12_SIGNATURE_SCHEMES]
    unknown = [v for v in values if v not in DEFAULT_SIGNATURE_SCHEMES and v not in tls12]
    if unknown:
        raise InvalidOptions(f"unsupported signature schemes: {', '.join(hex(v) for v in unknown)}")
    return {
        "signature_schemes": tuple(both) or DEFAULT_SIGNATURE_SCHEMES,
        "tls12_signature_schemes": tuple(tls12) or DEFAULT_TLS12_SIGNATURE_SCHEMES,
    }


def _pem_anchors(pem: str, field: str, max_count: int) -> tuple[x509.Certificate, ...]:
    # Counted before parsing, so a PEM of many tiny blocks costs no parse at all.
    if pem.count("-----BEGIN") > max_count:
        raise InvalidOptions(f"{field}: at most {max_count} certificates")
    try:
        anchors = tuple(x509.load_pem_x509_certificates(pem.encode()))
    except (ValueError, x509.InvalidVersion):
        # InvalidVersion is not a ValueError: found by fuzzing (tests/fuzz/corpus/options).
        raise InvalidOptions(f"{field}: trust anchors PEM does not parse") from None
    if len(anchors) > max_count:
        raise InvalidOptions(f"{field}: at most {max_count} certificates")
    return anchors


def _note_sni(server_name: str | None) -> None:
    scope = audit.current()
    if scope is not None:
        scope.sni = server_name


class ConfigFactory:
    """Builds (and briefly caches) engine configs from start options."""

    def __init__(
        self,
        keystore: KeyStore,
        clock: Callable[[], float] = time.monotonic,
        *,
        cache_bytes: int = DEFAULT_CONFIG_CACHE_BYTES,
        max_trust_anchors: int = DEFAULT_MAX_TRUST_ANCHORS,
        max_trust_anchors_bytes: int = DEFAULT_MAX_TRUST_ANCHORS_BYTES,
    ) -> None:
        self._keystore = keystore
        self._clock = clock
        self.cache_bytes = cache_bytes
        self.max_trust_anchors = max_trust_anchors
        self.max_trust_anchors_bytes = max_trust_anchors_bytes
        # key -> (built at, config, estimated bytes); least recently used first.
        self._cache: OrderedDict[bytes, tuple[float, ClientConfig | ServerConfig, int]] = (
            OrderedDict()
        )
        self._cached_bytes = 0
        # Credentials whose signers write the audit trail (audit.py).
        self._audited = audit.AuditedCredentials()
        # sha256 of the anchors' DER -> the one TrustStore for that bundle content.
        self._trust_stores: OrderedDict[bytes, TrustStore] = OrderedDict()

    def trust_store(self, anchors: tuple[x509.Certificate, ...]) -> TrustStore | None:
        """The shared TrustStore for exactly these anchors (None: no anchors, nothing to share)."""
        if not anchors:
            return None
        digest = hashlib.sha256()
        for anchor in anchors:
            der = anchor.public_bytes(Encoding.DER)
            digest.update(len(der).to_bytes(4, "big") + der)
        key = digest.digest()
        store = self._trust_stores.get(key)
        if store is not None:
            self._trust_stores.move_to_end(key)
            return store
        store = TrustStore(anchors)
        self._trust_stores[key] = store
        if len(self._trust_stores) > TRUST_STORE_CACHE_SIZE:
            self._trust_stores.popitem(last=False)
        return store

    def _cached(
        self, key: bytes, build: Callable[[], ClientConfig | ServerConfig]
    ) -> ClientConfig | ServerConfig:
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < CONFIG_CACHE_SECONDS:
            self._cache.move_to_end(key)
            return hit[1]
        config = build()
        if hit is not None:
            self._drop(key)
        cost = CONFIG_ENTRY_OVERHEAD + CONFIG_BYTES_PER_OPTION_BYTE * len(key)
        # Stale entries are useless (never served again): they go first, then the
        # least recently used until the new entry fits.
        while self._cache:
            oldest, (built, _, _) = next(iter(self._cache.items()))
            if now - built < CONFIG_CACHE_SECONDS and self._cached_bytes + cost <= self.cache_bytes:
                break
            self._drop(oldest)
        if cost <= self.cache_bytes:
            self._cache[key] = (now, config, cost)
            self._cached_bytes += cost
        return config

    def _drop(self, key: bytes) -> None:
        entry = self._cache.pop(key, None)
        if entry is not None:
            self._cached_bytes -= entry[2]

    @property
    def cached_bytes(self) -> int:
        """The cache's estimated size, which never passes cache_bytes."""
        return self._cached_bytes

    def _check_anchors_pem(self, pem: str, field: str) -> None:
        if len(pem) > self.max_trust_anchors_bytes:
            raise InvalidOptions(f"{field}: at most {self.max_trust_anchors_bytes} bytes")

    def check_client(self, options: pb.ClientOptions) -> None:
        """Every field within its bound; raises InvalidOptions naming the field."""
        if options.server_name:
            check_server_name(options.server_name)
        if options.expected_ip_address:
            if options.server_name:
                raise InvalidOptions(
                    "expected_ip_address: give it or server_name, not both (an address "
                    "sends no SNI)"
                )
            check_expected_ip_address(options.expected_ip_address)
        _check_alpn(options.alpn_protocols)
        _check_name(options.credential, "credential")
        _check_name(options.trust_bundle, "trust_bundle")
        self._check_anchors_pem(options.trust_anchors_pem, "trust_anchors_pem")
        _check_list(options.cipher_suites, MAX_CODE_POINTS, "cipher_suites")
        _check_list(options.groups, MAX_CODE_POINTS, "groups")
        _check_list(options.key_share_groups, MAX_KEY_SHARE_GROUPS, "key_share_groups")
        _check_list(options.signature_schemes, MAX_CODE_POINTS, "signature_schemes")

    def check_server(self, options: pb.ServerOptions) -> None:
        """Every field within its bound; raises InvalidOptions naming the field."""
        _check_name(options.credential, "credential")
        _check_alpn(options.alpn_protocols)
        _check_name(options.client_trust_bundle, "client_trust_bundle")
        self._check_anchors_pem(options.client_trust_anchors_pem, "client_trust_anchors_pem")
        _check_list(options.cipher_suites, MAX_CODE_POINTS, "cipher_suites")
        _check_list(options.groups, MAX_CODE_POINTS, "groups")
        _check_list(options.signature_schemes, MAX_CODE_POINTS, "signature_schemes")

    def client(self, options: pb.ClientOptions, principal: Principal) -> ClientConfig:
        self.check_client(options)
        self._authorize_client(options, principal)
        key = b"c" + options.SerializeToString(deterministic=True)
        config = self._cached(key, lambda: self._build_client(options))
        assert isinstance(config, ClientConfig)
        return config

    def server(self, options: pb.ServerOptions, principal: Principal) -> ServerConfig:
        self.check_server(options)
        self._authorize_server(options, principal)
        # The selector answers for this principal, so the config is per principal.
        # (its grant names: a Unix caller's group widens what it may pick).
        who = "\0".join(principal.grant_names()).encode()
        key = b"s" + who + b"\0\0" + options.SerializeToString(deterministic=True)
        config = self._cached(key, lambda: self._build_server(options, principal))
        assert isinstance(config, ServerConfig)
        return config

    def authorize(self, options: pb.ClientOptions | pb.ServerOptions, principal: Principal) -> None:
        """The grants `options` need, checked as of now (a step of a session that went on
        live): KeyNotFound, AccessDenied or KeystoreUnavailable, as client() and server()."""
        if isinstance(options, pb.ClientOptions):
            self._authorize_client(options, principal)
        else:
            self._authorize_server(options, principal)

    # Authorization: existence first (KeyNotFound), then the policy (AccessDenied).

    def _authorize_credential(self, principal: Principal, name: str, role: Role) -> None:
        self._keystore.credential(name)
        self._keystore.policy().check_credential(principal, name, role)

    def _authorize_bundle(self, principal: Principal, name: str) -> None:
        self._keystore.trust_bundle(name)
        self._keystore.policy().check_trust_bundle(principal, name)

    def _authorize_client(self, options: pb.ClientOptions, principal: Principal) -> None:
        if options.credential:
            self._authorize_credential(principal, options.credential, Role.CLIENT)
        trust = options.WhichOneof("trust")
        if not options.insecure_skip_verify and trust != "trust_anchors_pem":
            bundle = options.trust_bundle if trust == "trust_bundle" else DEFAULT_TRUST_BUNDLE
            self._authorize_bundle(principal, bundle)

    def _authorize_server(self, options: pb.ServerOptions, principal: Principal) -> None:
        if options.credential:
            self._authorize_credential(principal, options.credential, Role.SERVER)
        elif not self._keystore.policy().credential_names(principal, Role.SERVER):
            # Refused now rather than as a handshake that finds no certificate later.
            raise AccessDenied(f"{principal} may not use any credential in the server role")
        trust = options.WhichOneof("client_trust")
        if trust == "client_trust_bundle":
            self._authorize_bundle(principal, options.client_trust_bundle)
        elif trust is None and _CLIENT_AUTH.get(options.client_auth) not in (None, ClientAuth.NONE):
            self._authorize_bundle(principal, DEFAULT_TRUST_BUNDLE)

    def _build_client(self, options: pb.ClientOptions) -> ClientConfig:
        keystore = self._keystore
        trust = options.WhichOneof("trust")
        anchors: tuple[x509.Certificate, ...] = ()
        if not options.insecure_skip_verify:
            if trust == "trust_anchors_pem":
                anchors = _pem_anchors(
                    options.trust_anchors_pem, "trust_anchors_pem", self.max_trust_anchors
                )
            else:
                bundle = options.trust_bundle if trust == "trust_bundle" else DEFAULT_TRUST_BUNDLE
                anchors = keystore.trust_bundle(bundle)
        credential = (
            self._audited(options.credential, keystore.credential(options.credential))
            if options.credential
            else None
        )
        groups = _code_points(options.groups, DEFAULT_GROUPS, "groups", SUPPORTED_GROUPS)
        key_share_groups = (
            tuple(options.key_share_groups)
            or tuple(g for g in DEFAULT_KEY_SHARE_GROUPS if g in groups)
            or groups[:1]
        )
        try:
            return ClientConfig(
                **_versions(options.min_version, options.max_version),
                require_extended_master_secret=not options.allow_legacy_master_secret,
                # An IP server_name is checked against iPAddress SANs, never sent as SNI.
                server_name=options.server_name
                or (
                    check_expected_ip_address(options.expected_ip_address)
                    if options.expected_ip_address
                    else None
                ),
                trust_anchors=anchors,
                shared_trust_store=self.trust_store(anchors),
                verify_peer=not options.insecure_skip_verify,
                check_hostname=not options.skip_hostname_check,
                alpn_protocols=_alpn(options.alpn_protocols),
                **_suites(options.cipher_suites),
                supported_groups=groups,
                key_share_groups=key_share_groups,
                **_schemes(options.signature_schemes),
                credential=credential,
                keylog=options.keylog,
            )
        except ValueError as error:
            raise InvalidOptions(str(error)) from None

    def _credential_selector(
        self, name: str, principal: Principal
    ) -> Callable[[str | None, Sequence[int]], Credential | None]:
        """What picks the server's credential at the ClientHello: the named one (its grant
        asked again then), or by SNI among those the principal may use."""
        keystore = self._keystore
        if name:
            keystore.credential(name)  # an unknown name is NOT_FOUND now, not a failed handshake

            def by_name(server_name: str | None, schemes: Sequence[int]) -> Credential | None:
                # Asked again at the ClientHello: a grant revoked since the start counts.
                _note_sni(server_name)
                if not keystore.policy().allows_credential(principal, name, Role.SERVER):
                    # The service's refusal, not the peer's fault nor a name that matched
                    # nothing (unrecognized_name): internal_error, as when the start is refused.
                    raise InternalError(f"{principal} may no longer use the credential {name!r}")
                return self._audited(name, keystore.credential(name))

            return by_name

        def by_sni(server_name: str | None, schemes: Sequence[int]) -> Credential | None:
            _note_sni(server_name)
            policy = keystore.policy()
            chosen = keystore.select(
                server_name,
                schemes,
                lambda candidate: policy.allows_credential(principal, candidate, Role.SERVER),
            )
            if chosen is None:
                return None
            # select() answers with the credential, not its name: the audit line
            # needs the name, and the keystore holds few credentials.
            for candidate in keystore.names():
                if keystore.credential(candidate) is chosen:
                    return self._audited(candidate, chosen)
            return self._audited("(unnamed)", chosen)

        return by_sni

    def _build_server(self, options: pb.ServerOptions, principal: Principal) -> ServerConfig:
        keystore = self._keystore
        selector = self._credential_selector(options.credential, principal)
        client_auth = _CLIENT_AUTH.get(options.client_auth)
        if client_auth is None:
            raise InvalidOptions("unknown client_auth value")
        anchors: tuple[x509.Certificate, ...] = ()
        trust = options.WhichOneof("client_trust")
        if trust == "client_trust_anchors_pem":
            anchors = _pem_anchors(
                options.client_trust_anchors_pem, "client_trust_anchors_pem", self.max_trust_anchors
            )
        elif trust == "client_trust_bundle":
            anchors = keystore.trust_bundle(options.client_trust_bundle)
        elif client_auth is not ClientAuth.NONE:
            anchors = keystore.trust_bundle(DEFAULT_TRUST_BUNDLE)
        try:
            return ServerConfig(
                **_versions(options.min_version, options.max_version),
                require_extended_master_secret=not options.allow_legacy_master_secret,
                credential_selector=selector,
                alpn_protocols=_alpn(options.alpn_protocols),
                **_suites(options.cipher_suites),
                supported_groups=_code_points(
                    options.groups, DEFAULT_GROUPS, "groups", SUPPORTED_GROUPS
                ),
                **_schemes(options.signature_schemes),
                client_auth=client_auth,
                client_trust_anchors=anchors,
                shared_client_trust_store=self.trust_store(anchors),
                keylog=options.keylog,
            )
        except ValueError as error:
            raise InvalidOptions(str(error)) from None
