"""The Handshaker gRPC servicer: proto <-> engine translation and status codes.

Thin by design: TLS decisions are the engine's; this module only finds the
session, feeds it, and turns what came out into a HandshakeStep. A TLS failure
is an OK response with state FAILED; gRPC status codes report misuse (see the
table in protos/handshaker/v1/handshaker.proto). Nothing logged here carries
key material.

Bounds (issue 9): a handshake has an absolute deadline from its start, whatever
bytes arrive (DEADLINE_EXCEEDED); the bytes the engine holds for a session before
the handshake completes are capped (past it the handshake fails in band with
illegal_parameter); a Multiplex message carries at most max_frames frames (the
extras get INVALID_ARGUMENT each) and the loop yields to other RPCs every few frames;
a Multiplex stream with no live connection ends after the idle timeout, and each
open stream counts against a per-caller cap. Every private-key use is written to
the audit trail (audit.py) once the step that used the key has its outcome.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import grpc
from cryptography import x509
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc

from handshaker.keystore import (
    AccessDenied,
    KeyNotFound,
    KeyOperationError,
    KeystoreUnavailable,
    Principal,
    perform,
)
from handshaker.sessions import (
    MemorySessionStore,
    Session,
    SessionConflict,
    SessionLimitReached,
    SessionNotFound,
    SessionStore,
    SessionStoreUnavailable,
)
from handshaker.sessions.base import Role
from handshaker.tls import (
    AlertDescription,
    ClientConfig,
    ClientConnection,
    ConnectionState,
    HandshakeComplete,
    HandshakeFailed,
    HandshakeResult,
    ProtocolVersion,
    ServerConfig,
    ServerConnection,
    TrafficKeys,
)
from handshaker.tls.key_schedule import CipherSuiteParams
from handshaker.tls.snapshot import SnapshotError

from . import audit
from .identity import CallerIdentity, Unauthenticated
from .options import ConfigFactory, InvalidOptions
from .stats import HandshakeStats

if TYPE_CHECKING:
    from .metrics import ServiceMetrics

log = logging.getLogger("handshaker.api")

# One request's handshake bytes; a whole flight with a long chain is far smaller.
MAX_IN_BYTES = 1 << 20
MAX_EXPORT_LENGTH = 16384
# The PRF labels of RFC 5246 and RFC 7627, which an RFC 5705 exporter must not reuse.
TLS12_RESERVED_LABELS = frozenset(
    {
        b"client finished",
        b"server finished",
        b"master secret",
        b"key expansion",
        b"extended master secret",
    }
)
# Defaults of the bounds (serve flags say the same).
DEFAULT_HANDSHAKE_TIMEOUT = 30.0
# Partial records and an unfinished handshake message; a flight with a long chain
# is far smaller (BoringSSL caps a certificate list at 100 KiB).
DEFAULT_MAX_BUFFERED_BYTES = 64 << 10
# What one Multiplex message may carry: terminate's batches stay below it.
DEFAULT_MAX_FRAMES = 256
# Frames handled between two yields to the event loop, so one big message shares it.
FRAMES_PER_YIELD = 16


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_Servicer = TypeVar("_Servicer")
_Handler = Callable[
    [_Servicer, _Request, grpc.aio.ServicerContext[object, object]], Awaitable[_Response]
]


def _unary(
    handler: _Handler[_Servicer, _Request, _Response],
) -> _Handler[_Servicer, _Request, _Response]:
    """Answer a unary RPC's misuse (_Abort) with its gRPC status, in one place."""

    @functools.wraps(handler)
    async def wrapper(
        self: _Servicer, request: _Request, context: grpc.aio.ServicerContext[object, object]
    ) -> _Response:
        try:
            return await handler(self, request, context)
        except _Abort as abort:
            await context.abort(abort.code, abort.message)
            raise  # context.abort raises; this line only satisfies the type checker

    return wrapper


def _fill_peer_identity(identity: pb.PeerIdentity, chain_der: tuple[bytes, ...]) -> None:
    if not chain_der:
        return
    identity.chain_der.extend(chain_der)
    try:
        leaf = x509.load_der_x509_certificate(chain_der[0])
        identity.subject = leaf.subject.rfc4514_string()
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return
    identity.dns_sans.extend(san.get_values_for_type(x509.DNSName))
    identity.uri_sans.extend(san.get_values_for_type(x509.UniformResourceIdentifier))
    identity.ip_sans.extend(str(ip) for ip in san.get_values_for_type(x509.IPAddress))


