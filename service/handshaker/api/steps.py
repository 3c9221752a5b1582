"""The servicer's shared steps: a session started, fed, its private-key operations awaited,
its outcome answered, saved and restored. The RPCs (servicer.py) are made of these.

Thin by design: TLS decisions are the engine's; these steps only find the session,
feed it, and turn what came out into a HandshakeStep. A TLS failure is an OK response
with state FAILED; gRPC status codes report misuse (see the table in
protos/handshaker/v1/handshaker.proto). Nothing logged here carries key material.

Bounds: a handshake has an absolute deadline from its start, whatever bytes arrive
(DEADLINE_EXCEEDED); the bytes the engine holds for a session before the handshake
completes are capped (past it the handshake fails in band with illegal_parameter).
Every private-key use is written to the audit trail (audit.py) once the step that
used the key has its outcome.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from typing import TYPE_CHECKING

import grpc
from handshaker_wire.v1 import handshaker_pb2 as pb

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
    ServerConfig,
    ServerConnection,
)
from handshaker.tls.snapshot import SnapshotError

from . import audit
from .identity import CallerIdentity, Unauthenticated
from .options import ConfigFactory, InvalidOptions, is_ip_literal
from .responses import StepResponse, alpn_text, fill_session_keys, fill_summary
from .stats import HandshakeStats
from .status import StatusError

if TYPE_CHECKING:
    from .metrics import ServiceMetrics

log = logging.getLogger("handshaker.api")

# One request's handshake bytes; a whole flight with a long chain is far smaller.
MAX_IN_BYTES = 1 << 20

# Defaults of the bounds (serve flags say the same).
DEFAULT_HANDSHAKE_TIMEOUT = 30.0
# Partial records and an unfinished handshake message; a flight with a long chain
# is far smaller (BoringSSL caps a certificate list at 100 KiB).
DEFAULT_MAX_BUFFERED_BYTES = 64 << 10
# What one Multiplex message may carry: terminate's batches stay below it.
DEFAULT_MAX_FRAMES = 256


class SessionSteps:
    """The state every RPC shares (stores, configs, identity, bounds) and the steps on it."""

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
            raise StatusError(grpc.StatusCode.UNAUTHENTICATED, str(error)) from None

    def _config(
        self, options: pb.ClientOptions | pb.ServerOptions, principal: Principal
    ) -> ClientConfig | ServerConfig:
        """The engine config for a caller's options: misuse and refusals as statuses."""
        try:
            if isinstance(options, pb.ClientOptions):
                return self._configs.client(options, principal)
            return self._configs.server(options, principal)
        except _REFUSALS as error:
            raise _refused(error, principal) from None

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
            raise StatusError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)) from None
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
            raise StatusError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)) from None
        except SessionStoreUnavailable as error:
            raise StatusError(grpc.StatusCode.UNAVAILABLE, str(error)) from None
        self._log_start(session)
        return session

    def _log_start(self, session: Session) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "handshake started",
                extra={"fields": _fields(session)},
            )
        session.started_at = time.monotonic()

    def _feed(self, session: Session, data: bytes) -> ClientConnection | ServerConnection:
        """Give the engine `data`; the step is answered by _respond once no key operation is out."""
        if len(data) > MAX_IN_BYTES:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "in_bytes larger than 1 MiB")
        if session.busy:
            raise StatusError(
                grpc.StatusCode.ABORTED, "another request for this session is still in progress"
            )
        connection = session.connection
        if connection is None or connection.state is not ConnectionState.HANDSHAKING:
            raise StatusError(
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
            raise StatusError(
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
                sni = None if name is None or is_ip_literal(name) else name
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
        self, session: Session, data: bytes, response: StepResponse, *, with_id: bool = True
    ) -> int:
        """Feed `data`; fill response.step (and response.keys when asked); the new state."""
        connection = self._feed(session, data)
        if connection.pending_operation is not None:
            await self._key_operations(session)
        return self._respond(session, len(data), response, with_id=with_id)

    def _respond(self, session: Session, fed: int, response: StepResponse, *, with_id: bool) -> int:
        """Fill response.step (and response.keys when asked) from what the engine gave;
        the audit lines, stats and metrics of an outcome; the new state."""
        connection = session.connection
        assert connection is not None  # _feed found it handshaking
        step = response.step
        if with_id:
            step.session_id = session.session_id
        step.out_bytes = connection.data_to_send()
        step.bytes_consumed = fed
        step.state = pb.HANDSHAKE_STATE_NEED_INPUT
        event = connection.next_event()
        scope = self._scopes.pop(id(session), None)
        if scope is not None and scope.uses:
            if isinstance(event, HandshakeFailed):
                audit.flush(scope, alert=event.alert, reason=event.reason)
            else:
                audit.flush(scope, alert=None)
        if isinstance(event, HandshakeComplete):
            session.result = event.result
            step.bytes_consumed = fed - len(connection.take_unconsumed())
            step.state = pb.HANDSHAKE_STATE_COMPLETE
            fill_summary(step.result, event.result)
            if session.keys_in_response:
                fill_session_keys(response.keys, event.result, step.result.peer)
            self._completed(session, event.result)
        elif isinstance(event, HandshakeFailed):
            step.state = pb.HANDSHAKE_STATE_FAILED
            failure = step.failure
            failure.alert = event.alert
            failure.reason = event.reason
            failure.sent_by_peer = event.sent_by_peer
            self._failed(session, event)
        return step.state

    def _completed(self, session: Session, result: HandshakeResult) -> None:
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
                        **_fields(session),
                        "version": hex(result.version),
                        "cipher_suite": hex(result.cipher_suite),
                        "group": hex(result.group),
                        "alpn": alpn_text(result),
                        "hello_retry": result.hello_retry,
                        "ms": milliseconds,
                    }
                },
            )

    def _failed(self, session: Session, event: HandshakeFailed) -> None:
        self.stats.failed(session.role.value)
        if self.metrics is not None:
            self.metrics.failed(session.role.value, event.alert, session.started_at)
        log.info(
            "handshake failed",
            extra={
                "fields": {
                    **_fields(session),
                    "alert": event.alert,
                    "reason": event.reason,
                    "sent_by_peer": event.sent_by_peer,
                }
            },
        )

    async def _session(self, session_id: str, owner: Principal) -> Session:
        if not session_id:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "session_id is required")
        try:
            # Sessions are keyed by the principal's string form, which is unambiguous.
            session = await self._sessions.load(session_id, str(owner))
        except SessionNotFound:
            raise StatusError(grpc.StatusCode.NOT_FOUND, "no such session") from None
        except SessionStoreUnavailable as error:
            raise StatusError(grpc.StatusCode.UNAVAILABLE, str(error)) from None
        if session.connection is None and session.snapshot:
            session.connection = self._restore(session, owner)
        elif (
            self._saves
            and session.connection is not None
            and session.connection.state is ConnectionState.HANDSHAKING
        ):
            # A shared store's session kept live by this replica since it saved it: the
            # same authorization as a restore (a grant revoked since: PERMISSION_DENIED),
            # without building the config the live connection already has.
            try:
                self._configs.authorize(self._start_options(session), owner)
            except _REFUSALS as error:
                raise _refused(error, owner) from None
        return session

    @staticmethod
    def _start_options(session: Session) -> pb.ClientOptions | pb.ServerOptions:
        if session.role is Role.CLIENT:
            return pb.ClientOptions.FromString(session.options)
        return pb.ServerOptions.FromString(session.options)

    def _start_config(self, session: Session, owner: Principal) -> ClientConfig | ServerConfig:
        """The config of the session's start options for its owner, as of now."""
        try:
            return self._config(self._start_options(session), owner)
        except StatusError as abort:
            if abort.code is grpc.StatusCode.INVALID_ARGUMENT:
                raise StatusError(grpc.StatusCode.FAILED_PRECONDITION, abort.message) from None
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
            raise StatusError(grpc.StatusCode.NOT_FOUND, "no such session") from None
        finally:
            session.snapshot = b""

    async def _save(self, session: Session) -> None:
        """Keep the step; the loser of two requests racing on one session gets ABORTED."""
        try:
            await self._sessions.save(session)
        except SessionConflict as error:
            raise StatusError(grpc.StatusCode.ABORTED, str(error)) from None
        except SessionLimitReached as error:
            raise StatusError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)) from None
        except SessionStoreUnavailable as error:
            raise StatusError(grpc.StatusCode.UNAVAILABLE, str(error)) from None
        except SessionNotFound:
            raise StatusError(grpc.StatusCode.NOT_FOUND, "no such session") from None

    @staticmethod
    async def _fail(context: grpc.aio.ServicerContext[object, object], abort: StatusError) -> None:
        await context.abort(abort.code, abort.message)


_REFUSALS = (InvalidOptions, KeyNotFound, AccessDenied, KeystoreUnavailable)


def _refused(error: Exception, principal: Principal) -> StatusError:
    """The status of a refusal of a caller's options (one of _REFUSALS)."""
    if isinstance(error, InvalidOptions):
        return StatusError(grpc.StatusCode.INVALID_ARGUMENT, str(error))
    if isinstance(error, KeyNotFound):
        return StatusError(grpc.StatusCode.NOT_FOUND, str(error))
    if isinstance(error, AccessDenied):
        log.info(
            "permission denied",
            extra={"fields": {"caller": str(principal), "reason": str(error)}},
        )
        return StatusError(grpc.StatusCode.PERMISSION_DENIED, str(error))
    return StatusError(grpc.StatusCode.UNAVAILABLE, str(error))


def _fields(session: Session) -> dict[str, object]:
    """What a log line says of a session: never more of its id than 8 characters."""
    return {"session": session.session_id[:8], "role": session.role.value, "caller": session.owner}
