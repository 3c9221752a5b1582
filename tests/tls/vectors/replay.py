"""Helpers for replaying RFC 8448 traces through the engine: scripted RNG, signer, parsing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from handshaker.tls import HandshakeComplete, HandshakeFailed, HandshakeResult
from handshaker.tls.events import Event
from handshaker.tls.key_schedule import CipherSuiteParams

from .rfc8448 import RSA_PSS_RSAE_SHA256, SERVER_RSA_KEY, TLS_AES_128_GCM_SHA256, Trace

# Every trace used here negotiates TLS_AES_128_GCM_SHA256.
PARAMS = CipherSuiteParams.for_suite(TLS_AES_128_GCM_SHA256)

# 2019-01-01T00:00:00Z: inside the RFC certificate's validity (2016-07-30 .. 2026-07-30).
RFC_CERTIFICATE_VALID_AT = 1546300800.0

# The order n of secp256r1.
SECP256R1_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def trace_id(trace: Trace) -> str:
    return f"section{trace.section}"


def handshake_record(message: bytes) -> bytes:
    """A plaintext handshake record carrying `message`."""
    return b"\x16\x03\x03" + len(message).to_bytes(2, "big") + message


def single_result(events: list[Event]) -> HandshakeResult:
    """The result of the one HandshakeComplete event; fails with the alert otherwise."""
    assert len(events) == 1, f"expected one event, got {events}"
    event = events[0]
    assert not isinstance(event, HandshakeFailed), f"handshake failed: {event}"
    assert isinstance(event, HandshakeComplete)
    return event.result


def fixed_clock() -> float:
    return RFC_CERTIFICATE_VALID_AT


def secp256r1_draw(scalar: bytes) -> bytes:
    """The RNG output that makes the engine pick `scalar` as its secp256r1 private key.

    The engine draws 32 + 8 bytes and reduces them to v mod (n - 1) + 1, so that the
    scalar is uniform in [1, n - 1]; feeding scalar - 1 yields scalar itself.
    """
    value = int.from_bytes(scalar, "big")
    assert 1 <= value < SECP256R1_ORDER
    return (value - 1).to_bytes(40, "big")


@dataclass(frozen=True, slots=True)
class Draw:
    """One expected call to the engine's RNG."""

    what: str
    size: int
    value: bytes


@dataclass(slots=True)
class ScriptedRandom:
    """An RNG that hands out recorded values in a fixed order and notes any deviation.

    The engine turns any exception inside a handshake step into an internal_error
    alert, so a wrong draw is recorded in `errors` (and raised): tests assert that
    list is empty to fail loudly with the reason rather than with a bare alert.
    """

    script: Sequence[Draw]
    errors: list[str] = field(default_factory=list)
    position: int = 0

    def __call__(self, size: int) -> bytes:
        if self.position >= len(self.script):
            error = f"unexpected RNG draw of {size} bytes after the script ended"
            self.errors.append(error)
            raise AssertionError(error)
        draw = self.script[self.position]
        if size != draw.size:
            error = (
                f"draw {self.position} ({draw.what}): engine asked {size} bytes, "
                f"expected {draw.size}"
            )
            self.errors.append(error)
            raise AssertionError(error)
        self.position += 1
        return draw.value

    def assert_no_errors(self) -> None:
        assert self.errors == [], f"the engine's RNG draws differ from the script: {self.errors}"

    def assert_complete(self) -> None:
        self.assert_no_errors()
        remaining = [d.what for d in self.script[self.position :]]
        assert remaining == [], f"draws never made: {remaining}"


@dataclass(slots=True)
class RfcSigner:
    """A Signer that proves the engine built the RFC's CertificateVerify content.

    RSA-PSS is randomized, so the RFC's signature is returned instead of a fresh
    one, after checking it verifies over the content the engine asked to sign.
    When the content differs (the transcript differs from the RFC's), it signs
    with the RFC's key so the flight stays verifiable; `contents` and
    `matched_rfc` record what happened.
    """

    trace: Trace
    contents: list[bytes] = field(default_factory=list)
    matched_rfc: list[bool] = field(default_factory=list)

    @property
    def signature_schemes(self) -> Sequence[int]:
        return (RSA_PSS_RSAE_SHA256,)

    def sign(self, scheme: int, message: bytes) -> bytes:
        assert scheme == RSA_PSS_RSAE_SHA256, f"asked to sign with scheme 0x{scheme:04x}"
        self.contents.append(message)
        public_key = self.trace.server_certificate().public_key()
        assert isinstance(public_key, rsa.RSAPublicKey)
        try:
            public_key.verify(self.trace.certificate_verify_signature, message, _PSS, _SHA256)
        except InvalidSignature:
            self.matched_rfc.append(False)
            return SERVER_RSA_KEY.private_key().sign(message, _PSS, _SHA256)
        self.matched_rfc.append(True)
        return self.trace.certificate_verify_signature


