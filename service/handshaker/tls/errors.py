"""One exception type per TLS alert, raised where the problem is found.

An AlertError ends the handshake: the connection catches it at its API edge,
queues the alert record, and reports HandshakeFailed. `reason` is for logs and
callers; it must never contain key material. Misuse of the engine API by its
caller is a different thing (StateError in connection.py).
"""

from __future__ import annotations

from typing import ClassVar

from .codepoints import AlertDescription


class AlertError(Exception):
    """The handshake must end with this alert."""

    description: ClassVar[AlertDescription] = AlertDescription.INTERNAL_ERROR

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnexpectedMessage(AlertError):
    description = AlertDescription.UNEXPECTED_MESSAGE


class BadRecordMac(AlertError):
    description = AlertDescription.BAD_RECORD_MAC


class RecordOverflow(AlertError):
    description = AlertDescription.RECORD_OVERFLOW


class HandshakeFailure(AlertError):
    description = AlertDescription.HANDSHAKE_FAILURE


class BadCertificate(AlertError):
    description = AlertDescription.BAD_CERTIFICATE


class UnsupportedCertificate(AlertError):
    description = AlertDescription.UNSUPPORTED_CERTIFICATE


class CertificateExpired(AlertError):
    description = AlertDescription.CERTIFICATE_EXPIRED


class CertificateUnknown(AlertError):
    description = AlertDescription.CERTIFICATE_UNKNOWN


class IllegalParameter(AlertError):
    description = AlertDescription.ILLEGAL_PARAMETER


class UnknownCA(AlertError):
    description = AlertDescription.UNKNOWN_CA


class DecodeError(AlertError):
    description = AlertDescription.DECODE_ERROR


class DecryptError(AlertError):
    description = AlertDescription.DECRYPT_ERROR


class ProtocolVersionError(AlertError):
    description = AlertDescription.PROTOCOL_VERSION


class InsufficientSecurity(AlertError):
    description = AlertDescription.INSUFFICIENT_SECURITY


class InappropriateFallback(AlertError):
    description = AlertDescription.INAPPROPRIATE_FALLBACK


class InternalError(AlertError):
    description = AlertDescription.INTERNAL_ERROR


class MissingExtension(AlertError):
    description = AlertDescription.MISSING_EXTENSION


class UnsupportedExtension(AlertError):
    description = AlertDescription.UNSUPPORTED_EXTENSION


class UnrecognizedName(AlertError):
    description = AlertDescription.UNRECOGNIZED_NAME


class CertificateRequired(AlertError):
    description = AlertDescription.CERTIFICATE_REQUIRED


class NoApplicationProtocol(AlertError):
    description = AlertDescription.NO_APPLICATION_PROTOCOL


class PeerAlert(Exception):
    """The peer sent an alert that ends the handshake."""

    def __init__(self, description: int) -> None:
        super().__init__(description)
        self.description = description
