"""The two roles' connections: the engine's public entry points.

ClientConnection queues its ClientHello when made; ServerConnection waits for
one. Everything they share (records, reassembly, alerts, events) is in core.py;
what each message means is in tls13/.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from .config import ClientConfig, ServerConfig
from .core import Clock, Connection, ConnectionState, HandshakeState, Random, StateError
from .tls13.client import replay_client, start_client
from .tls13.server import ExpectClientHello


class ClientConnection(Connection):
    """The client role. The ClientHello is queued when the connection is made."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        random: Random = os.urandom,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(random, clock)
        self.config = config
        self.ccs_allowed = True
        self._state = start_client(self, config)
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
        self = cls.__new__(cls)
        Connection.__init__(self, random, clock)
        self.config = config
        self.ccs_allowed = True
        self._state = replay_client(self, config, client_hello, private_keys)
        self._flush_handshake()
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
        self._state = ExpectClientHello(config)


__all__ = [
    "ClientConnection",
    "Connection",
    "ConnectionState",
    "HandshakeState",
    "ServerConnection",
    "StateError",
]
