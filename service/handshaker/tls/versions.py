"""What a ClientHello offers for each protocol version, version-neutral: supported_versions,
the cipher suite list and TLS 1.2's extensions (RFC 8446 section 4.2.1, RFC 5246, RFC 8422,
RFC 7627, RFC 5746).

Only encodings of the config live here; the hello itself is built by tls13/client.py
(which sends the same ClientHello whichever version the server then picks).
"""

from __future__ import annotations

from .codepoints import ProtocolVersion, Tls12ExtensionType
from .config import ClientConfig

# Enum members read on the per-record and per-message paths, as module constants:
# in Python 3.11 reading Enum.MEMBER goes through the enum machinery (~0.3 us a read).
_TLS1_2 = ProtocolVersion.TLS1_2
_TLS1_3 = ProtocolVersion.TLS1_3

# RFC 8422 section 5.1.2: "uncompressed" is the only point format (RFC 8422 deprecates
# the others).
EC_POINT_FORMATS_UNCOMPRESSED = b"\x01\x00"


def offers_tls12(config: ClientConfig) -> bool:
    return config.min_version <= _TLS1_2


def offers_tls13(config: ClientConfig) -> bool:
    return config.max_version >= _TLS1_3


def supported_versions(config: ClientConfig) -> bytes:
    """ProtocolVersion versions<2..254>, most preferred first."""
    versions = [v for v in (_TLS1_3, _TLS1_2) if config.min_version <= v <= config.max_version]
    body = b"".join(v.to_bytes(2, "big") for v in versions)
    return bytes((len(body),)) + body


def cipher_suites(config: ClientConfig) -> tuple[int, ...]:
    """TLS 1.3 suites first, then TLS 1.2's (built once per config, kept in config.cache)."""
    cached = config.cache.get("offered cipher suites")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    suites: tuple[int, ...] = config.cipher_suites if offers_tls13(config) else ()
    if offers_tls12(config):
        suites += config.tls12_cipher_suites
    config.cache["offered cipher suites"] = suites
    return suites


def signature_algorithms(config: ClientConfig) -> tuple[int, ...]:
    schemes = config.signature_schemes
    if offers_tls12(config):
        schemes += tuple(s for s in config.tls12_signature_schemes if s not in schemes)
    return schemes


def tls12_extensions(config: ClientConfig) -> tuple[tuple[int, bytes], ...]:
    """ec_point_formats, extended_master_secret, renegotiation_info (empty: an initial
    handshake, RFC 5746 section 3.4), when TLS 1.2 is offered."""
    if not offers_tls12(config):
        return ()
    return (
        (Tls12ExtensionType.EC_POINT_FORMATS, EC_POINT_FORMATS_UNCOMPRESSED),
        (Tls12ExtensionType.EXTENDED_MASTER_SECRET, b""),
        (Tls12ExtensionType.RENEGOTIATION_INFO, b"\x00"),
    )
