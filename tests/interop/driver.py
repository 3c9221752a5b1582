"""Drives an engine connection over a blocking socket, then carries application data with its keys.

The engine is sans-IO; this module is the I/O a caller would write: it writes
data_to_send(), reads the socket, feeds receive_data() and collects the events
until the handshake completes or fails. ApplicationChannel then protects records
itself with the keys the engine handed back, as the product's callers do.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections import deque
from dataclasses import dataclass

from handshaker.tls import (
    AlertDescription,
    ClientConnection,
    ContentType,
    HandshakeComplete,
    HandshakeFailed,
    HandshakeResult,
    ProtocolVersion,
    RecordProtection,
    RecordReader,
    ServerConnection,
    TrafficKeys,
)
from handshaker.tls.codepoints import AlertLevel
from handshaker.tls.record import Protection
from handshaker.tls.tls12.record import Tls12RecordProtection

DEFAULT_TIMEOUT = 15.0


class PeerClosed(Exception):
    """The peer closed the TCP connection before the handshake ended."""


class PeerAlert(Exception):
    """The peer sent an alert other than close_notify on the application channel."""

    def __init__(self, description: int) -> None:
        super().__init__(f"peer sent alert {description}")
        self.description = description


@dataclass(frozen=True)
class HandshakeOutcome:
    """How a handshake driven over a socket ended."""

    complete: HandshakeComplete | None
    failed: HandshakeFailed | None
    # Bytes the engine was fed that belong to the application-data stream.
    unconsumed: bytes

    @property
    def result(self) -> HandshakeResult:
        """The result of a completed handshake; fails the test with the alert otherwise."""
        if self.complete is None:
            assert self.failed is not None
            raise AssertionError(
                f"handshake failed: alert {self.failed.alert} "
                f"({'from peer' if self.failed.sent_by_peer else 'sent by us'}): "
                f"{self.failed.reason}"
            )
        return self.complete.result


def drive_handshake(
    connection: ClientConnection | ServerConnection,
    sock: socket.socket,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> HandshakeOutcome:
    """Run the handshake to its end: HandshakeComplete or HandshakeFailed.

    Whatever the engine queued last (our Finished, or the alert when we fail) is
    written before returning. Raises PeerClosed if the peer hangs up first and
    TimeoutError if nothing ends the handshake within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        outgoing = connection.data_to_send()
        if outgoing:
            sock.sendall(outgoing)
        for event in connection.events():
            if isinstance(event, HandshakeComplete):
                _flush(connection, sock)
                return HandshakeOutcome(event, None, connection.take_unconsumed())
            if isinstance(event, HandshakeFailed):
                _flush(connection, sock)
                return HandshakeOutcome(None, event, b"")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the handshake did not finish in time")
        sock.settimeout(remaining)
        data = sock.recv(65536)
        if not data:
            raise PeerClosed("the peer closed the connection during the handshake")
        connection.receive_data(data)


def _flush(connection: ClientConnection | ServerConnection, sock: socket.socket) -> None:
    outgoing = connection.data_to_send()
    # The peer may already have hung up after its own alert; what we would
    # have sent then no longer matters to the outcome.
    if outgoing:
        with contextlib.suppress(OSError):
            sock.sendall(outgoing)


def _protection(result: HandshakeResult, keys: TrafficKeys) -> Protection:
    """The record protection of the negotiated version, as a caller builds it from the keys."""
    if result.version == ProtocolVersion.TLS1_2:
        return Tls12RecordProtection.from_keys(result.cipher_suite, keys)
    return RecordProtection.from_keys(result.cipher_suite, keys)


class ApplicationChannel:
    """Application data over one socket, protected with the handshake's traffic keys."""

    def __init__(
        self,
        sock: socket.socket,
        result: HandshakeResult,
        unconsumed: bytes = b"",
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._sock = sock
        self._timeout = timeout
        self._write = _protection(result, result.write)
        self._read = _protection(result, result.read)
        self._fragment_limit = min(2**14, result.peer_record_size_limit - 1)
        self._reader = RecordReader()
        self._reader.feed(unconsumed)
        self._received = bytearray()
        self._chunks: deque[bytes] = deque()
        self.peer_closed = False
        # Post-handshake handshake messages seen (NewSessionTicket, ...), for asserting.
        self.post_handshake_messages = 0

    def send(self, data: bytes) -> None:
        self._sock.sendall(
            self._write.seal_fragments(ContentType.APPLICATION_DATA, data, self._fragment_limit)
        )

    def close(self) -> None:
        """Send close_notify (RFC 8446 section 6.1)."""
        alert = bytes((AlertLevel.WARNING, AlertDescription.CLOSE_NOTIFY))
        with contextlib.suppress(OSError):
            self._sock.sendall(self._write.seal(ContentType.ALERT, alert))

    def receive_until(self, marker: bytes) -> bytes:
        """Everything received up to and including the first `marker`."""
        deadline = time.monotonic() + self._timeout
        while (index := self._received.find(marker)) < 0:
            if not self._pump(deadline):
                raise PeerClosed(f"closed before {marker!r}; got {bytes(self._received)!r}")
        end = index + len(marker)
        data = bytes(self._received[:end])
        del self._received[:end]
        return data

    def receive_line(self) -> bytes:
        return self.receive_until(b"\n")

    def receive_until_closed(self) -> bytes:
        """Everything up to the peer's close_notify (or its TCP close)."""
        deadline = time.monotonic() + self._timeout
        while self._pump(deadline):
            pass
        data = bytes(self._received)
        self._received.clear()
        return data

    def _pump(self, deadline: float) -> bool:
        """Decrypt what is buffered, reading the socket once if needed; False at end of stream."""
        if self.peer_closed:
            return False
        if self._open_buffered_records():
            return True
        if self.peer_closed:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no application data in time")
        self._sock.settimeout(remaining)
        data = self._sock.recv(65536)
        if not data:
            self.peer_closed = True
            return False
        self._reader.feed(data)
        self._open_buffered_records()
        return True

    def _open_buffered_records(self) -> bool:
        """Open every whole buffered record; True if any application data came out."""
        got_data = False
        for wire_type, record in self._reader.records():
            if wire_type == ContentType.CHANGE_CIPHER_SPEC:
                continue
            inner_type, payload = self._read.open(record)
            if inner_type == ContentType.APPLICATION_DATA:
                self._received += payload
                got_data = got_data or bool(payload)
            elif inner_type == ContentType.HANDSHAKE:
                # NewSessionTicket and friends; this channel neither resumes nor rekeys.
                self.post_handshake_messages += 1
            elif inner_type == ContentType.ALERT:
                if payload[1:2] == bytes((AlertDescription.CLOSE_NOTIFY,)):
                    self.peer_closed = True
                    return got_data
                raise PeerAlert(payload[1])
            else:
                raise AssertionError(f"unexpected inner content type {inner_type}")
        return got_data


def accept_one(listener: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> socket.socket:
    """Accept one connection on a listening socket, failing after `timeout` seconds."""
    listener.settimeout(timeout)
    conn, _ = listener.accept()
    conn.settimeout(timeout)
    return conn


def listen_localhost() -> socket.socket:
    """A TCP listener on 127.0.0.1 with a port the kernel picked."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    return listener


def connect_localhost(port: int, timeout: float = DEFAULT_TIMEOUT) -> socket.socket:
    """A TCP connection to 127.0.0.1:port, retried briefly while the peer starts listening."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=timeout)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
