"""The client's first wait, version-neutral: the ServerHello says which version the server
chose, and the hello goes to that version's state machine (tls13/ or tls12/).

The ClientHello itself offers both (versions.py says what for each); it is built and
sent by tls13/client.py's start_client, whose ExpectServerHello this state wraps.
A HelloRetryRequest is TLS 1.3's, so after one the TLS 1.3 state waits alone.
"""

from __future__ import annotations

from .codepoints import ExtensionType, HandshakeType, ProtocolVersion
from .config import ClientConfig
from .core import Connection, HandshakeState
from .errors import IllegalParameter, ProtocolVersionError
from .messages import parse_server_hello
from .tls12 import client as tls12_client
from .tls13 import client as tls13_client
from .tls13.common import expect
from .versions import offers_tls12, offers_tls13

# Enum members read on the per-record and per-message paths, as module constants:
# in Python 3.11 reading Enum.MEMBER goes through the enum machinery (~0.3 us a read).
_SERVER_HELLO = HandshakeType.SERVER_HELLO
_SUPPORTED_VERSIONS = ExtensionType.SUPPORTED_VERSIONS
_TLS1_2 = ProtocolVersion.TLS1_2


class ExpectServerHello:
    """Waiting for the first ServerHello of a ClientHello that offered TLS 1.3 and 1.2."""

    def __init__(self, tls13: tls13_client.ExpectServerHello) -> None:
        self.tls13 = tls13

    @property
    def config(self) -> ClientConfig:
        return self.tls13.config

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, _SERVER_HELLO, "waiting for ServerHello")
        server_hello = parse_server_hello(message[4:])
        if _SUPPORTED_VERSIONS in dict(server_hello.extensions):
            # RFC 8446 section 4.2.1: supported_versions in a ServerHello is TLS 1.3's
            # (its value is checked there).
            if not offers_tls13(self.config):
                raise IllegalParameter("server selected TLS 1.3, which we did not offer")
            # Parsed once: the TLS 1.3 state takes the hello as it is.
            return self.tls13.handle_server_hello(conn, message, server_hello)
        if server_hello.legacy_version != _TLS1_2:
            # RFC 5246 appendix E.1 / RFC 8446 section 4.2.1: nothing below TLS 1.2.
            raise ProtocolVersionError("server chose a version below TLS 1.2")
        tls13 = self.tls13
        return tls12_client.handle_server_hello(
            conn,
            config=tls13.config,
            hello=tls13.hello,
            hello_message=tls13.hello_message,
            server_hello=server_hello,
            message=message,
        )


def start(conn: Connection, config: ClientConfig) -> HandshakeState:
    """Queue the ClientHello; wait for a ServerHello of either version."""
    state = tls13_client.start_client(conn, config)
    if offers_tls12(config) and isinstance(state, tls13_client.ExpectServerHello):
        return ExpectServerHello(state)
    return state
