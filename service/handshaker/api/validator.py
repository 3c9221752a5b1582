"""The CertificateValidator gRPC servicer: a verdict on a peer's chain, for keyless callers.

The check is the engine's (tls/certificates.py, on cryptography.x509.verification),
against one of the keystore's trust bundles ("default" when none is named; "system"
is the host's CA store) through the same shared TrustStore per bundle content the
handshakes use. A chain that does not validate is an OK answer with verdict INVALID,
the TLS alert a stack should send and the reason; gRPC statuses are for misuse.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from handshaker_wire.v1 import keyless_pb2 as kpb
from handshaker_wire.v1 import keyless_pb2_grpc as kpb_grpc

from handshaker.keystore import (
    DEFAULT_TRUST_BUNDLE,
    KeyNotFound,
    KeyStore,
    KeystoreUnavailable,
    Principal,
)
from handshaker.keystore.principals import check_dns_name, check_spiffe_id
from handshaker.tls.certificates import TrustStore
from handshaker.tls.errors import AlertError

from . import audit
from .identity import CallerIdentity, Unauthenticated

log = logging.getLogger("handshaker.api")

# What one request may carry: BoringSSL caps a peer's certificate list at 100 KiB.
MAX_CHAIN_CERTIFICATES = 16
MAX_CHAIN_BYTES = 100 << 10
MAX_IDENTITY_BYTES = 2048
MAX_BUNDLE_NAME = 128

Identity = x509.DNSName | x509.IPAddress | x509.UniformResourceIdentifier


class CertificateValidatorServicer(kpb_grpc.CertificateValidatorServicer):
    def __init__(
        self,
        keystore: KeyStore,
        trust_store: Callable[[tuple[x509.Certificate, ...]], TrustStore | None],
        identity: CallerIdentity | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keystore = keystore
        self._trust_store = trust_store
        self._identity = identity if identity is not None else CallerIdentity()
        self._clock = clock

    async def ValidateChain(
        self,
        request: kpb.ValidateChainRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> kpb.ValidateChainResponse:
        audit.rpc_peer.set(audit.peer_from_metadata(context.invocation_metadata()))
        try:
            principal = self._identity(context)
            chain, server, identity = _parse(request)
            store = self._store(principal, request.trust_bundle or DEFAULT_TRUST_BUNDLE)
            now = self._now(request)
        except Unauthenticated as error:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(error))
            raise
        except _Misuse as misuse:
            await context.abort(misuse.code, misuse.message)
            raise
        if store is None:
            return kpb.ValidateChainResponse(
                verdict=kpb.VERDICT_INVALID, alert=48, reason="the trust bundle has no anchors"
            )
        try:
            path = store.verified_path(chain, server=server, identity=identity, now=now)
        except AlertError as error:
            return kpb.ValidateChainResponse(
                verdict=kpb.VERDICT_INVALID, alert=int(error.description), reason=error.reason
            )
        return kpb.ValidateChainResponse(
            verdict=kpb.VERDICT_VALID,
            verified_path=[certificate.public_bytes(Encoding.DER) for certificate in path],
        )

    def _store(self, principal: Principal, name: str) -> TrustStore | None:
        if len(name) > MAX_BUNDLE_NAME:
            raise _Misuse(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"trust_bundle: at most {MAX_BUNDLE_NAME} characters",
            )
        try:
            anchors = self._keystore.trust_bundle(name)
            allowed = self._keystore.policy().allows_trust_bundle(principal, name)
        except KeyNotFound as error:
            raise _Misuse(grpc.StatusCode.NOT_FOUND, f"trust_bundle: {error}") from None
        except KeystoreUnavailable as error:
            raise _Misuse(grpc.StatusCode.UNAVAILABLE, str(error)) from None
        if not allowed:
            log.info(
                "permission denied",
                extra={"fields": {"caller": str(principal), "trust_bundle": name}},
            )
            raise _Misuse(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{principal} may not use the trust bundle {name!r}",
            )
        return self._trust_store(anchors)

    def _now(self, request: kpb.ValidateChainRequest) -> float:
        if not request.HasField("validation_time"):
            return self._clock()
        stamp = request.validation_time
        # Timestamp's own range: 0001-01-01 to 9999-12-31.
        if not -62135596800 <= stamp.seconds <= 253402300799 or not 0 <= stamp.nanos < 10**9:
            raise _Misuse(grpc.StatusCode.INVALID_ARGUMENT, "validation_time: out of range")
        return stamp.seconds + stamp.nanos / 1e9


class _Misuse(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _parse(request: kpb.ValidateChainRequest) -> tuple[tuple[bytes, ...], bool, Identity | None]:
    chain = tuple(request.certificate_chain)
    if not chain:
        raise _Misuse(grpc.StatusCode.INVALID_ARGUMENT, "certificate_chain: empty")
    if len(chain) > MAX_CHAIN_CERTIFICATES or sum(map(len, chain)) > MAX_CHAIN_BYTES:
        raise _Misuse(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"certificate_chain: at most {MAX_CHAIN_CERTIFICATES} certificates and "
            f"{MAX_CHAIN_BYTES} bytes",
        )
    if request.purpose == kpb.PURPOSE_SERVER_AUTH:
        server = True
    elif request.purpose == kpb.PURPOSE_CLIENT_AUTH:
        server = False
    else:
        raise _Misuse(
            grpc.StatusCode.INVALID_ARGUMENT,
            "purpose: PURPOSE_SERVER_AUTH or PURPOSE_CLIENT_AUTH",
        )
    identity = _identity(request)
    if server and identity is None:
        raise _Misuse(
            grpc.StatusCode.INVALID_ARGUMENT,
            "expected_identity: a server's chain is checked against a name; "
            "set dns_name, ip_address or spiffe_id",
        )
    return chain, server, identity


def _identity(request: kpb.ValidateChainRequest) -> Identity | None:
    which = request.WhichOneof("expected_identity")
    if which is None:
        return None
    value: str = getattr(request, which)
    if len(value.encode()) > MAX_IDENTITY_BYTES:
        raise _Misuse(grpc.StatusCode.INVALID_ARGUMENT, f"{which}: at most 2048 bytes")
    try:
        if which == "dns_name":
            return x509.DNSName(check_dns_name(value.rstrip(".")))
        if which == "ip_address":
            return x509.IPAddress(ipaddress.ip_address(value))
        return x509.UniformResourceIdentifier(check_spiffe_id(value))
    except ValueError as error:
        raise _Misuse(grpc.StatusCode.INVALID_ARGUMENT, f"{which}: {error}") from None
