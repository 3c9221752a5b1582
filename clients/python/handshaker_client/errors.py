"""The exceptions of handshaker_client: handshake failures, service errors, record-layer errors.

Messages name alerts and status codes; they never carry key material.
"""

from __future__ import annotations

import grpc
import grpc.aio

from .constants import alert_name


class HandshakerClientError(Exception):
    """Base of every error this package raises."""


class HandshakeError(HandshakerClientError):
    """The TLS handshake failed; the alert record (if any) was already written to the peer."""

    def __init__(self, alert: int, reason: str, sent_by_peer: bool) -> None:
        self.alert = alert
        self.reason = reason
        self.sent_by_peer = sent_by_peer
        by = "the peer sent" if sent_by_peer else "sent"
        super().__init__(f"{alert_name(alert)} ({alert}), {by}: {reason}")

    @property
    def alert_name(self) -> str:
        return alert_name(self.alert)


class HandshakerRpcError(HandshakerClientError):
    """The handshaker service answered an RPC with a status other than OK."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self.details = details
        super().__init__(f"{code.name}: {details}")

    @classmethod
    def from_grpc(cls, error: grpc.RpcError) -> HandshakerRpcError:
        # grpc.Call (sync) and grpc.aio.AioRpcError (asyncio) both carry the status,
        # but only the first is a grpc.Call.
        if isinstance(error, (grpc.Call, grpc.aio.AioRpcError)):
            return cls(error.code(), error.details() or "")
        return cls(grpc.StatusCode.UNKNOWN, str(error))

    @classmethod
    def protocol(cls, what: str) -> HandshakerRpcError:
        """The service answered OK with something the contract does not allow."""
        return cls(grpc.StatusCode.INTERNAL, f"unexpected answer from the service: {what}")


class ConnectionClosedError(HandshakerClientError, ConnectionError):
    """The peer closed the transport before the handshake finished."""


class NoClientHelloError(ConnectionClosedError):
    """The peer closed the connection before sending a byte: a TCP probe (a load
    balancer's or the kubelet's health check) rather than a TLS client."""


class HandshakeTimeoutError(ConnectionClosedError, TimeoutError):
    """The handshake did not complete in time; the socket is to be closed (a plaintext
    user_canceled alert went to the peer when nothing encrypted had been exchanged)."""


class TLSProtocolError(HandshakerClientError):
    """A TLS error after the handshake, carrying its alert description."""

    def __init__(self, alert: int, reason: str) -> None:
        self.alert = alert
        self.reason = reason
        super().__init__(f"{alert_name(alert)} ({alert}): {reason}")

    @property
    def alert_name(self) -> str:
        return alert_name(self.alert)


class PeerAlertError(TLSProtocolError):
    """The peer sent an error alert; the connection is over."""

    def __init__(self, alert: int) -> None:
        super().__init__(alert, "received from the peer")


class LocalProtocolError(TLSProtocolError):
    """The peer broke the record protocol; our alert record is queued for it."""
