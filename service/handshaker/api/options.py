"""Turns the contract's ClientOptions and ServerOptions into checked engine configs.

Configs are cached by the options' bytes for a short while, so the hot path
does not rebuild and re-validate them on every handshake; the short lifetime
lets a rotated credential or trust bundle take effect within a second. The
TrustStore (verifier store and verified-chain cache) outlives those entries: one
per distinct set of anchors, keyed by their DER, so a rebuilt config keeps its
bundle's verdicts and a changed bundle gets a fresh store. A bad option raises
InvalidOptions (INVALID_ARGUMENT); an unknown key or bundle KeyNotFound (NOT_FOUND).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from handshaker.keystore import DEFAULT_TRUST_BUNDLE, KeyStore
from handshaker.tls import ClientAuth, ClientConfig, Credential, ProtocolVersion, ServerConfig
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

    def client(self, options: pb.ClientOptions) -> ClientConfig:
        key = b"c" + options.SerializeToString(deterministic=True)
        config = self._cached(key, lambda: self._build_client(options))
        assert isinstance(config, ClientConfig)
        return config

    def server(self, options: pb.ServerOptions) -> ServerConfig:
        key = b"s" + options.SerializeToString(deterministic=True)
        config = self._cached(key, lambda: self._build_server(options))
        assert isinstance(config, ServerConfig)
        return config

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
                # TLS 1.3 only through the service until the proto and the client
                # libraries carry TLS 1.2 keys (issue 10, items 5-service, 6).
                min_version=ProtocolVersion.TLS1_3,
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

    def _build_server(self, options: pb.ServerOptions) -> ServerConfig:
        keystore = self._keystore
        name = options.credential
        selector: Callable[[str | None, Sequence[int]], Credential | None]
        if name:
            keystore.credential(name)  # an unknown name is NOT_FOUND now, not a failed handshake

            def by_name(server_name: str | None, schemes: Sequence[int]) -> Credential | None:
                return keystore.credential(name)

            selector = by_name
        else:
            selector = keystore.select
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
                # TLS 1.3 only through the service for now (see ClientConfig above).
                min_version=ProtocolVersion.TLS1_3,
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