def _fill_traffic_keys(target: pb.TrafficKeys, keys: TrafficKeys) -> None:
    target.secret = keys.secret
    target.key = keys.key
    target.iv = keys.iv
    target.sequence_number = keys.sequence_number


def _alpn(result: HandshakeResult) -> str:
    return result.alpn_protocol.decode("ascii", "replace") if result.alpn_protocol else ""


# The response messages are filled in place: on the hot path each byte string is
# copied into its message once, not again through constructors and CopyFrom.


def _fill_summary(summary: pb.HandshakeSummary, result: HandshakeResult) -> None:
    summary.version = result.version
    summary.cipher_suite = result.cipher_suite
    summary.group = result.group
    summary.alpn_protocol = _alpn(result)
    summary.server_name = result.server_name or ""
    summary.resumed = result.resumed
    summary.hello_retry = result.hello_retry
    summary.signature_scheme = result.signature_scheme or 0
    summary.peer_signature_scheme = result.peer_signature_scheme or 0
    _fill_peer_identity(summary.peer, result.peer_certificates)


def _fill_session_keys(
    keys: pb.SessionKeys, result: HandshakeResult, peer: pb.PeerIdentity | None = None
) -> None:
    keys.version = result.version
    keys.cipher_suite = result.cipher_suite
    keys.group = result.group
    keys.alpn_protocol = _alpn(result)
    keys.resumed = result.resumed
    keys.server_name = result.server_name or ""
    if peer is not None:
        if peer.chain_der:
            keys.peer.CopyFrom(peer)
    else:
        _fill_peer_identity(keys.peer, result.peer_certificates)
    _fill_traffic_keys(keys.read, result.read)
    _fill_traffic_keys(keys.write, result.write)
    keys.exporter_master_secret = result.exporter_master_secret
    if result.version == ProtocolVersion.TLS1_2:
        tls12 = keys.tls12
        tls12.master_secret = result.master_secret
        tls12.client_random = result.client_random
        tls12.server_random = result.server_random
        tls12.extended_master_secret = result.extended_master_secret
    keys.keylog.extend(result.keylog)
    keys.peer_record_size_limit = result.peer_record_size_limit
    keys.hello_retry = result.hello_retry
    keys.signature_scheme = result.signature_scheme or 0
    keys.peer_signature_scheme = result.peer_signature_scheme or 0


# Every response that carries a step (and the keys once COMPLETE).
_StepResponse = (
    pb.StartClientResponse | pb.StartServerResponse | pb.FeedResponse | pb.HandshakeResponse
)


