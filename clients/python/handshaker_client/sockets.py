"""Blocking sockets whose TLS handshake ran in the service: connect() and wrap_server_socket().

A TLSSocket owns a connected TCP socket and a RecordLayer. One thread may
receive while another sends. The answer to the peer's KeyUpdate(update_requested)
goes out ahead of the next record this side sends; alerts that receiving
produces are written at once, unless a send is under way (then with it).
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Literal, cast

from handshaker_wire.v1 import handshaker_pb2 as pb

from .client import HandshakerClient
from .errors import (
    ConnectionClosedError,
    HandshakeTimeoutError,
    NoClientHelloError,
    TLSProtocolError,
)
from .handshake import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    READ_SIZE,
    USER_CANCELED_ALERT,
    Established,
    HandshakeSession,
    StartOptions,
    client_options,
    relay_handshake,
    server_options,
)
from .keys import PeerIdentity, SessionKeys
from .layers import open_record_layer
from .record import ApplicationData, BaseRecordLayer, CloseNotifyReceived

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

Api = Literal["stream", "unary"]


class TLSSocket:
    """A socket-like TLS 1.3 or 1.2 connection: sendall/recv/close/makefile, and what was agreed."""

    def __init__(
        self,
        sock: socket.socket,
        established: Established,
        *,
        suppress_ragged_eofs: bool = True,
    ) -> None:
        self._sock = sock
        self.keys: SessionKeys = established.keys
        self.summary: pb.HandshakeSummary | None = established.summary
        self.suppress_ragged_eofs = suppress_ragged_eofs
        self._records = open_record_layer(established.keys)
        self._state_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._plaintext = bytearray()
        self._eof = False
        self._closed = False
        self._pending = established.early_records

    # What was negotiated

    @property
    def alpn_protocol(self) -> str | None:
        return self.keys.alpn_protocol

    @property
    def peer_certificates(self) -> tuple[bytes, ...]:
        """The peer's certificate chain as sent, leaf first, DER."""
        return self.keys.peer.chain_der

    @property
    def peer(self) -> PeerIdentity:
        return self.keys.peer

    @property
    def cipher_suite(self) -> int:
        return self.keys.cipher_suite

    @property
    def version(self) -> int:
        return self.keys.version

    @property
    def record_layer(self) -> BaseRecordLayer:
        return self._records

    # Socket plumbing

    def fileno(self) -> int:
        return self._sock.fileno()

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def getpeername(self) -> tuple[str, int]:
        name: tuple[str, int] = self._sock.getpeername()
        return name

    def getsockname(self) -> tuple[str, int]:
        name: tuple[str, int] = self._sock.getsockname()
        return name

    def __enter__(self) -> TLSSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # Sending

    def _flush(self, *, wait: bool = True) -> None:
        """Write what the record layer queued; with wait=False only if no send is under way."""
        if not self._send_lock.acquire(blocking=wait):
            return
        try:
            with self._state_lock:
                out = self._records.data_to_send()
            if out:
                self._sock.sendall(out)
        finally:
            self._send_lock.release()

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_lock:
            with self._state_lock:
                self._records.send_application_data(bytes(data))
                out = self._records.data_to_send()
            self._sock.sendall(out)

    def send(self, data: bytes | bytearray | memoryview) -> int:
        self.sendall(data)
        return len(data)

    def write(self, data: bytes) -> int:
        return self.send(data)

    def key_update(self, request_peer_update: bool = True) -> None:
        """Send a KeyUpdate (RFC 8446 section 4.6.3) and switch to the next write key."""
        with self._send_lock:
            with self._state_lock:
                self._records.update_keys(request_peer_update)
                out = self._records.data_to_send()
            self._sock.sendall(out)

    def shutdown_write(self) -> None:
        """Send close_notify and shut the TCP write side; receiving goes on."""
        with self._send_lock:
            with self._state_lock:
                self._records.close()
                out = self._records.data_to_send()
            if out:
                self._sock.sendall(out)
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)

    def shutdown(self, how: int) -> None:
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            self.shutdown_write()
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RD)

    def close(self) -> None:
        """Send close_notify (best effort) and close the socket."""
        if self._closed:
            return
        self._closed = True
        try:
            with self._state_lock:
                self._records.close()
                out = self._records.data_to_send()
            if out:
                self._sock.settimeout(1.0)
                self._sock.sendall(out)
        except (OSError, TLSProtocolError):
            pass
        finally:
            self._sock.close()

    # Receiving

    def _fill(self) -> None:
        """Read and decrypt until there is plaintext or the peer closed."""
        while not self._plaintext and not self._eof:
            if self._pending:
                data, self._pending = self._pending, b""
            else:
                data = self._sock.recv(READ_SIZE)
            if not data:
                self._eof = True
                with self._state_lock:
                    clean = self._records.close_notify_received
                if not clean and not self.suppress_ragged_eofs:
                    raise ConnectionClosedError(
                        "the peer closed the connection without close_notify"
                    )
                return
            try:
                with self._state_lock:
                    self._records.receive_data(data)
                    for event in self._records.events():
                        if isinstance(event, ApplicationData):
                            self._plaintext += event.data
                        elif isinstance(event, CloseNotifyReceived):
                            self._eof = True
            except TLSProtocolError:
                self._eof = True
                self._flush()
                raise
            self._flush(wait=False)

    def recv(self, bufsize: int = READ_SIZE) -> bytes:
        """Up to bufsize bytes of plaintext; b"" once the peer has closed."""
        with self._recv_lock:
            self._fill()
            chunk = bytes(self._plaintext[:bufsize])
            del self._plaintext[:bufsize]
            return chunk

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0) -> int:
        view = memoryview(buffer)
        chunk = self.recv(nbytes or len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    def read(self, size: int = READ_SIZE) -> bytes:
        return self.recv(size)

    def makefile(self, mode: str = "rb", buffering: int | None = None) -> io.IOBase:
        """A file object over the connection: "rb", "wb", "rwb", or text with "r"/"w"."""
        raw = _TLSRawIO(self, mode)
        readable, writable = "r" in mode, "w" in mode
        size = buffering if buffering and buffering > 0 else io.DEFAULT_BUFFER_SIZE
        buffered: io.BufferedIOBase
        if readable and writable:
            buffered = io.BufferedRWPair(raw, raw, size)
        elif readable:
            buffered = io.BufferedReader(raw, size)
        else:
            buffered = io.BufferedWriter(raw, size)
        if "b" in mode:
            return buffered
        return io.TextIOWrapper(cast(io.BufferedReader, buffered), encoding="utf-8", newline="")


class _TLSRawIO(io.RawIOBase):
    def __init__(self, tls: TLSSocket, mode: str) -> None:
        super().__init__()
        self._tls = tls
        self._readable = "r" in mode
        self._writable = "w" in mode

    def readable(self) -> bool:
        return self._readable

    def writable(self) -> bool:
        return self._writable

    def readinto(self, buffer: WriteableBuffer) -> int:
        return self._tls.recv_into(memoryview(buffer).cast("B"))

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data).cast("B")
        self._tls.sendall(view)
        return len(view)