_SHA256 = hashes.SHA256()
_PSS = padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=_SHA256.digest_size)


def verify_server_signature(trace: Trace, signature: bytes, content: bytes) -> None:
    """Raise InvalidSignature unless `signature` is the RFC server key's over `content`."""
    public_key = trace.server_certificate().public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(signature, content, _PSS, _SHA256)


def split_records(data: bytes) -> list[bytes]:
    """Whole TLS records (header included); asserts nothing is left over."""
    records = []
    while data:
        assert len(data) >= 5, f"truncated record header: {data.hex()}"
        end = 5 + int.from_bytes(data[3:5], "big")
        assert len(data) >= end, "truncated record"
        records.append(data[:end])
        data = data[end:]
    return records


def split_messages(data: bytes) -> list[bytes]:
    """Whole handshake messages (4-byte header included); asserts nothing is left over."""
    messages = []
    while data:
        assert len(data) >= 4, f"truncated handshake header: {data.hex()}"
        end = 4 + int.from_bytes(data[1:4], "big")
        assert len(data) >= end, "truncated handshake message"
        messages.append(data[:end])
        data = data[end:]
    return messages


def _extension_block(data: bytes) -> list[tuple[int, bytes]]:
    length = int.from_bytes(data[:2], "big")
    assert length == len(data) - 2, "extension block length mismatch"
    out = []
    pos = 2
    while pos < len(data):
        ext_type = int.from_bytes(data[pos : pos + 2], "big")
        ext_len = int.from_bytes(data[pos + 2 : pos + 4], "big")
        out.append((ext_type, data[pos + 4 : pos + 4 + ext_len]))
        pos += 4 + ext_len
    return out


def hello_extensions(message: bytes) -> list[tuple[int, bytes]]:
    """The extensions of a ClientHello, ServerHello or HelloRetryRequest message."""
    pos = 4 + 2 + 32
    pos += 1 + message[pos]  # legacy_session_id
    if message[0] == 1:
        pos += 2 + int.from_bytes(message[pos : pos + 2], "big")  # cipher_suites
        pos += 1 + message[pos]  # legacy_compression_methods
    else:
        pos += 2 + 1  # cipher_suite, legacy_compression_method
    return _extension_block(message[pos:])


def encrypted_extensions(message: bytes) -> list[tuple[int, bytes]]:
    assert message[0] == 8, "not EncryptedExtensions"
    return _extension_block(message[4:])


def describe_extensions(extensions: Sequence[tuple[int, bytes]]) -> str:
    return ", ".join(f"0x{t:04x}:{d.hex() or '(empty)'}" for t, d in extensions)


def replace_hello_extension(message: bytes, ext_type: int, data: bytes | None) -> bytes:
    """A ClientHello with one extension's body replaced (None removes it); lengths fixed up."""
    assert message[0] == 1, "not a ClientHello"
    pos = 4 + 2 + 32
    pos += 1 + message[pos]
    pos += 2 + int.from_bytes(message[pos : pos + 2], "big")
    pos += 1 + message[pos]
    new_extensions = b""
    for existing_type, existing in _extension_block(message[pos:]):
        body = existing
        if existing_type == ext_type:
            if data is None:
                continue
            body = data
        new_extensions += existing_type.to_bytes(2, "big")
        new_extensions += len(body).to_bytes(2, "big") + body
    hello = message[4:pos] + len(new_extensions).to_bytes(2, "big") + new_extensions
    return bytes((1,)) + len(hello).to_bytes(3, "big") + hello


def first_difference(actual: bytes, expected: bytes) -> str:
    """Where two byte strings first differ, for assertion messages."""
    for index, (a, b) in enumerate(zip(actual, expected, strict=False)):
        if a != b:
            return (
                f"first difference at byte {index}: engine {actual[index : index + 16].hex()} "
                f"vs RFC {expected[index : index + 16].hex()}"
            )
    if len(actual) != len(expected):
        return f"lengths differ: engine {len(actual)} bytes vs RFC {len(expected)} bytes"
    return "identical"
