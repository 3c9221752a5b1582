"""The two roles' connections: the engine's public entry points.

ClientConnection queues its ClientHello when made; ServerConnection waits for
one. Everything they share (records, reassembly, alerts, events) is in core.py;
what each message means is in tls13/.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from . import client_hello
from .codepoints import ProtocolVersion
from .config import ClientConfig, ServerConfig
from .core import Clock, Connection, ConnectionState, HandshakeState, Random, StateError
from .server_hello import ExpectFirstClientHello
from .snapshot import (
    NO_VERSION,
    ROLE_CLIENT,
    ROLE_SERVER,
    SnapshotError,
    SnapshotReader,
    SnapshotWriter,
    read_connection,
    read_header,
    write_connection,
    write_header,
)
from .tls12 import snapshot as tls12_snapshot
from .tls13 import client as tls13_client
from .tls13 import snapshot as tls13_snapshot
from .tls13.client import replay_client


def _snapshot(conn: Connection, role: int) -> bytes:
    if conn.status is not ConnectionState.HANDSHAKING:
        raise StateError(f"connection is {conn.status.value}; only a handshake in progress is kept")
    if conn.pending_operation is not None:
        raise StateError("a private-key operation is out; snapshot before the input that needs it")
    is_client = role == ROLE_CLIENT
    w = SnapshotWriter()
    state = conn._state
    if isinstance(state, ExpectFirstClientHello):
        # No version chosen yet: protocol 0, and no state fields.
        write_header(w, role, NO_VERSION, 0)
        write_connection(w, conn)
        return w.getvalue()
    if isinstance(state, client_hello.ExpectServerHello):
        # The ClientHello offered TLS 1.3 and 1.2: protocol 0, and the TLS 1.3 state it
        # wraps (which holds the hello and its key shares), so either version can follow.
        write_header(w, role, NO_VERSION, tls13_snapshot.state_tag(state.tls13, is_client=True))
        write_connection(w, conn)
        tls13_snapshot.write_client_state(w, state.tls13)
        return w.getvalue()
    if tls12_snapshot.is_tls12_state(state):
        write_header(
            w, role, ProtocolVersion.TLS1_2, tls12_snapshot.state_tag(state, is_client=is_client)
        )
        write_connection(w, conn)
        tls12_snapshot.write_state(w, state)
        return w.getvalue()
    tag = tls13_snapshot.state_tag(conn._state, is_client=is_client)
    write_header(w, role, ProtocolVersion.TLS1_3, tag)
    write_connection(w, conn)
    if is_client:
        tls13_snapshot.write_client_state(w, conn._state)
    else:
        tls13_snapshot.write_server_state(w, conn._state)
    return w.getvalue()


def _restore_into(conn: Connection, snapshot: bytes, role: int) -> tuple[int, int, SnapshotReader]:
    """Read the header and the connection's fields; protocol, state tag and the rest."""
    if not isinstance(snapshot, bytes | bytearray):
        raise SnapshotError("a snapshot is bytes")
    r = SnapshotReader(bytes(snapshot))
    protocol, tag = read_header(r, role)
    if protocol not in (ProtocolVersion.TLS1_3, ProtocolVersion.TLS1_2, NO_VERSION):
        raise SnapshotError(f"snapshot is of protocol 0x{protocol:04x}, which this engine lacks")
    # No version yet: the server before the ClientHello (tag 0), or the client before the
    # ServerHello (tag 1: the TLS 1.3 ExpectServerHello it wraps).
    if protocol == NO_VERSION and (tag != 0 if role == ROLE_SERVER else tag != 1):
        raise SnapshotError("snapshot has an unknown state for a connection with no version")
    read_connection(r, conn)
    return protocol, tag, r


