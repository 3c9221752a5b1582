"""Extension blocks and the bodies of the extensions we read and write (RFC 8446 section
4.2, RFC 6066, RFC 7301), version-neutral: TLS 1.3 and TLS 1.2 hellos use the same ones.

Wire layer only: no state, no crypto, no policy. A block is an ordered tuple of
(type, raw data), so a parsed message re-encodes to the same bytes and unknown
(GREASE) types survive as plain ints. Duplicate extensions are rejected here (RFC
8446 section 4.2: "There MUST NOT be more than one extension of the same type in a
given extension block").
"""

from __future__ import annotations

import struct

from .codec import Reader, Writer, uint16_array
from .errors import DecodeError, IllegalParameter

Extensions = tuple[tuple[int, bytes], ...]

# The Reader's DecodeError reasons, for the parsers that read inline.
TRUNCATED = "message truncated"
TRAILING = "trailing bytes after a message"
TOO_SHORT = "vector shorter than its minimum length"


def read_extensions(r: Reader, *, required: bool = True, minimum: int = 0) -> Extensions:
    """Extension extensions<minimum..2^16-1>; a ClientHello or ServerHello may omit the block.

        struct { ExtensionType extension_type; opaque extension_data<0..2^16-1>; } Extension;

    Read inline rather than through Reader calls: every hello and EncryptedExtensions
    comes through here.
    """
    if not required and r.eof():
        return ()
    length = r.uint16()
    if length < minimum:
        raise DecodeError("vector shorter than its minimum length")
    pos = r._take(length)
    end = pos + length
    data = r.data
    items: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    while pos < end:
        if pos + 4 > end:
            raise DecodeError("message truncated")
        ext_type = (data[pos] << 8) | data[pos + 1]
        start = pos + 4
        pos = start + ((data[pos + 2] << 8) | data[pos + 3])
        if pos > end:
            raise DecodeError("message truncated")
        if ext_type in seen:
            raise IllegalParameter(f"duplicate extension {ext_type}")
        seen.add(ext_type)
        items.append((ext_type, data[start:pos]))
    return tuple(items)


# ExtensionType extension_type, then extension_data's uint16 length.
_EXTENSION_HEADER = struct.Struct(">HH")


def extensions_block(extensions: Extensions) -> bytes:
    """Extension extensions<0..2^16-1> with its length: one join, no Writer calls (every
    hello and EncryptedExtensions goes out through here)."""
    header = _EXTENSION_HEADER.pack
    try:
        body = b"".join([header(ext_type, len(data)) + data for ext_type, data in extensions])
    except struct.error:
        # What the Writer raised for a type or a data length past 16 bits.
        raise OverflowError("extension type or data length does not fit 16 bits") from None
    if len(body) >= 1 << 16:
        raise ValueError("vector too long for its length prefix")
    return len(body).to_bytes(2, "big") + body


def write_extensions(w: Writer, extensions: Extensions) -> None:
    w.raw(extensions_block(extensions))


# --- extension bodies -------------------------------------------------------


def encode_server_name(host: str) -> bytes:
    """ServerNameList with one host_name entry (RFC 6066 section 3)."""
    name = host.encode("ascii")
    w = Writer()
    with w.block(2):
        w.uint8(0)  # NameType host_name
        w.opaque(2, name)
    return w.getvalue()


def parse_server_name(data: bytes) -> str | None:
    """ServerNameList server_name_list<1..2^16-1> (RFC 6066 section 3), read inline with the
    Reader's checks in its order and words: most ClientHellos carry one."""
    size = len(data)
    if size < 2:
        raise DecodeError(TRUNCATED)
    end = 2 + ((data[0] << 8) | data[1])
    if end == 2:
        raise DecodeError(TOO_SHORT)
    if end > size:
        raise DecodeError(TRUNCATED)
    host: str | None = None
    pos = 2
    while pos < end:
        if pos + 3 > end:
            raise DecodeError(TRUNCATED)
        length = (data[pos + 1] << 8) | data[pos + 2]
        if length < 1:
            raise DecodeError(TOO_SHORT)
        start = pos + 3
        name_type = data[pos]
        pos = start + length
        if pos > end:
            raise DecodeError(TRUNCATED)
        if name_type == 0:
            if host is not None:
                raise IllegalParameter("more than one host_name in server_name")
            try:
                host = data[start:pos].decode("ascii")
            except UnicodeDecodeError:
                raise IllegalParameter("server_name is not ASCII") from None
    if end != size:
        raise DecodeError(TRAILING)
    return host


def encode_uint16_list(values: tuple[int, ...], size: int = 2) -> bytes:
    w = Writer()
    w.uint16_list(size, values)
    return w.getvalue()


def parse_uint16_list(data: bytes, size: int = 2) -> tuple[int, ...]:
    """An extension body that is exactly one uint16 list with a `size`-byte length."""
    if len(data) < size:
        raise DecodeError("message truncated")
    n = data[0] if size == 1 else (data[0] << 8) | data[1]
    if n < 2 or n % 2:
        raise DecodeError("malformed list of 16-bit values")
    if len(data) != size + n:
        raise DecodeError(
            "message truncated" if len(data) < size + n else "trailing bytes after a message"
        )
    return uint16_array(n >> 1).unpack_from(data, size)


