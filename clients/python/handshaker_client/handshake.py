"""Relaying a handshake between a peer and the service: steps, start options, and the relay loops.

The loops are the same for both roles and both APIs (stream or unary): write
out_bytes to the peer, feed what the peer sends, until COMPLETE or FAILED. On
FAILED the alert record goes to the peer before HandshakeError is raised. No
sockets here: the transport is a pair of send/receive callables.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from handshaker_wire.v1 import handshaker_pb2 as pb

from .errors import (
    ConnectionClosedError,
    HandshakeError,
    HandshakerRpcError,
    HandshakeTimeoutError,
)
from .keys import SessionKeys

DEFAULT_ADDRESS = "127.0.0.1:50051"
ADDRESS_ENVIRONMENT_VARIABLE = "HANDSHAKER_ADDR"
READ_SIZE = 65536
# The service ends a handshake 30 s after its start (serve --handshake-timeout); a
# client gives up at the same time, so a silent or trickling peer holds no socket.
DEFAULT_HANDSHAKE_TIMEOUT = 30.0
# A warning-level user_canceled alert (RFC 8446 section 6.1), unprotected: the peer
# can read it only while no encrypted record has been exchanged.
USER_CANCELED_ALERT = bytes([21, 3, 3, 0, 2, 1, 90])
# A fatal internal_error alert, unprotected: what the peer gets when the service
# refuses the handshake (it is down, or a cap was reached) rather than a bare EOF.
INTERNAL_ERROR_ALERT = bytes([21, 3, 3, 0, 2, 2, 80])

StartOptions = pb.ClientOptions | pb.ServerOptions


def resolve_address(address: str | None = None) -> str:
    """The service address: `address`, else $HANDSHAKER_ADDR, else 127.0.0.1:50051.

    Any gRPC target works, including unix:PATH.
    """
    return address or os.environ.get(ADDRESS_ENVIRONMENT_VARIABLE) or DEFAULT_ADDRESS


def client_options(
    server_name: str = "",
    *,
    expected_ip_address: str = "",
    alpn: Iterable[str] = (),
    trust_bundle: str | None = None,
    ca_pem: str | bytes | None = None,
    credential: str | None = None,
    cipher_suites: Iterable[int] = (),
    groups: Iterable[int] = (),
    key_share_groups: Iterable[int] = (),
    keylog: bool = False,
    min_version: int = 0,
    max_version: int = 0,
) -> pb.ClientOptions:
    """ClientOptions for a client-role handshake; no trust given means the service's default.

    An IP literal as `server_name` (what connect() passes for a host given by address)
    becomes `expected_ip_address`: no SNI (RFC 6066 permits no IP literal there), and
    the certificate's iPAddress SAN is checked against it.

    min_version and max_version are IANA numbers (0x0303 TLS 1.2, 0x0304 TLS 1.3);
    zero leaves the service's default (both, TLS 1.3 preferred).
    """
    if trust_bundle is not None and ca_pem is not None:
        raise ValueError("give trust_bundle or ca_pem, not both")
    address = _ip_literal(server_name) if server_name else None
    if address is not None:
        if expected_ip_address:
            raise ValueError("give server_name or expected_ip_address, not both")
        server_name, expected_ip_address = "", address
    options = pb.ClientOptions(
        server_name=server_name,
        expected_ip_address=expected_ip_address,
        alpn_protocols=list(alpn),
        credential=credential or "",
        cipher_suites=list(cipher_suites),
        groups=list(groups),
        key_share_groups=list(key_share_groups),
        keylog=keylog,
        min_version=min_version,
        max_version=max_version,
    )
    if trust_bundle is not None:
        options.trust_bundle = trust_bundle
    elif ca_pem is not None:
        options.trust_anchors_pem = ca_pem.decode() if isinstance(ca_pem, bytes) else ca_pem
    return options


def _ip_literal(name: str) -> str | None:
    """`name` as an IP address ("[::1]" too), canonical; None when it is not one."""
    try:
        return str(ipaddress.ip_address(name.strip("[]") if name.startswith("[") else name))
    except ValueError:
        return None


_CLIENT_AUTH = {
    "none": pb.CLIENT_AUTH_NONE,
    "optional": pb.CLIENT_AUTH_OPTIONAL,
    "required": pb.CLIENT_AUTH_REQUIRED,
}


def server_options(
    *,
    credential: str | None = None,
    alpn: Iterable[str] = (),
    client_auth: str = "none",
    client_ca_pem: str | bytes | None = None,
    client_trust_bundle: str | None = None,
    cipher_suites: Iterable[int] = (),
    groups: Iterable[int] = (),
    keylog: bool = False,
    min_version: int = 0,
    max_version: int = 0,
) -> pb.ServerOptions:
    """ServerOptions for a server-role handshake; client_auth is none, optional or required."""
    try:
        auth = _CLIENT_AUTH[client_auth]
    except KeyError:
        raise ValueError(f"client_auth must be one of {', '.join(_CLIENT_AUTH)}") from None
    if client_ca_pem is not None and client_trust_bundle is not None:
        raise ValueError("give client_ca_pem or client_trust_bundle, not both")
    options = pb.ServerOptions(
        credential=credential or "",
        alpn_protocols=list(alpn),
        client_auth=auth,
        cipher_suites=list(cipher_suites),
        groups=list(groups),
        keylog=keylog,
        min_version=min_version,
        max_version=max_version,
    )
    if client_ca_pem is not None:
        pem = client_ca_pem.decode() if isinstance(client_ca_pem, bytes) else client_ca_pem
        options.client_trust_anchors_pem = pem
    elif client_trust_bundle is not None:
        options.client_trust_bundle = client_trust_bundle
    return options


@dataclass(frozen=True, slots=True)
class Failure:
    alert: int
    reason: str
    sent_by_peer: bool

    def error(self) -> HandshakeError:
        return HandshakeError(self.alert, self.reason, self.sent_by_peer)


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one start or feed (HandshakeStep), with the keys once COMPLETE."""

    state: int
    out_bytes: bytes
    bytes_consumed: int
    session_id: str = ""
    failure: Failure | None = None
    summary: pb.HandshakeSummary | None = None
    keys: SessionKeys | None = None

    @property
    def complete(self) -> bool:
        return self.state == pb.HANDSHAKE_STATE_COMPLETE

    @property
    def failed(self) -> bool:
        return self.state == pb.HANDSHAKE_STATE_FAILED

    @classmethod
    def from_proto(cls, step: pb.HandshakeStep, keys: pb.SessionKeys | None) -> Step:
        if step.state not in (
            pb.HANDSHAKE_STATE_NEED_INPUT,
            pb.HANDSHAKE_STATE_COMPLETE,
            pb.HANDSHAKE_STATE_FAILED,
        ):
            raise HandshakerRpcError.protocol(f"a step with state {step.state}")
        failure = None
        if step.state == pb.HANDSHAKE_STATE_FAILED:
            failure = Failure(step.failure.alert, step.failure.reason, step.failure.sent_by_peer)
        return cls(
            state=step.state,
            out_bytes=step.out_bytes,
            bytes_consumed=step.bytes_consumed,
            session_id=step.session_id,
            failure=failure,
            summary=step.result if step.HasField("result") else None,
            keys=SessionKeys.from_proto(keys) if keys is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Established:
    """A completed handshake: its keys, its summary, and the first application bytes.

    `early_records` are bytes the peer sent right behind its last handshake
    flight (the part of the last feed past bytes_consumed): they are the first
    application records, for the record layer.
    """

    keys: SessionKeys
    summary: pb.HandshakeSummary | None
    early_records: bytes


class HandshakeSession(Protocol):
    """One handshake in the service, over the stream or the unary API."""

    def start(self, in_bytes: bytes = b"") -> Step: ...

    def feed(self, in_bytes: bytes) -> Step: ...

    def close(self) -> None: ...


class AsyncHandshakeSession(Protocol):
    async def start(self, in_bytes: bytes = b"") -> Step: ...

    async def feed(self, in_bytes: bytes) -> Step: ...

    async def close(self) -> None: ...


def _finish(step: Step, fed: bytes) -> Established | None:
    """Established on COMPLETE, None on NEED_INPUT; raises on FAILED."""
    if step.failure is not None:
        raise step.failure.error()
    if not step.complete:
        return None
    if step.keys is None:
        raise HandshakerRpcError.protocol("a COMPLETE step without keys")
    if step.bytes_consumed > len(fed):
        raise HandshakerRpcError.protocol("bytes_consumed exceeds the bytes fed")
    return Established(step.keys, step.summary, fed[step.bytes_consumed :])


class _Progress:
    """Whether an unprotected alert can still reach the peer: until both sides have
    sent something, no encrypted record has crossed (a server has sent nothing yet,
    or a client has received nothing yet)."""

    def __init__(self, received: bool) -> None:
        self.sent = False
        self.received = received

    @property
    def plaintext(self) -> bool:
        return not (self.sent and self.received)


def _timed_out(timeout: float) -> HandshakeTimeoutError:
    return HandshakeTimeoutError(f"the handshake did not complete within {timeout:.3g} s")


def relay_handshake(
    session: HandshakeSession,
    send: Callable[[bytes], None],
    receive: Callable[[], bytes],
    *,
    first_bytes: bytes = b"",
    timeout: float | None = None,
    set_receive_timeout: Callable[[float], None] | None = None,
) -> Established:
    """Run a handshake between the peer (send/receive) and the service session.

    `receive` returns b"" at end of stream. A server passes the first bytes it read
    from the client as first_bytes; a client passes nothing. With `timeout`, the
    whole handshake must complete within it: `set_receive_timeout` bounds each
    receive by what is left (a socket's settimeout), and when it runs out
    HandshakeTimeoutError is raised after a user_canceled alert where the peer can
    read one.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    progress = _Progress(bool(first_bytes))
    try:
        fed = first_bytes
        step = session.start(first_bytes)
        while True:
            if step.out_bytes:
                send(step.out_bytes)
                progress.sent = True
            established = _finish(step, fed)
            if established is not None:
                return established
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                if set_receive_timeout is not None:
                    set_receive_timeout(left)
            fed = receive()
            if not fed:
                raise ConnectionClosedError("the peer closed the connection during the handshake")
            progress.received = True
            step = session.feed(fed)
    except TimeoutError as error:
        if timeout is None or isinstance(error, HandshakeTimeoutError):
            raise
        if progress.plaintext:
            # A peer that is gone cannot read it; closing is all that is left.
            with contextlib.suppress(OSError):
                send(USER_CANCELED_ALERT)
        raise _timed_out(timeout) from None
    except HandshakerRpcError:
        if progress.plaintext:
            with contextlib.suppress(OSError):
                send(INTERNAL_ERROR_ALERT)
        raise
    finally:
        session.close()


async def relay_handshake_async(
    session: AsyncHandshakeSession,
    send: Callable[[bytes], Awaitable[None]],
    receive: Callable[[], Awaitable[bytes]],
    *,
    first_bytes: bytes = b"",
    timeout: float | None = None,
) -> Established:
    """relay_handshake for asyncio transports; `timeout` bounds the whole handshake."""
    progress = _Progress(bool(first_bytes))

    async def relay() -> Established:
        fed = first_bytes
        step = await session.start(first_bytes)
        while True:
            if step.out_bytes:
                await send(step.out_bytes)
                progress.sent = True
            established = _finish(step, fed)
            if established is not None:
                return established
            fed = await receive()
            if not fed:
                raise ConnectionClosedError("the peer closed the connection during the handshake")
            progress.received = True
            step = await session.feed(fed)

    try:
        try:
            async with asyncio.timeout(timeout):
                return await relay()
        except TimeoutError as error:
            if timeout is None or isinstance(error, HandshakeTimeoutError):
                raise
            if progress.plaintext:
                try:
                    # Bounded too: a peer that reads nothing must not hold us here.
                    async with asyncio.timeout(1.0):
                        await send(USER_CANCELED_ALERT)
                except (OSError, TimeoutError):
                    pass  # the peer is gone; closing is all that is left
            raise _timed_out(timeout) from None
        except HandshakerRpcError:
            if progress.plaintext:
                with contextlib.suppress(OSError, TimeoutError):
                    async with asyncio.timeout(1.0):
                        await send(INTERNAL_ERROR_ALERT)
            raise
    finally:
        await session.close()
