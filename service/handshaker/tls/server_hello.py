"""The server's first step, version-neutral: read the first ClientHello, choose the protocol
version, and hand the hello to that version's state machine.

TLS 1.3 is the one version today (tls13/server.py); TLS 1.2 joins here, as its own
tls12/ package, never inside tls13/. Nothing here depends on a version's messages
beyond the ClientHello they share.
"""

from __future__ import annotations

from .codepoints import HandshakeType, ProtocolVersion
from .config import ServerConfig
from .core import Connection, HandshakeState
from .errors import ProtocolVersionError
from .messages import ClientHello, parse_client_hello
from .tls13 import server as tls13_server
from .tls13.common import expect


def select_version(config: ServerConfig, hello: ClientHello) -> int:
    """The version to speak (RFC 8446 section 4.2.1: supported_versions decides)."""
    offered = hello.supported_versions
    if offered is not None and ProtocolVersion.TLS1_3 in offered:
        return ProtocolVersion.TLS1_3
    raise ProtocolVersionError("client does not offer TLS 1.3")


class ExpectFirstClientHello:
    """Waiting for the connection's first message; no version chosen yet."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, HandshakeType.CLIENT_HELLO, "waiting for ClientHello")
        hello = parse_client_hello(message[4:])
        select_version(self.config, hello)
        return tls13_server.ExpectClientHello(self.config).handle_hello(conn, message, hello)