def _handshake_session(
    client: HandshakerClient, options: StartOptions, api: Api, peer: str | None = None
) -> HandshakeSession:
    # The TLS peer's address goes to the service's audit trail (the stream's start request).
    if api == "stream":
        return client.handshake(options, peer=peer)
    return client.unary_session(options)


def _peer_address(sock: socket.socket) -> str | None:
    """The socket's peer as HOST:PORT ([V6]:PORT); None when it has none (a Unix socket)."""
    try:
        peer = sock.getpeername()
    except OSError:
        return None
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    return None


def _relay(
    sock: socket.socket,
    handshaker: HandshakerClient | str | None,
    options: StartOptions,
    api: Api,
    first_bytes: bytes = b"",
    *,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> Established:
    client = (
        handshaker if isinstance(handshaker, HandshakerClient) else HandshakerClient(handshaker)
    )
    own_timeout = sock.gettimeout()

    def bound_receive(left: float) -> None:
        # Never longer than the caller's own socket timeout, never past the deadline.
        sock.settimeout(left if own_timeout is None else min(left, own_timeout))

    try:
        return relay_handshake(
            _handshake_session(client, options, api, _peer_address(sock)),
            sock.sendall,
            lambda: sock.recv(READ_SIZE),
            first_bytes=first_bytes,
            timeout=handshake_timeout,
            set_receive_timeout=bound_receive,
        )
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(own_timeout)
        if client is not handshaker:
            client.close()


def connect(
    host: str,
    port: int,
    *,
    server_name: str | None = None,
    alpn: Iterable[str] = (),
    trust_bundle: str | None = None,
    ca_pem: str | bytes | None = None,
    credential: str | None = None,
    handshaker: HandshakerClient | str | None = None,
    api: Api = "stream",
    timeout: float | None = None,
    options: pb.ClientOptions | None = None,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    min_version: int = 0,
    max_version: int = 0,
) -> TLSSocket:
    """Connect over TCP and run the client handshake in the service.

    `handshaker` is a HandshakerClient or its address (default $HANDSHAKER_ADDR,
    else 127.0.0.1:50051). `options` replaces every option argument. A failed
    handshake raises HandshakeError after the alert went to the peer; one that has
    not completed within `handshake_timeout` seconds raises HandshakeTimeoutError
    and the socket is closed.
    """
    if options is None:
        options = client_options(
            server_name or host,
            alpn=alpn,
            trust_bundle=trust_bundle,
            ca_pem=ca_pem,
            credential=credential,
            min_version=min_version,
            max_version=max_version,
        )
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        established = _relay(sock, handshaker, options, api, handshake_timeout=handshake_timeout)
    except BaseException:
        sock.close()
        raise
    return TLSSocket(sock, established)


def wrap_server_socket(
    sock: socket.socket,
    *,
    credential: str | None = None,
    alpn: Iterable[str] = (),
    client_auth: str = "none",
    client_ca_pem: str | bytes | None = None,
    handshaker: HandshakerClient | str | None = None,
    api: Api = "stream",
    options: pb.ServerOptions | None = None,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> TLSSocket:
    """Run the server handshake in the service on an accepted socket.

    The socket is left open when the handshake fails (HandshakeTimeoutError after
    `handshake_timeout` seconds); the caller closes it.
    """
    if options is None:
        options = server_options(
            credential=credential, alpn=alpn, client_auth=client_auth, client_ca_pem=client_ca_pem
        )
    own_timeout = sock.gettimeout()
    if handshake_timeout is not None:
        # The wait for the ClientHello is part of the handshake's time.
        sock.settimeout(
            handshake_timeout if own_timeout is None else min(handshake_timeout, own_timeout)
        )
    started = time.monotonic()
    try:
        first = sock.recv(READ_SIZE)
    except TimeoutError:
        if handshake_timeout is None or (
            own_timeout is not None and own_timeout < handshake_timeout
        ):
            raise
        # Nothing was exchanged: the peer can read a plaintext alert.
        with contextlib.suppress(OSError):
            sock.sendall(USER_CANCELED_ALERT)
        raise HandshakeTimeoutError(f"no ClientHello within {handshake_timeout:g} s") from None
    finally:
        sock.settimeout(own_timeout)
    if not first:
        raise NoClientHelloError("the peer closed the connection before its ClientHello")
    left = None if handshake_timeout is None else handshake_timeout - (time.monotonic() - started)
    established = _relay(
        sock,
        handshaker,
        options,
        api,
        first,
        handshake_timeout=None if left is None else max(0.0, left),
    )
    return TLSSocket(sock, established)