def _restore_state(conn: Connection, snapshot: bytes, config: ClientConfig | ServerConfig) -> None:
    """Fill a fresh connection from a snapshot of its role."""
    is_client = isinstance(config, ClientConfig)
    protocol, tag, r = _restore_into(conn, snapshot, ROLE_CLIENT if is_client else ROLE_SERVER)
    if isinstance(config, ClientConfig):
        if protocol == ProtocolVersion.TLS1_2:
            conn._state = tls12_snapshot.read_client_state(r, tag, config)
        else:
            state = tls13_snapshot.read_client_state(r, tag, config)
            if protocol == NO_VERSION:
                assert isinstance(state, tls13_client.ExpectServerHello)
                state = client_hello.ExpectServerHello(state)
            conn._state = state
    elif protocol == NO_VERSION:
        conn._state = ExpectFirstClientHello(config)
    elif protocol == ProtocolVersion.TLS1_2:
        conn._state = tls12_snapshot.read_server_state(r, tag, config)
    else:
        conn._state = tls13_snapshot.read_server_state(r, tag, config)
    r.finish()


class ClientConnection(Connection):
    """The client role. The ClientHello is queued when the connection is made."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        random: Random = os.urandom,
        clock: Clock = time.time,
        _start: bool = True,
    ) -> None:
        # _start=False: replay and restore set the state themselves (a class method
        # cannot make an instance without __init__ when the engine is compiled).
        super().__init__(random, clock)
        self.config = config
        self.ccs_allowed = True
        if _start:
            self._state = client_hello.start(self, config)
            self._flush_handshake()

    @classmethod
    def replay(
        cls,
        config: ClientConfig,
        client_hello: bytes,
        private_keys: Mapping[int, bytes],
        *,
        random: Random = os.urandom,
        clock: Clock = time.time,
    ) -> ClientConnection:
        """Start from a recorded ClientHello message and its key shares' private keys.

        For replaying recorded traces (RFC 8448): the message is parsed, re-encoded
        (it must round-trip exactly) and sent as ours.
        """
        self = cls(config, random=random, clock=clock, _start=False)
        self._state = replay_client(self, config, client_hello, private_keys)
        self._flush_handshake()
        return self

    def snapshot(self) -> bytes:
        """A snapshot of the handshake so far, whenever the connection waits for input.

        restore(snapshot, config) continues it exactly as this connection would: same
        bytes out, same result, same keys. THE SNAPSHOT CONTAINS SECRETS (traffic
        secrets, ephemeral private keys): seal it before it leaves the process. It
        holds no config; restore must be given the one this connection was made with.
        Raises StateError when the handshake is over or a private-key operation is out.
        """
        return _snapshot(self, ROLE_CLIENT)

    @classmethod
    def restore(
        cls,
        snapshot: bytes,
        config: ClientConfig,
        *,
        random: Random = os.urandom,
        clock: Clock = time.time,
    ) -> ClientConnection:
        """The connection a snapshot() was taken of; SnapshotError when it cannot be read."""
        self = cls(config, random=random, clock=clock, _start=False)
        _restore_state(self, snapshot, config)
        return self


class ServerConnection(Connection):
    """The server role: waits for a ClientHello."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        random: Random = os.urandom,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(random, clock)
        self.config = config
        self._state = ExpectFirstClientHello(config)

    def snapshot(self) -> bytes:
        """A snapshot of the handshake so far (as ClientConnection.snapshot says: it
        contains secrets; seal it before it leaves the process)."""
        return _snapshot(self, ROLE_SERVER)

    @classmethod
    def restore(
        cls,
        snapshot: bytes,
        config: ServerConfig,
        *,
        random: Random = os.urandom,
        clock: Clock = time.time,
    ) -> ServerConnection:
        """The connection a snapshot() was taken of; SnapshotError when it cannot be read."""
        self = cls(config, random=random, clock=clock)
        _restore_state(self, snapshot, config)
        return self


__all__ = [
    "ClientConnection",
    "Connection",
    "ConnectionState",
    "HandshakeState",
    "ServerConnection",
    "StateError",
]
