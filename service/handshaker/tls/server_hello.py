"""The server's first step, version-neutral: read the first ClientHello, choose the protocol
version, and hand the hello to that version's state machine (tls13/ or tls12/).

Nothing here depends on a version's messages beyond the ClientHello they share.
"""

from __future__ import annotations

from .codepoints import TLS_FALLBACK_SCSV, HandshakeType, ProtocolVersion
from .config import ServerConfig
from .core import Connection, HandshakeState
from .errors import InappropriateFallback, ProtocolVersionError
from .messages import ClientHello, parse_client_hello
from .tls12 import server as tls12_server
from .tls13 import server as tls13_server
from .tls13.common import expect

# Enum members read on the per-record and per-message paths, as module constants:
# in Python 3.11 reading Enum.MEMBER goes through the enum machinery (~0.3 us a read).
_CLIENT_HELLO = HandshakeType.CLIENT_HELLO
_TLS1_2 = ProtocolVersion.TLS1_2
_TLS1_3 = ProtocolVersion.TLS1_3


def _client_versions(hello: ClientHello) -> tuple[int, ...]:
    """The versions the client offers: supported_versions, else legacy_version alone
    (RFC 8446 section 4.2.1: without the extension the client speaks at most that)."""
    if hello.supported_versions is not None:
        return hello.supported_versions
    return (min(hello.legacy_version, _TLS1_2),)


def select_version(config: ServerConfig, hello: ClientHello) -> int:
    """The version to speak: the highest both sides enable (RFC 8446 section 4.2.1,
    RFC 5246 appendix E.1), TLS 1.3 preferred."""
    offered = _client_versions(hello)
    for version in (_TLS1_3, _TLS1_2):
        if config.min_version <= version <= config.max_version and version in offered:
            chosen = version
            break
    else:
        # RFC 5246 appendix E.1 / RFC 8446 section 4.2.1: nothing in common (TLS 1.1
        # and older included) is protocol_version.
        raise ProtocolVersionError("no protocol version in common")
    if TLS_FALLBACK_SCSV in hello.cipher_suites and chosen < config.max_version:
        # RFC 7507 section 3: "If TLS_FALLBACK_SCSV appears in ClientHello.cipher_suites
        # and the highest protocol version supported by the server is higher than the
        # version indicated by the client, the server MUST respond with a fatal
        # inappropriate_fallback alert".
        raise InappropriateFallback("client fell back to a lower version than ours")
    return chosen


class ExpectFirstClientHello:
    """Waiting for the connection's first message; no version chosen yet."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, _CLIENT_HELLO, "waiting for ClientHello")
        hello = parse_client_hello(message[4:])
        if select_version(self.config, hello) == _TLS1_2:
            return tls12_server.ExpectClientHello(self.config).handle_hello(conn, message, hello)
        return tls13_server.ExpectClientHello(self.config).handle_hello(conn, message, hello)
