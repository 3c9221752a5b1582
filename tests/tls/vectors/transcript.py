"""Transcript hashes of an RFC 8448 trace, computed from its message bytes (RFC 8446 4.4.1)."""

from __future__ import annotations

import hashlib

from .rfc8448 import Trace

HANDSHAKE_TYPE_MESSAGE_HASH = 254


def message_hash(client_hello: bytes) -> bytes:
    """The synthetic message that stands for ClientHello1 after a HelloRetryRequest.

    Transcript-Hash(ClientHello1, HelloRetryRequest, ... Mn) =
        Hash(message_hash ||        /* Handshake type */
             00 00 Hash.length  ||  /* Handshake message length (bytes) */
             Hash(ClientHello1) ||  /* Hash of ClientHello1 */
             HelloRetryRequest  || ... || Mn)
    """
    digest = hashlib.sha256(client_hello).digest()
    return bytes((HANDSHAKE_TYPE_MESSAGE_HASH, 0, 0, len(digest))) + digest


def _hellos(trace: Trace) -> bytes:
    if trace.hello_retry_request is None or trace.client_hello_2 is None:
        return trace.client_hello
    return message_hash(trace.client_hello) + trace.hello_retry_request + trace.client_hello_2


def _hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def through_server_hello(trace: Trace) -> bytes:
    """Transcript-Hash(ClientHello..ServerHello): the context of the handshake secrets."""
    return _hash(_hellos(trace) + trace.server_hello)


def through_certificate(trace: Trace) -> bytes:
    """Transcript-Hash(ClientHello..Certificate): what the server's CertificateVerify signs."""
    return _hash(
        _hellos(trace) + trace.server_hello + trace.encrypted_extensions + trace.certificate
    )


def through_certificate_verify(trace: Trace) -> bytes:
    """Transcript-Hash(ClientHello..CertificateVerify): what the server's Finished covers."""
    return _hash(
        _hellos(trace)
        + trace.server_hello
        + trace.encrypted_extensions
        + trace.certificate
        + trace.certificate_verify
    )


def through_server_finished(trace: Trace) -> bytes:
    """Transcript-Hash(ClientHello..server Finished): application secrets, client Finished."""
    return _hash(
        _hellos(trace)
        + trace.server_hello
        + trace.encrypted_extensions
        + trace.certificate
        + trace.certificate_verify
        + trace.server_finished
    )


def through_client_finished(trace: Trace) -> bytes:
    """Transcript-Hash(ClientHello..client Finished): the resumption master secret."""
    return _hash(
        _hellos(trace)
        + trace.server_hello
        + trace.encrypted_extensions
        + trace.certificate
        + trace.certificate_verify
        + trace.server_finished
        + trace.client_finished
    )


def server_certificate_verify_content(transcript_hash: bytes) -> bytes:
    """RFC 8446 4.4.3: 64 spaces, the context string, a zero byte, then the transcript hash."""
    return b" " * 64 + b"TLS 1.3, server CertificateVerify" + b"\x00" + transcript_hash
