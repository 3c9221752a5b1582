"""handshaker_client: TLS connections whose handshakes run in the handshaker service.

    import handshaker_client as hc

    with hc.connect("example.com", 443, alpn=["http/1.1"]) as tls:   # blocking socket
        tls.sendall(b"GET / HTTP/1.1\\r\\nHost: example.com\\r\\n\\r\\n")

    reader, writer = await hc.open_connection("example.com", 443)      # asyncio streams

    server = await hc.start_server(handle, "0.0.0.0", 8443, api="multiplex")
    # many connections' handshakes share a few Multiplex streams to the service

The service is found at the `handshaker` argument, else $HANDSHAKER_ADDR, else
127.0.0.1:50051. The record layer (record.RecordLayer) runs here, on the keys
the service hands back.
"""

from .aio import AsyncHandshakerClient, AsyncStreamSession, AsyncUnarySession
from .client import HandshakerClient, StreamSession, UnarySession
from .constants import AlertDescription, CipherSuite, NamedGroup, alert_name
from .errors import (
    ConnectionClosedError,
    HandshakeError,
    HandshakerClientError,
    HandshakerRpcError,
    HandshakeTimeoutError,
    LocalProtocolError,
    NoClientHelloError,
    PeerAlertError,
    TLSProtocolError,
)
from .handshake import (
    DEFAULT_ADDRESS,
    Established,
    Step,
    client_options,
    relay_handshake,
    relay_handshake_async,
    resolve_address,
    server_options,
)
from .keyless import (
    AsyncKeylessClient,
    CredentialInfo,
    KeylessClient,
    OperationPipeline,
    Verdict,
)
from .keys import PeerIdentity, SessionKeys, Tls12Session, TrafficKeys
from .layers import open_record_layer
from .multiplex import AsyncMultiplexer, AsyncMultiplexSession
from .record import (
    ApplicationData,
    BaseRecordLayer,
    CloseNotifyReceived,
    KeyUpdateReceived,
    RecordLayer,
    RecordProtection,
)
from .record12 import Tls12RecordLayer, Tls12RecordProtection
from .sockets import TLSSocket, connect, wrap_server_socket
from .streams import (
    TLSStreamReader,
    TLSStreamWriter,
    open_connection,
    start_server,
    tls_over_streams,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "AlertDescription",
    "ApplicationData",
    "AsyncHandshakerClient",
    "AsyncKeylessClient",
    "AsyncMultiplexSession",
    "AsyncMultiplexer",
    "AsyncStreamSession",
    "AsyncUnarySession",
    "BaseRecordLayer",
    "CipherSuite",
    "CloseNotifyReceived",
    "ConnectionClosedError",
    "CredentialInfo",
    "Established",
    "HandshakeError",
    "HandshakeTimeoutError",
    "HandshakerClient",
    "HandshakerClientError",
    "HandshakerRpcError",
    "KeyUpdateReceived",
    "KeylessClient",
    "LocalProtocolError",
    "NamedGroup",
    "NoClientHelloError",
    "OperationPipeline",
    "PeerAlertError",
    "PeerIdentity",
    "RecordLayer",
    "RecordProtection",
    "SessionKeys",
    "Step",
    "StreamSession",
    "TLSProtocolError",
    "TLSSocket",
    "TLSStreamReader",
    "TLSStreamWriter",
    "Tls12RecordLayer",
    "Tls12RecordProtection",
    "Tls12Session",
    "TrafficKeys",
    "UnarySession",
    "Verdict",
    "alert_name",
    "client_options",
    "connect",
    "open_connection",
    "open_record_layer",
    "relay_handshake",
    "relay_handshake_async",
    "resolve_address",
    "server_options",
    "start_server",
    "tls_over_streams",
    "wrap_server_socket",
]
