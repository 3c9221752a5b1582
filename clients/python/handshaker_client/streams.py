"""asyncio streams whose TLS handshake ran in the service: open_connection() and start_server().

TLSStreamReader and TLSStreamWriter mirror asyncio.StreamReader/StreamWriter
over one TLS connection. Reading pulls records from the TCP stream on demand,
so a slow reader pushes back on the peer as with a plain socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from handshaker_wire.v1 import handshaker_pb2 as pb

from .aio import AsyncHandshakerClient
from .errors import (
    HandshakerClientError,
    HandshakeTimeoutError,
    NoClientHelloError,
    TLSProtocolError,
)
from .handshake import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    READ_SIZE,
    USER_CANCELED_ALERT,
    AsyncHandshakeSession,
    Established,
    StartOptions,
    client_options,
    relay_handshake_async,
    server_options,
)
from .keys import SessionKeys
from .layers import open_record_layer
from .record import ApplicationData, BaseRecordLayer, CloseNotifyReceived

log = logging.getLogger("handshaker_client.streams")

DEFAULT_LIMIT = 2**16


class _Connection:
    """The record layer and the TCP streams that reader and writer share."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        established: Established,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.keys = established.keys
        self.summary = established.summary
        self.records = open_record_layer(established.keys)
        self.pending = established.early_records

    def flush(self) -> None:
        out = self.records.data_to_send()
        if out and not self.writer.is_closing():
            self.writer.write(out)


class TLSStreamReader:
    """The reading half: read, readexactly, readline, readuntil, at_eof, async iteration."""

    def __init__(self, connection: _Connection, limit: int = DEFAULT_LIMIT) -> None:
        self._connection = connection
        self._limit = limit
        self._buffer = bytearray()
        self._eof = False
        self._error: BaseException | None = None

    def at_eof(self) -> bool:
        return self._eof and not self._buffer

    async def _fill(self) -> None:
        """Read until new plaintext arrives or the peer closes."""
        if self._error is not None:
            raise self._error
        connection = self._connection
        start = len(self._buffer)
        while len(self._buffer) == start and not self._eof:
            if connection.pending:
                data, connection.pending = connection.pending, b""
            else:
                data = await connection.reader.read(READ_SIZE)
            if not data:
                self._eof = True
                return
            try:
                connection.records.receive_data(data)
                for event in connection.records.events():
                    if isinstance(event, ApplicationData):
                        self._buffer += event.data
                    elif isinstance(event, CloseNotifyReceived):
                        self._eof = True
            except TLSProtocolError as error:
                self._eof = True
                self._error = error
                connection.flush()
                raise
            connection.flush()

    async def read(self, n: int = -1) -> bytes:
        if n == 0:
            return b""
        if n < 0:
            while not self._eof:
                await self._fill()
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        if not self._buffer:
            await self._fill()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def readexactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            if self._eof:
                partial = bytes(self._buffer)
                self._buffer.clear()
                raise asyncio.IncompleteReadError(partial, n)
            await self._fill()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        if not separator:
            raise ValueError("the separator is empty")
        searched = 0
        while True:
            index = self._buffer.find(separator, searched)
            if index >= 0:
                end = index + len(separator)
                if end > self._limit:
                    raise asyncio.LimitOverrunError("separator found past the limit", index)
                data = bytes(self._buffer[:end])
                del self._buffer[:end]
                return data
            if len(self._buffer) > self._limit:
                raise asyncio.LimitOverrunError(
                    "separator not found and the buffer is past the limit", len(self._buffer)
                )
            if self._eof:
                partial = bytes(self._buffer)
                self._buffer.clear()
                raise asyncio.IncompleteReadError(partial, None)
            searched = max(0, len(self._buffer) - len(separator) + 1)
            await self._fill()

    async def readline(self) -> bytes:
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as error:
            return error.partial

    def __aiter__(self) -> TLSStreamReader:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line


