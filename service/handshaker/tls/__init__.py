"""The sans-IO TLS 1.3 and 1.2 engine: bytes in, bytes and events out.

No gRPC, sockets, threads, globals, clock or RNG of its own live in this package:
the RNG and clock are injected, so recorded traces replay byte for byte.

    conn = ClientConnection(config)            # ClientHello queued
    sock.sendall(conn.data_to_send())
    conn.receive_data(sock.recv(65536))
    for event in conn.events(): ...            # HandshakeComplete | HandshakeFailed
"""

# The compiled build of the engine's modules, when it is fresh, is found before them
# (compiled.py); so the modules are imported only after __path__ says where from.
from . import compiled as _compiled

__path__ = _compiled.search_path(__path__, "")

from .codepoints import (
    AlertDescription,
    CipherSuite,
    ContentType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
    Tls12CipherSuite,
)
from .config import ClientAuth, ClientConfig, Credential, CredentialSelector, ServerConfig
from .connection import ClientConnection, ConnectionState, ServerConnection, StateError
from .events import (
    NEED_DATA,
    Event,
    HandshakeComplete,
    HandshakeFailed,
    HandshakeResult,
    NeedData,
    TrafficKeys,
)
from .keyops import DeferredKey, OperationKind, PrivateKeyOperation
from .record import RecordProtection, RecordReader
from .signer import PrivateKeySigner, Signer, SignerError
from .snapshot import SnapshotError
from .tls12.record import Tls12RecordProtection

__all__ = [
    "NEED_DATA",
    "AlertDescription",
    "CipherSuite",
    "ClientAuth",
    "ClientConfig",
    "ClientConnection",
    "ConnectionState",
    "ContentType",
    "Credential",
    "CredentialSelector",
    "DeferredKey",
    "Event",
    "HandshakeComplete",
    "HandshakeFailed",
    "HandshakeResult",
    "NamedGroup",
    "NeedData",
    "OperationKind",
    "PrivateKeyOperation",
    "PrivateKeySigner",
    "ProtocolVersion",
    "RecordProtection",
    "RecordReader",
    "ServerConfig",
    "ServerConnection",
    "SignatureScheme",
    "Signer",
    "SignerError",
    "SnapshotError",
    "StateError",
    "Tls12CipherSuite",
    "Tls12RecordProtection",
    "TrafficKeys",
]
