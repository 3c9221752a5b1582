"""Turns the contract's ClientOptions and ServerOptions into checked engine configs.

Configs are cached by the options' bytes for a short while, so the hot path
does not rebuild and re-validate them on every handshake; the short lifetime
lets a rotated credential or trust bundle take effect within a second. The
TrustStore (verifier store and verified-chain cache) outlives those entries: one
per distinct set of anchors, keyed by their DER, so a rebuilt config keeps its
bundle's verdicts and a changed bundle gets a fresh store. A bad option raises
InvalidOptions (INVALID_ARGUMENT); an unknown key or bundle KeyNotFound (NOT_FOUND).

Authorization is checked on every start, before the cache, against the keystore's
current policy: a credential or trust bundle the caller's principal is not granted
raises AccessDenied (PERMISSION_DENIED). A name that does not exist is NOT_FOUND
first, as for every caller (names are not secrets; keys are). Server-role selection
by SNI only considers the credentials the caller may serve with, decided at the
ClientHello against the policy of that moment.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from handshaker.keystore import (
    DEFAULT_TRUST_BUNDLE,
    AccessDenied,
    KeyStore,
    Principal,
    Role,
)
from handshaker.tls import ClientAuth, ClientConfig, Credential, ServerConfig
from handshaker.tls.certificates import TrustStore
from handshaker.tls.config import (
    DEFAULT_CIPHER_SUITES,
    DEFAULT_GROUPS,
    DEFAULT_KEY_SHARE_GROUPS,
    DEFAULT_SIGNATURE_SCHEMES,
)
from handshaker.tls.groups import SUPPORTED_GROUPS
from handshaker.v1 import handshaker_pb2 as pb

CONFIG_CACHE_SECONDS = 1.0
CONFIG_CACHE_SIZE = 256
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


def _pem_anchors(pem: str) -> tuple[x509.Certificate, ...]:
    try:
        anchors = tuple(x509.load_pem_x509_certificates(pem.encode()))
    except ValueError:
        raise InvalidOptions("trust anchors PEM does not parse") from None
    return anchors


class ConfigFactory:
    """Builds (and briefly caches) engine configs from start options."""

    def __init__(self, keystore: KeyStore, clock: Callable[[], float] = time.monotonic) -> None:
        self._keystore = keystore
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, ClientConfig | ServerConfig]] = OrderedDict()
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
        self._cache[key] = (now, config)
        if len(self._cache) > CONFIG_CACHE_SIZE:
            self._cache.popitem(last=False)
        return config

    def client(self, options: pb.ClientOptions, principal: Principal) -> ClientConfig:
        self._authorize_client(options, principal)
        key = b"c" + options.SerializeToString(deterministic=True)
        config = self._cached(key, lambda: self._build_client(options))
        assert isinstance(config, ClientConfig)
        return config

    def server(self, options: pb.ServerOptions, principal: Principal) -> ServerConfig:
        self._authorize_server(options, principal)
        # The selector answers for this principal, so the config is per principal.
        key = b"s" + str(principal).encode() + b"\0" + options.SerializeToString(deterministic=True)
        config = self._cached(key, lambda: self._build_server(options, principal))
        assert isinstance(config, ServerConfig)
        return config

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
                anchors = _pem_anchors(options.trust_anchors_pem)
            else:
                bundle = options.trust_bundle if trust == "trust_bundle" else DEFAULT_TRUST_BUNDLE
                anchors = keystore.trust_bundle(bundle)
        credential = keystore.credential(options.credential) if options.credential else None
        groups = _code_points(options.groups, DEFAULT_GROUPS, "groups", SUPPORTED_GROUPS)
        key_share_groups = (
            tuple(options.key_share_groups)
            or tuple(g for g in DEFAULT_KEY_SHARE_GROUPS if g in groups)
            or groups[:1]
        )
        try:
            return ClientConfig(
                server_name=options.server_name or None,
                trust_anchors=anchors,
                shared_trust_store=self.trust_store(anchors),
                verify_peer=not options.insecure_skip_verify,
                check_hostname=not options.skip_hostname_check,
                alpn_protocols=_alpn(options.alpn_protocols),
                cipher_suites=_code_points(
                    options.cipher_suites, DEFAULT_CIPHER_SUITES, "cipher suites"
                ),
                supported_groups=groups,
                key_share_groups=key_share_groups,
                signature_schemes=_code_points(
                    options.signature_schemes, DEFAULT_SIGNATURE_SCHEMES, "signature schemes"
                ),
                credential=credential,
                keylog=options.keylog,
            )
        except ValueError as error:
            raise InvalidOptions(str(error)) from None

    def _build_server(self, options: pb.ServerOptions, principal: Principal) -> ServerConfig:
        keystore = self._keystore
        name = options.credential
        selector: Callable[[str | None, Sequence[int]], Credential | None]
        if name:
            keystore.credential(name)  # an unknown name is NOT_FOUND now, not a failed handshake

            def by_name(server_name: str | None, schemes: Sequence[int]) -> Credential | None:
                # Asked again at the ClientHello: a grant revoked since the start counts.
                if not keystore.policy().allows_credential(principal, name, Role.SERVER):
                    return None
                return keystore.credential(name)

            selector = by_name
        else:

            def by_sni(server_name: str | None, schemes: Sequence[int]) -> Credential | None:
                policy = keystore.policy()
                return keystore.select(
                    server_name,
                    schemes,
                    lambda candidate: policy.allows_credential(principal, candidate, Role.SERVER),
                )

            selector = by_sni
        client_auth = _CLIENT_AUTH.get(options.client_auth)
        if client_auth is None:
            raise InvalidOptions("unknown client_auth value")
        anchors: tuple[x509.Certificate, ...] = ()
        trust = options.WhichOneof("client_trust")
        if trust == "client_trust_anchors_pem":
            anchors = _pem_anchors(options.client_trust_anchors_pem)
        elif trust == "client_trust_bundle":
            anchors = keystore.trust_bundle(options.client_trust_bundle)
        elif client_auth is not ClientAuth.NONE:
            anchors = keystore.trust_bundle(DEFAULT_TRUST_BUNDLE)
        try:
            return ServerConfig(
                credential_selector=selector,
                alpn_protocols=_alpn(options.alpn_protocols),
                cipher_suites=_code_points(
                    options.cipher_suites, DEFAULT_CIPHER_SUITES, "cipher suites"
                ),
                supported_groups=_code_points(
                    options.groups, DEFAULT_GROUPS, "groups", SUPPORTED_GROUPS
                ),
                signature_schemes=_code_points(
                    options.signature_schemes, DEFAULT_SIGNATURE_SCHEMES, "signature schemes"
                ),
                client_auth=client_auth,
                client_trust_anchors=anchors,
                shared_client_trust_store=self.trust_store(anchors),
                keylog=options.keylog,
            )
        except ValueError as error:
            raise InvalidOptions(str(error)) from None