class HandshakerServicer(pb_grpc.HandshakerServicer):
    # Set by the server when --metrics-listen is given (metrics.py).
    metrics: ServiceMetrics | None = None

    def __init__(
        self,
        sessions: SessionStore,
        configs: ConfigFactory,
        *,
        idle_timeout: float = 10.0,
        identity: CallerIdentity | None = None,
        streams: MemorySessionStore | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        max_frames: int = DEFAULT_MAX_FRAMES,
        max_streams_per_caller: int | None = None,
    ) -> None:
        # The unary API's store (memory or shared); streams always live in memory here.
        self._sessions = sessions
        # A live-connection store's save does nothing: its hot path skips the call.
        self._saves = sessions.keeps_snapshots
        if streams is None:
            if not isinstance(sessions, MemorySessionStore):
                raise TypeError("a shared session store needs a MemorySessionStore for streams")
            streams = sessions
        self._streams = streams
        self._configs = configs
        self._identity = identity if identity is not None else CallerIdentity()
        self._idle_timeout = idle_timeout
        self._handshake_timeout = handshake_timeout
        self._max_buffered = max_buffered_bytes
        self._max_frames = max_frames
        # Multiplex streams count per caller like sessions do, under the same cap.
        if max_streams_per_caller is None:
            max_streams_per_caller = int(getattr(sessions, "max_sessions_per_caller", 1_000))
        self._max_streams = max_streams_per_caller
        # Open Multiplex streams per caller (their cap is --max-sessions-per-caller).
        self._multiplex_streams: Counter[str] = Counter()
        # The audit scope of each session's step in progress (by object: a stream's
        # session is the same object from _feed to _respond).
        self._scopes: dict[int, audit.AuditScope] = {}
        self.stats = HandshakeStats()

    @property
    def identity(self) -> CallerIdentity:
        """Who calls: shared with the keyless services on the same port."""
        return self._identity

    @property
    def configs(self) -> ConfigFactory:
        return self._configs

    # --- shared steps -----------------------------------------------------------------

    def _caller(self, context: grpc.aio.ServicerContext[object, object]) -> Principal:
        # Every RPC asks who calls first: the place to note the peer it reports too.
        audit.rpc_peer.set(audit.peer_from_metadata(context.invocation_metadata()))
        try:
            return self._identity(context)
        except Unauthenticated as error:
            raise _Abort(grpc.StatusCode.UNAUTHENTICATED, str(error)) from None

    def _config(
        self, options: pb.ClientOptions | pb.ServerOptions, principal: Principal
    ) -> ClientConfig | ServerConfig:
        """The engine config for a caller's options: misuse and refusals as statuses."""
        try:
            if isinstance(options, pb.ClientOptions):
                return self._configs.client(options, principal)
            return self._configs.server(options, principal)
        except InvalidOptions as error:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
        except KeyNotFound as error:
            raise _Abort(grpc.StatusCode.NOT_FOUND, str(error)) from None
        except AccessDenied as error:
            log.info(
                "permission denied",
                extra={"fields": {"caller": str(principal), "reason": str(error)}},
            )
            raise _Abort(grpc.StatusCode.PERMISSION_DENIED, str(error)) from None
        except KeystoreUnavailable as error:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, str(error)) from None

    def _new_session(
        self,
        principal: Principal,
        options: pb.ClientOptions | pb.ServerOptions,
        keys_in_response: bool,
    ) -> Session:
        config = self._config(options, principal)
        if isinstance(config, ClientConfig):
            connection: ClientConnection | ServerConnection = ClientConnection(config)
            role = Role.CLIENT
        else:
            connection = ServerConnection(config)
            role = Role.SERVER
        owner = str(principal)
        return Session(
            session_id=secrets.token_urlsafe(16),
            owner=owner,
            role=role,
            connection=connection,
            keys_in_response=keys_in_response,
        )

    def _start(
        self,
        principal: Principal,
        options: pb.ClientOptions | pb.ServerOptions,
        keys_in_response: bool,
    ) -> Session:
        """A stream's session, kept in memory on this replica."""
        session = self._new_session(principal, options, keys_in_response)
        try:
            self._streams.add_now(session)
        except SessionLimitReached as error:
            raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)) from None
        self._log_start(session)
        return session

    async def _start_unary(
        self,
        principal: Principal,
        options: pb.ClientOptions | pb.ServerOptions,
        keys_in_response: bool,
    ) -> Session:
        session = self._new_session(principal, options, keys_in_response)
        if self._saves:
            session.options = options.SerializeToString(deterministic=True)
        try:
            await self._sessions.add(session)
        except SessionLimitReached as error:
            raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)) from None
        except SessionStoreUnavailable as error:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, str(error)) from None
        self._log_start(session)
        return session

    def _log_start(self, session: Session) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "handshake started",
                extra={
                    "fields": {
                        "session": session.session_id[:8],
                        "role": session.role.value,
                        "caller": session.owner,
                    }
                },
            )
        session.started_at = time.monotonic()

    def _feed(self, session: Session, data: bytes) -> ClientConnection | ServerConnection:
        """Give the engine `data`; the step is answered by _respond once no key operation is out."""
        if len(data) > MAX_IN_BYTES:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "in_bytes larger than 1 MiB")
        if session.busy:
            raise _Abort(
                grpc.StatusCode.ABORTED, "another request for this session is still in progress"
            )
        connection = session.connection
        if connection is None or connection.state is not ConnectionState.HANDSHAKING:
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the handshake is {session.state.value.lower()}; it takes no more bytes",
            )
        self._check_deadline(session)
        scope = self._scope(session)
        if data:
            token = audit.enter(scope)
            try:
                connection.receive_data(data)
            finally:
                audit.leave(token)
            self._check_buffered(connection)
        return connection

    def _check_deadline(self, session: Session) -> None:
        """The absolute deadline: trickled bytes keep a session from idling, not from ending."""
        if time.monotonic() - session.started_at > self._handshake_timeout:
            # The session is left to its store's idle expiry: every later request for it
            # gets this answer too.
            raise _Abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the handshake did not complete within {self._handshake_timeout:g} s",
            )

    def _deadline_left(self, session: Session | None, started: float) -> float:
        begun = session.started_at if session is not None else started
        return begun + self._handshake_timeout - time.monotonic()

    def _check_buffered(self, connection: ClientConnection | ServerConnection) -> None:
        held = connection.buffered_bytes
        if held > self._max_buffered and connection.state is ConnectionState.HANDSHAKING:
            connection.abort(
                AlertDescription.ILLEGAL_PARAMETER,
                f"the peer's unfinished handshake data passed {self._max_buffered} bytes",
            )

    def _scope(self, session: Session) -> audit.AuditScope:
        scope = self._scopes.get(id(session))
        if scope is None:
            sni = None
            if isinstance(session.connection, ClientConnection):
                name = session.connection.config.server_name
                # An IP literal is checked against the certificate but never sent as SNI.
                sni = None if name is None or _is_ip_literal(name) else name
            scope = self._scopes[id(session)] = audit.AuditScope(
                principal=session.owner,
                role=session.role.value,
                session=session.session_id[:8],
                peer=session.peer if session.peer is not None else audit.rpc_peer.get(),
                sni=sni,
            )
        return scope

    async def _key_operations(self, session: Session) -> None:
        """Await the private-key operations the handshake waits for; the loop never blocks."""
        connection = session.connection
        assert connection is not None  # _feed found it handshaking
        session.busy = True
        try:
            scope = self._scope(session)
            while (operation := connection.pending_operation) is not None:
                use = audit.KeyUse(operation.key_id, operation.kind.value, operation.scheme)
                scope.uses.append(use)
                token = audit.enter(scope)
                try:
                    result = await perform(operation)
                except KeyOperationError as error:
                    use.ok = False
                    connection.fail_private_key_operation(str(error))
                except asyncio.CancelledError:
                    use.ok = False
                    connection.fail_private_key_operation(
                        "the request was cancelled during a private-key operation"
                    )
                    # No step answers a cancelled request: its uses are written here.
                    audit.flush(self._scopes.pop(id(session), scope), alert=None)
                    raise
                except Exception as error:  # a backend's bug still ends only this handshake
                    use.ok = False
                    connection.fail_private_key_operation(
                        f"keystore: private-key operation failed ({type(error).__name__})"
                    )
                else:
                    connection.complete_private_key_operation(result)
                finally:
                    audit.leave(token)
        finally:
            session.busy = False

    async def _advance(
        self, session: Session, data: bytes, response: _StepResponse, *, with_id: bool = True
    ) -> int:
        """Feed `data`; fill response.step (and response.keys when asked); the new state."""
        connection = self._feed(session, data)
        if connection.pending_operation is not None:
            await self._key_operations(session)
        return self._respond(session, len(data), response, with_id=with_id)

    def _respond(
        self, session: Session, fed: int, response: _StepResponse, *, with_id: bool
    ) -> int:
        connection = session.connection
        assert connection is not None  # _feed found it handshaking
        data_len = fed
        step = response.step
        if with_id:
            step.session_id = session.session_id
        step.out_bytes = connection.data_to_send()
        step.bytes_consumed = data_len
        step.state = pb.HANDSHAKE_STATE_NEED_INPUT
        event = connection.next_event()
        scope = self._scopes.pop(id(session), None)
        if scope is not None and scope.uses:
            if isinstance(event, HandshakeFailed):
                audit.flush(scope, alert=event.alert, reason=event.reason)
            else:
                audit.flush(scope, alert=None)
        if isinstance(event, HandshakeComplete):
            result = event.result
            session.result = result
            step.bytes_consumed = data_len - len(connection.take_unconsumed())
            step.state = pb.HANDSHAKE_STATE_COMPLETE
            _fill_summary(step.result, result)
            if session.keys_in_response:
                _fill_session_keys(response.keys, result, step.result.peer)
            milliseconds = round((time.monotonic() - session.started_at) * 1000, 2)
            self.stats.completed(session.role.value, milliseconds)
            if self.metrics is not None:
                self.metrics.completed(session.role.value, result.version, session.started_at)
            # A line per completed handshake is for debugging; the periodic stats line
            # counts them (at thousands a second, per-handshake lines cost more than TLS).
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "handshake complete",
                    extra={
                        "fields": {
                            "session": session.session_id[:8],
                            "role": session.role.value,
                            "caller": session.owner,
                            "version": hex(result.version),
                            "cipher_suite": hex(result.cipher_suite),
                            "group": hex(result.group),
                            "alpn": _alpn(result),
                            "hello_retry": result.hello_retry,
                            "ms": milliseconds,
                        }
                    },
                )
        elif isinstance(event, HandshakeFailed):
            step.state = pb.HANDSHAKE_STATE_FAILED
            failure = step.failure
            failure.alert = event.alert
            failure.reason = event.reason
            failure.sent_by_peer = event.sent_by_peer
            self.stats.failed(session.role.value)
            if self.metrics is not None:
                self.metrics.failed(session.role.value, event.alert, session.started_at)
            log.info(
                "handshake failed",
                extra={
                    "fields": {
                        "session": session.session_id[:8],
                        "role": session.role.value,
                        "caller": session.owner,
                        "alert": event.alert,
                        "reason": event.reason,
                        "sent_by_peer": event.sent_by_peer,
                    }
                },
            )
        return step.state

    async def _session(self, session_id: str, owner: Principal) -> Session:
        if not session_id:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "session_id is required")
        try:
            # Sessions are keyed by the principal's string form, which is unambiguous.
            session = await self._sessions.load(session_id, str(owner))
        except SessionNotFound:
            raise _Abort(grpc.StatusCode.NOT_FOUND, "no such session") from None
        except SessionStoreUnavailable as error:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, str(error)) from None
        if session.connection is None and session.snapshot:
            session.connection = self._restore(session, owner)
        elif (
            self._saves
            and session.connection is not None
            and session.connection.state is ConnectionState.HANDSHAKING
        ):
            # A shared store's session kept live by this replica since it saved it: the
            # same authorization as a restore (a grant revoked since: PERMISSION_DENIED).
            self._start_config(session, owner)
        return session

    def _start_config(self, session: Session, owner: Principal) -> ClientConfig | ServerConfig:
        """The config of the session's start options for its owner, as of now."""
        try:
            options: pb.ClientOptions | pb.ServerOptions = (
                pb.ClientOptions.FromString(session.options)
                if session.role is Role.CLIENT
                else pb.ServerOptions.FromString(session.options)
            )
            return self._config(options, owner)
        except _Abort as abort:
            if abort.code is grpc.StatusCode.INVALID_ARGUMENT:
                raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, abort.message) from None
            raise

    def _restore(self, session: Session, owner: Principal) -> ClientConnection | ServerConnection:
        """A shared store's snapshot as a live connection, with the config rebuilt from the
        session's start options for its owner (so a grant revoked since is PERMISSION_DENIED,
        a credential removed since NOT_FOUND)."""
        try:
            config = self._start_config(session, owner)
            if isinstance(config, ClientConfig):
                return ClientConnection.restore(session.snapshot, config)
            return ServerConnection.restore(session.snapshot, config)
        except SnapshotError:
            log.warning(
                "session snapshot does not restore",
                extra={"fields": {"session": session.session_id[:8], "caller": session.owner}},
            )
            raise _Abort(grpc.StatusCode.NOT_FOUND, "no such session") from None
        finally:
            session.snapshot = b""

    async def _save(self, session: Session) -> None:
        """Keep the step; the loser of two requests racing on one session gets ABORTED."""
        try:
            await self._sessions.save(session)
        except SessionConflict as error:
            raise _Abort(grpc.StatusCode.ABORTED, str(error)) from None
        except SessionLimitReached as error:
            raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)) from None
        except SessionStoreUnavailable as error:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, str(error)) from None
        except SessionNotFound:
            raise _Abort(grpc.StatusCode.NOT_FOUND, "no such session") from None

    @staticmethod
    async def _fail(context: grpc.aio.ServicerContext[object, object], abort: _Abort) -> None:
        await context.abort(abort.code, abort.message)

    # --- unary RPCs (misuse raises _Abort; the _unary wrapper turns it into a status) -----

    @_unary
    async def StartClient(
        self, request: pb.StartClientRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.StartClientResponse:
        session = await self._start_unary(
            self._caller(context), request.options, request.keys_in_response
        )
        response = pb.StartClientResponse()
        await self._advance(session, b"", response)
        if self._saves:
            await self._save(session)
        return response

    @_unary
    async def StartServer(
        self, request: pb.StartServerRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.StartServerResponse:
        if len(request.in_bytes) > MAX_IN_BYTES:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "in_bytes larger than 1 MiB")
        session = await self._start_unary(
            self._caller(context), request.options, request.keys_in_response
        )
        response = pb.StartServerResponse()
        await self._advance(session, request.in_bytes, response)
        if self._saves:
            await self._save(session)
        return response

    @_unary
    async def Feed(
        self, request: pb.FeedRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.FeedResponse:
        session = await self._session(request.session_id, self._caller(context))
        response = pb.FeedResponse()
        await self._advance(session, request.in_bytes, response)
        if self._saves:
            await self._save(session)
        return response

    @_unary
    async def GetKeys(
        self, request: pb.GetKeysRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.GetKeysResponse:
        session = await self._session(request.session_id, self._caller(context))
        if session.result is None:
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, "the handshake is not complete")
        response = pb.GetKeysResponse()
        _fill_session_keys(response.keys, session.result)
        return response

    @_unary
    async def ExportKeyingMaterial(
        self,
        request: pb.ExportKeyingMaterialRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.ExportKeyingMaterialResponse:
        session = await self._session(request.session_id, self._caller(context))
        result = session.result
        if result is None:
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, "the handshake is not complete")
        if not 1 <= request.length <= MAX_EXPORT_LENGTH:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "length must be 1 to 16384")
        # HkdfLabel.label is <7..255> including the "tls13 " prefix.
        if not 1 <= len(request.label) <= 249:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "label must be 1 to 249 bytes")
        context_value: bytes | None = request.context
        if result.version == ProtocolVersion.TLS1_2:
            # RFC 5705 section 4: the labels the TLS PRF itself uses are not exporters.
            if request.label in TLS12_RESERVED_LABELS:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "label is reserved by TLS 1.2")
            if len(request.context) >= 2**16:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "context must be under 65536 bytes")
            if request.no_context:
                context_value = None
        elif request.length > 255 * CipherSuiteParams.for_suite(result.cipher_suite).hash_len:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "length too large for the hash")
        material = result.export_keying_material(request.label, context_value, request.length)
        return pb.ExportKeyingMaterialResponse(keying_material=material)

    @_unary
    async def Abort(
        self, request: pb.AbortRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.AbortResponse:
        if not request.session_id:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "session_id is required")
        try:
            # Neither loaded nor restored: the store checks the owner as it deletes.
            await self._sessions.discard(request.session_id, str(self._caller(context)))
        except SessionNotFound:
            raise _Abort(grpc.StatusCode.NOT_FOUND, "no such session") from None
        except SessionStoreUnavailable as error:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, str(error)) from None
        log.debug("session aborted", extra={"fields": {"session": request.session_id[:8]}})
        return pb.AbortResponse()

    # --- the stream -----------------------------------------------------------------------

    async def Handshake(
        self,
        request_iterator: AsyncIterator[pb.HandshakeRequest],
        context: grpc.aio.ServicerContext[pb.HandshakeRequest, pb.HandshakeResponse],
    ) -> None:
        # context.read()/write() rather than an async generator over request_iterator:
        # the same messages with fewer layers of awaitables on the hot path.
        session: Session | None = None
        opened = time.monotonic()
        try:
            owner = self._caller(context)  # type: ignore[arg-type]
            while True:
                left = self._deadline_left(session, opened)
                try:
                    # An idle stream is an abandoned handshake: end it like an idle session.
                    # The absolute deadline bounds the wait too, so a silent stream ends
                    # on time, not at its next message. (asyncio.timeout adds a timer,
                    # not a task, to each read.)
                    async with asyncio.timeout(max(0.0, min(self._idle_timeout, left))):
                        request = await context.read()
                except TimeoutError:
                    if self._deadline_left(session, opened) <= 0:
                        raise _Abort(
                            grpc.StatusCode.DEADLINE_EXCEEDED,
                            f"the handshake did not complete within {self._handshake_timeout:g} s",
                        ) from None
                    raise _Abort(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        "no handshake bytes within the idle timeout",
                    ) from None
                if request is grpc.aio.EOF:  # type: ignore[attr-defined]
                    return
                assert isinstance(request, pb.HandshakeRequest)
                start = request.WhichOneof("start")
                if session is None:
                    if start is None:
                        raise _Abort(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            "the first message on a stream must carry client or server options",
                        )
                    options = request.client if start == "client" else request.server
                    session = self._start(owner, options, True)
                    session.peer = audit.peer_from_request(request.peer_address)
                    if start == "client" and request.in_bytes:
                        raise _Abort(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            "a client start carries no in_bytes; the client speaks first",
                        )
                elif start is not None:
                    raise _Abort(
                        grpc.StatusCode.INVALID_ARGUMENT, "only the first message may start"
                    )
                self._streams.touch(session)
                response = pb.HandshakeResponse()
                state = await self._advance(session, request.in_bytes, response, with_id=False)
                await context.write(response)
                if state != pb.HANDSHAKE_STATE_NEED_INPUT:
                    return
        except _Abort as abort:
            await self._fail(context, abort)  # type: ignore[arg-type]
        finally:
            if session is not None:
                self._streams.remove(session.session_id)

    # --- the multiplexed stream -----------------------------------------------------------

    async def Multiplex(
        self,
        request_iterator: AsyncIterator[pb.MultiplexRequest],
        context: grpc.aio.ServicerContext[pb.MultiplexRequest, pb.MultiplexResponse],
    ) -> None:
        try:
            owner = self._caller(context)  # type: ignore[arg-type]
            if self._multiplex_streams[str(owner)] >= self._max_streams:
                raise _Abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"this caller holds {self._max_streams} Multiplex streams",
                )
        except _Abort as abort:
            await self._fail(context, abort)  # type: ignore[arg-type]
            return
        self._multiplex_streams[str(owner)] += 1
        try:
            await self._multiplex(owner, context)
        finally:
            self._multiplex_streams[str(owner)] -= 1
            if self._multiplex_streams[str(owner)] <= 0:
                del self._multiplex_streams[str(owner)]

    async def _multiplex(
        self,
        owner: Principal,
        context: grpc.aio.ServicerContext[pb.MultiplexRequest, pb.MultiplexResponse],
    ) -> None:
        live: dict[int, Session] = {}
        idle = self._idle_timeout
        # Idle and overdue connections are found by a sweep every quarter of the
        # shorter timeout, not by a timer each: one read timeout covers them all.
        period = min(idle, self._handshake_timeout) / 4
        next_sweep = time.monotonic() + period
        # A read is never cancelled (that would break the stream): the sweep waits
        # beside it, and the same read is awaited again after a sweep.
        read: asyncio.Task[object] | None = None
        try:
            while True:
                pending = read
                if pending is None:
                    pending = read = asyncio.create_task(context.read())
                if live:
                    await asyncio.wait((pending,), timeout=max(0.0, next_sweep - time.monotonic()))
                else:
                    # No connection to expire: the stream itself may idle for the idle
                    # timeout (a proxy keeps one open between bursts), then it ends and
                    # stops holding its memory; a client opens a new one when it needs it.
                    done, _ = await asyncio.wait((pending,), timeout=idle)
                    if not done:
                        await context.abort(
                            grpc.StatusCode.DEADLINE_EXCEEDED,
                            "no connection on this Multiplex stream within the idle timeout",
                        )
                request = None
                if pending.done():
                    request, read = pending.result(), None
                    if request is grpc.aio.EOF:  # type: ignore[attr-defined]
                        return
                response = pb.MultiplexResponse()
                results = response.results
                if request is not None:
                    assert isinstance(request, pb.MultiplexRequest)
                    await self._answer_frames(owner, live, request, response)
                now = time.monotonic()
                if now >= next_sweep:
                    next_sweep = now + period
                    for connection_id, session in list(live.items()):
                        if now - session.started_at > self._handshake_timeout:
                            self._end(live, connection_id)
                            _frame_error(
                                results.add(connection_id=connection_id),
                                grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"the handshake did not complete within "
                                f"{self._handshake_timeout:g} s",
                            )
                        elif now - session.last_used > idle:
                            self._end(live, connection_id)
                            _frame_error(
                                results.add(connection_id=connection_id),
                                grpc.StatusCode.DEADLINE_EXCEEDED,
                                "no handshake bytes within the idle timeout",
                            )
                if results:
                    await context.write(response)
        finally:
            if read is not None:
                read.cancel()
            for session in live.values():
                self._streams.remove(session.session_id)

    async def _answer_frames(
        self,
        owner: Principal,
        live: dict[int, Session],
        request: pb.MultiplexRequest,
        response: pb.MultiplexResponse,
    ) -> None:
        """One MultiplexRequest's frames, each answered in `response` (in order)."""
        results = response.results
        waiting: list[tuple[Session, int, pb.ConnectionResult]] = []
        for index, frame in enumerate(request.frames):
            result = results.add()
            if index >= self._max_frames:
                # Refused unread, so the extras cost an answer each, no work.
                result.connection_id = frame.connection_id
                _frame_error(
                    result,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"at most {self._max_frames} frames per Multiplex message",
                )
                continue
            if index and index % FRAMES_PER_YIELD == 0:
                # Let other RPCs run: one message must not hold the loop.
                await asyncio.sleep(0)
            session = self._frame(owner, live, frame, result)
            if session is not None:
                waiting.append((session, len(frame.request.in_bytes), result))
        # Every connection of the message that waits for a key operation (a deferred
        # key: HSM, KMS) waits at once; an inline signer's are done.
        deferred = [
            self._key_operations(w[0])
            for w in waiting
            if w[0].connection is not None and w[0].connection.pending_operation is not None
        ]
        if deferred:
            await asyncio.gather(*deferred)
        for session, fed, result in waiting:
            self._frame_step(live, session, fed, result)

    def _end(self, live: dict[int, Session], connection_id: int) -> None:
        session = live.pop(connection_id, None)
        if session is not None:
            self._streams.remove(session.session_id)

    def _frame(
        self,
        owner: Principal,
        live: dict[int, Session],
        frame: pb.ConnectionFrame,
        result: pb.ConnectionResult,
    ) -> Session | None:
        """Answer one frame of the Multiplex stream in `result`; misuse ends only its own
        connection. A session waiting for a private-key operation is returned instead:
        the caller awaits it and answers with _frame_step."""
        connection_id = result.connection_id = frame.connection_id
        try:
            if connection_id == 0:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "connection_id must be nonzero")
            session = live.get(connection_id)
            if frame.abort:
                self._end(live, connection_id)
                return None
            request = frame.request
            start = request.WhichOneof("start")
            if session is None:
                if start is None:
                    raise _Abort(
                        grpc.StatusCode.NOT_FOUND,
                        "no live connection with this id; a connection's first frame "
                        "must carry client or server options",
                    )
                if start == "client" and request.in_bytes:
                    raise _Abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "a client start carries no in_bytes; the client speaks first",
                    )
                options = request.client if start == "client" else request.server
                session = self._start(owner, options, True)
                # Per connection: one Multiplex stream carries many TLS peers.
                session.peer = audit.peer_from_request(request.peer_address)
                live[connection_id] = session
            elif start is not None:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "this connection has started; only its first frame may carry options",
                )
            elif time.monotonic() - session.last_used > self._idle_timeout:
                raise _Abort(
                    grpc.StatusCode.DEADLINE_EXCEEDED, "no handshake bytes within the idle timeout"
                )
            else:
                self._streams.touch(session)
            connection = self._feed(session, request.in_bytes)
        except _Abort as abort:
            self._end(live, connection_id)
            result.ClearField("response")
            _frame_error(result, abort.code, abort.message)
            return None
        if connection.pending_operation is not None:
            return session
        self._frame_step(live, session, len(request.in_bytes), result)
        return None

    def _frame_step(
        self, live: dict[int, Session], session: Session, fed: int, result: pb.ConnectionResult
    ) -> None:
        state = self._respond(session, fed, result.response, with_id=False)
        if state != pb.HANDSHAKE_STATE_NEED_INPUT:
            self._end(live, result.connection_id)


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _frame_error(result: pb.ConnectionResult, code: grpc.StatusCode, message: str) -> None:
    error = result.error
    error.code = code.value[0]
    error.message = message