class TLSStreamWriter:
    """The writing half: write, writelines, drain, write_eof, close, wait_closed."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    @property
    def keys(self) -> SessionKeys:
        return self._connection.keys

    @property
    def summary(self) -> pb.HandshakeSummary | None:
        return self._connection.summary

    @property
    def alpn_protocol(self) -> str | None:
        return self._connection.keys.alpn_protocol

    @property
    def peer_certificates(self) -> tuple[bytes, ...]:
        return self._connection.keys.peer.chain_der

    @property
    def record_layer(self) -> BaseRecordLayer:
        return self._connection.records

    @property
    def transport(self) -> asyncio.BaseTransport:
        return self._connection.writer.transport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Transport details, plus "session_keys", "alpn_protocol" and "peer_certificates"."""
        if name == "session_keys":
            return self.keys
        if name == "alpn_protocol":
            return self.alpn_protocol
        if name == "peer_certificates":
            return self.peer_certificates
        return self._connection.writer.get_extra_info(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        connection = self._connection
        connection.records.send_application_data(bytes(data))
        connection.flush()

    def writelines(self, lines: Iterable[bytes]) -> None:
        self.write(b"".join(lines))

    async def drain(self) -> None:
        await self._connection.writer.drain()

    def key_update(self, request_peer_update: bool = True) -> None:
        """Send a KeyUpdate (RFC 8446 section 4.6.3) and switch to the next write key."""
        self._connection.records.update_keys(request_peer_update)
        self._connection.flush()

    def can_write_eof(self) -> bool:
        return self._connection.writer.can_write_eof()

    def write_eof(self) -> None:
        """Send close_notify and half-close TCP; the peer may go on sending."""
        connection = self._connection
        connection.records.close()
        connection.flush()
        if connection.writer.can_write_eof() and not connection.writer.is_closing():
            connection.writer.write_eof()

    def is_closing(self) -> bool:
        return self._connection.writer.is_closing()

    def close(self) -> None:
        """Send close_notify (unless sent) and close the TCP connection."""
        connection = self._connection
        if not connection.writer.is_closing():
            try:
                connection.records.close()
                connection.flush()
            except TLSProtocolError:
                pass
        connection.writer.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self._connection.writer.wait_closed()


# The asyncio adapters also run handshakes on the client's shared Multiplex streams,
# the cheapest way through the service when many connections handshake at once.
AsyncApi = Literal["stream", "unary", "multiplex"]


# A record header, and the largest plaintext record a ClientHello arrives in (RFC 8446 5.1).
_RECORD_HEADER = 5
_MAX_FIRST_RECORD = _RECORD_HEADER + 2**14 + 256


async def _first_record(reader: asyncio.StreamReader) -> bytes:
    """The client's bytes up to the end of its first record (b"" at end of stream).

    A server takes no session in the service until a whole first record is here: a
    peer trickling its ClientHello costs this process a socket, not one of the
    caller's service sessions, so it cannot crowd legitimate handshakes out of the
    per-caller cap. Anything that is not a handshake record goes on at once (the
    service answers it with an alert).
    """
    data = b""
    while True:
        chunk = await reader.read(READ_SIZE)
        if not chunk:
            return data
        data += chunk
        if data[0] != 22 or len(data) >= _MAX_FIRST_RECORD:
            return data
        if len(data) >= _RECORD_HEADER:
            length = int.from_bytes(data[3:5], "big")
            if len(data) >= _RECORD_HEADER + length:
                return data


def _peer_address(writer: asyncio.StreamWriter) -> str | None:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    return None


def _session(
    client: AsyncHandshakerClient, options: StartOptions, api: AsyncApi, peer: str | None
) -> AsyncHandshakeSession:
    # The TLS peer's address goes to the service's audit trail; on a Multiplex stream,
    # which carries many connections, in this connection's first frame.
    if api == "stream":
        return client.handshake(options, peer=peer)
    if api == "multiplex":
        return client.multiplexed_session(options, peer=peer)
    return client.unary_session(options, peer=peer)


async def tls_over_streams(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    client: AsyncHandshakerClient,
    options: StartOptions,
    *,
    api: AsyncApi = "stream",
    first_bytes: bytes = b"",
    limit: int = DEFAULT_LIMIT,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> tuple[TLSStreamReader, TLSStreamWriter]:
    """Run a handshake over connected TCP streams; the TLS streams on success.

    For the server role, first_bytes may hold what was already read from the
    client; when empty the first read happens here. On failure the alert has
    been written and the TCP streams are left to the caller. The handshake,
    that first read included, must complete within `handshake_timeout` seconds
    (HandshakeTimeoutError; a user_canceled alert went out where the peer can read
    it): a silent or trickling peer cannot hold the streams longer.
    """
    started = time.monotonic()

    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def receive() -> bytes:
        return await reader.read(READ_SIZE)

    if isinstance(options, pb.ServerOptions) and not first_bytes:
        try:
            async with asyncio.timeout(handshake_timeout):
                first_bytes = await _first_record(reader)
        except TimeoutError:
            assert handshake_timeout is not None
            # Nothing was exchanged: the peer can read a plaintext alert.
            with contextlib.suppress(OSError):
                writer.write(USER_CANCELED_ALERT)
            raise HandshakeTimeoutError(f"no ClientHello within {handshake_timeout:g} s") from None
        if not first_bytes:
            raise NoClientHelloError("the peer closed the connection before its ClientHello")
    left = None
    if handshake_timeout is not None:
        left = max(0.0, handshake_timeout - (time.monotonic() - started))
    established = await relay_handshake_async(
        _session(client, options, api, _peer_address(writer)),
        send,
        receive,
        first_bytes=first_bytes,
        timeout=left,
    )
    connection = _Connection(reader, writer, established)
    return TLSStreamReader(connection, limit), TLSStreamWriter(connection)


async def open_connection(
    host: str,
    port: int,
    *,
    server_name: str | None = None,
    alpn: Iterable[str] = (),
    trust_bundle: str | None = None,
    ca_pem: str | bytes | None = None,
    credential: str | None = None,
    handshaker: AsyncHandshakerClient | str | None = None,
    api: AsyncApi = "stream",
    options: pb.ClientOptions | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[TLSStreamReader, TLSStreamWriter]:
    """asyncio.open_connection with a TLS handshake run in the service.

    A failed handshake raises HandshakeError after the alert went to the peer.
    """
    if options is None:
        options = client_options(
            server_name or host,
            alpn=alpn,
            trust_bundle=trust_bundle,
            ca_pem=ca_pem,
            credential=credential,
        )
    owned = not isinstance(handshaker, AsyncHandshakerClient)
    client = (
        handshaker
        if isinstance(handshaker, AsyncHandshakerClient)
        else AsyncHandshakerClient(handshaker)
    )
    reader, writer = await asyncio.open_connection(host, port)
    try:
        return await tls_over_streams(reader, writer, client, options, api=api, limit=limit)
    except BaseException:
        writer.close()
        raise
    finally:
        if owned:
            await client.close()


ConnectedCallback = Callable[[TLSStreamReader, TLSStreamWriter], Awaitable[None]]


async def start_server(
    client_connected_cb: ConnectedCallback,
    host: str | None,
    port: int,
    *,
    credential: str | None = None,
    alpn: Iterable[str] = (),
    client_auth: str = "none",
    client_ca_pem: str | bytes | None = None,
    handshaker: AsyncHandshakerClient | str | None = None,
    api: AsyncApi = "stream",
    options: pb.ServerOptions | None = None,
    on_handshake_error: Callable[[BaseException, asyncio.StreamWriter], None] | None = None,
    limit: int = DEFAULT_LIMIT,
) -> asyncio.Server:
    """asyncio.start_server whose connections handshake in the service first.

    client_connected_cb runs once a handshake completes. A failed handshake
    closes the connection and goes to on_handshake_error (default: a log line).
    """
    if options is None:
        options = server_options(
            credential=credential, alpn=alpn, client_auth=client_auth, client_ca_pem=client_ca_pem
        )
    server_options_ = options
    client = (
        handshaker
        if isinstance(handshaker, AsyncHandshakerClient)
        else AsyncHandshakerClient(handshaker)
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            tls_reader, tls_writer = await tls_over_streams(
                reader, writer, client, server_options_, api=api, limit=limit
            )
        except (HandshakerClientError, OSError) as error:
            if on_handshake_error is not None:
                on_handshake_error(error, writer)
            else:
                log.warning(
                    "handshake with %s failed: %s", writer.get_extra_info("peername"), error
                )
            writer.close()
            return
        try:
            await client_connected_cb(tls_reader, tls_writer)
        finally:
            tls_writer.close()

    return await asyncio.start_server(handle, host, port)