def encode_alpn(protocols: tuple[bytes, ...]) -> bytes:
    """ProtocolNameList (RFC 7301 section 3.1)."""
    w = Writer()
    with w.block(2):
        for proto in protocols:
            w.opaque(1, proto)
    return w.getvalue()


def parse_alpn(data: bytes) -> tuple[bytes, ...]:
    r = Reader(data)
    protocols: list[bytes] = []
    with r.block(2, minimum=2) as names:
        while not names.eof():
            protocols.append(names.opaque(1, minimum=1))
    r.finish()
    return tuple(protocols)


KeyShareEntry = tuple[int, bytes]


def encode_client_key_shares(shares: tuple[KeyShareEntry, ...]) -> bytes:
    """KeyShareClientHello: KeyShareEntry client_shares<0..2^16-1>."""
    # Same layout as an extension block: uint16 group, then opaque key_exchange<1..2^16-1>.
    return extensions_block(shares)


def parse_client_key_shares(data: bytes) -> tuple[KeyShareEntry, ...]:
    """KeyShareEntry client_shares<0..2^16-1>, each key_exchange<1..2^16-1>.

    Read inline, with the Reader's checks in the Reader's order and words: every
    ClientHello comes through here.
    """
    size = len(data)
    if size < 2:
        raise DecodeError(TRUNCATED)
    end = 2 + ((data[0] << 8) | data[1])
    if end > size:
        raise DecodeError(TRUNCATED)
    shares: list[KeyShareEntry] = []
    pos = 2
    while pos < end:
        if pos + 4 > end:
            raise DecodeError(TRUNCATED)
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 1:
            raise DecodeError(TOO_SHORT)
        start = pos + 4
        group = (data[pos] << 8) | data[pos + 1]
        pos = start + length
        if pos > end:
            raise DecodeError(TRUNCATED)
        shares.append((group, data[start:pos]))
    if end != size:
        raise DecodeError(TRAILING)
    return tuple(shares)


def encode_server_key_share(group: int, key_exchange: bytes) -> bytes:
    return group.to_bytes(2, "big") + len(key_exchange).to_bytes(2, "big") + key_exchange


def parse_server_key_share(data: bytes) -> KeyShareEntry:
    """KeyShareEntry: uint16 group, opaque key_exchange<1..2^16-1> (read inline, as the
    Reader would)."""
    size = len(data)
    if size < 4:
        raise DecodeError(TRUNCATED)
    length = (data[2] << 8) | data[3]
    if length < 1:
        raise DecodeError(TOO_SHORT)
    end = 4 + length
    if end != size:
        raise DecodeError(TRUNCATED if end > size else TRAILING)
    return (data[0] << 8) | data[1], data[4:end]


def encode_uint16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def parse_uint16(data: bytes) -> int:
    if len(data) != 2:
        raise DecodeError(TRUNCATED if len(data) < 2 else TRAILING)
    return (data[0] << 8) | data[1]


def parse_opaque(data: bytes, size: int, minimum: int = 0) -> bytes:
    r = Reader(data)
    value = r.opaque(size, minimum)
    r.finish()
    return value


def encode_opaque(value: bytes, size: int) -> bytes:
    return len(value).to_bytes(size, "big") + value


def parse_uint8_list(data: bytes) -> tuple[int, ...]:
    r = Reader(data)
    values = tuple(r.opaque(1, minimum=1))
    r.finish()
    return values


def parse_offered_psks(data: bytes) -> None:
    """Check the framing of a ClientHello's pre_shared_key (RFC 8446 section 4.2.11).

    struct { opaque identity<1..2^16-1>; uint32 obfuscated_ticket_age; } PskIdentity;
    opaque PskBinderEntry<32..255>;
    struct {
        PskIdentity identities<7..2^16-1>;
        PskBinderEntry binders<33..2^16-1>;
    } OfferedPsks;

    No PSK is ever accepted, so only the syntax matters: a malformed one is decode_error.
    """
    r = Reader(data)
    with r.block(2, minimum=7) as identities:
        while not identities.eof():
            identities.opaque(2, minimum=1)
            identities.uint32()
    with r.block(2, minimum=33) as binders:
        while not binders.eof():
            binders.opaque(1, minimum=32)
    r.finish()


def parse_certificate_authorities(data: bytes) -> None:
    """Check certificate_authorities' framing (section 4.2.4); the names are not used.

    opaque DistinguishedName<1..2^16-1>;
    struct { DistinguishedName authorities<3..2^16-1>; } CertificateAuthoritiesExtension;
    """
    r = Reader(data)
    with r.block(2, minimum=3) as names:
        while not names.eof():
            names.opaque(2, minimum=1)
    r.finish()


def parse_oid_filters(data: bytes) -> None:
    """Check oid_filters' framing (section 4.2.5); no filter is applied.

    struct {
        opaque certificate_extension_oid<1..2^8-1>;
        opaque certificate_extension_values<0..2^16-1>;
    } OIDFilter;
    struct { OIDFilter filters<0..2^16-1>; } OIDFilterExtension;
    """
    r = Reader(data)
    with r.block(2) as filters:
        while not filters.eof():
            filters.opaque(1, minimum=1)
            filters.opaque(2)
    r.finish()


def parse_empty(data: bytes) -> None:
    if data:
        raise DecodeError("extension must be empty")
