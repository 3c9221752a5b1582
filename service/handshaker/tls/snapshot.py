"""The snapshot format: a connection's handshake state as versioned plain bytes.

Version-neutral: the header, the field codec and the connection's own fields
(record layer, buffers, limits) live here; what each TLS 1.3 state holds is
written by tls13/snapshot.py (and a TLS 1.2 module will write its own states).

    snapshot = magic "HSnp" | format version (1 byte) | role (1) | protocol (2)
               | state tag (1) | connection fields | state fields

Integers are big-endian; byte strings carry a 4-byte length. A snapshot
CONTAINS SECRETS (traffic secrets, ephemeral private keys): whoever stores it
must seal it (AES-GCM under a key of its own, bound to the session it belongs
to). A snapshot never holds a config: restore() is given one, and it must be the
config the connection was made with (the service rebuilds it from the options).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .key_schedule import CipherSuiteParams
from .record import MAX_PLAINTEXT, Protection, RecordProtection
from .tls12.record import Tls12RecordProtection
from .tls12.suites import TLS12_SUITES

if TYPE_CHECKING:
    from .core import Connection

MAGIC = b"HSnp"
FORMAT_VERSION = 1
# The protocol field of a connection that has not chosen its version yet.
NO_VERSION = 0
ROLE_CLIENT = 1
ROLE_SERVER = 2
_HEADER = struct.Struct(">4sBBHB")


class SnapshotError(ValueError):
    """A snapshot this engine cannot restore: another format version, or undecodable bytes."""


class SnapshotWriter:
    """Appends fields to a snapshot."""

    def __init__(self) -> None:
        self._out = bytearray()

    def u8(self, value: int) -> None:
        self._out.append(value)

    def u16(self, value: int) -> None:
        self._out += value.to_bytes(2, "big")

    def u32(self, value: int) -> None:
        self._out += value.to_bytes(4, "big")

    def i64(self, value: int) -> None:
        self._out += value.to_bytes(8, "big", signed=True)

    def u64(self, value: int) -> None:
        self._out += value.to_bytes(8, "big")

    def blob(self, value: bytes) -> None:
        self._out += len(value).to_bytes(4, "big")
        self._out += value

    def optional_blob(self, value: bytes | None) -> None:
        if value is None:
            self.u8(0)
        else:
            self.u8(1)
            self.blob(value)

    def optional_u16(self, value: int | None) -> None:
        if value is None:
            self.u8(0)
        else:
            self.u8(1)
            self.u16(value)

    def u16_list(self, values: tuple[int, ...] | frozenset[int]) -> None:
        self.u16(len(values))
        for value in sorted(values) if isinstance(values, frozenset) else values:
            self.u16(value)

    def blobs(self, values: tuple[bytes, ...]) -> None:
        self.u16(len(values))
        for value in values:
            self.blob(value)

    def getvalue(self) -> bytes:
        return bytes(self._out)


class SnapshotReader:
    """Reads fields back; any shortfall or leftover is a SnapshotError."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise SnapshotError("snapshot is truncated")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self._take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self._take(4), "big")

    def i64(self) -> int:
        return int.from_bytes(self._take(8), "big", signed=True)

    def u64(self) -> int:
        return int.from_bytes(self._take(8), "big")

    def flag(self) -> bool:
        value = self.u8()
        if value > 1:
            raise SnapshotError("snapshot has a malformed flag")
        return value == 1

    def blob(self) -> bytes:
        return self._take(self.u32())

    def optional_blob(self) -> bytes | None:
        return self.blob() if self.flag() else None

    def optional_u16(self) -> int | None:
        return self.u16() if self.flag() else None

    def u16_list(self) -> tuple[int, ...]:
        return tuple(self.u16() for _ in range(self.u16()))

    def blobs(self) -> tuple[bytes, ...]:
        return tuple(self.blob() for _ in range(self.u16()))

    def suite(self) -> CipherSuiteParams:
        suite = self.u16()
        try:
            return CipherSuiteParams.for_suite(suite)
        except KeyError:
            raise SnapshotError(f"snapshot names an unknown cipher suite 0x{suite:04x}") from None

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise SnapshotError("snapshot has trailing bytes")


def write_header(w: SnapshotWriter, role: int, protocol: int, tag: int) -> None:
    w._out += _HEADER.pack(MAGIC, FORMAT_VERSION, role, protocol, tag)


def read_header(r: SnapshotReader, role: int) -> tuple[int, int]:
    """Check magic, format version and role; (protocol, state tag)."""
    if not isinstance(r._data, bytes | bytearray | memoryview):
        raise SnapshotError("a snapshot is bytes")
    if len(r._data) < _HEADER.size or r._data[:4] != MAGIC:
        raise SnapshotError("not a handshake snapshot")
    _, version, snapshot_role, protocol, tag = _HEADER.unpack(r._take(_HEADER.size))
    if version != FORMAT_VERSION:
        raise SnapshotError(
            f"snapshot format version {version} is not supported (this engine reads "
            f"{FORMAT_VERSION})"
        )
    if snapshot_role != role:
        names = {ROLE_CLIENT: "client", ROLE_SERVER: "server"}
        raise SnapshotError(
            f"snapshot is of a {names.get(snapshot_role, 'unknown')} connection, "
            f"not a {names[role]} one"
        )
    return protocol, tag


# The tag in front of a direction's protection: none, TLS 1.3's, TLS 1.2's.
_NO_PROTECTION = 0
_TLS13_PROTECTION = 1
_TLS12_PROTECTION = 2


def _write_protection(w: SnapshotWriter, protection: Protection | None) -> None:
    if protection is None:
        w.u8(_NO_PROTECTION)
        return
    w.u8(_TLS13_PROTECTION if protection.hides_content_type else _TLS12_PROTECTION)
    w.u16(protection.params.suite)
    w.blob(protection.key)
    w.blob(protection.iv)
    w.u64(protection.sequence_number)


def _read_protection(r: SnapshotReader) -> Protection | None:
    kind = r.u8()
    if kind == _NO_PROTECTION:
        return None
    if kind == _TLS12_PROTECTION:
        suite = r.u16()
        if suite not in TLS12_SUITES:
            raise SnapshotError(f"snapshot names an unknown TLS 1.2 suite 0x{suite:04x}")
        key = r.blob()
        iv = r.blob()
        try:
            return Tls12RecordProtection(TLS12_SUITES[suite], key, iv, r.u64())
        except ValueError:
            raise SnapshotError("snapshot has a record key of the wrong size") from None
    if kind != _TLS13_PROTECTION:
        raise SnapshotError("snapshot has a malformed flag")
    params = r.suite()
    key = r.blob()
    iv = r.blob()
    if len(key) != params.key_len or len(iv) != 12:
        raise SnapshotError("snapshot has a record key of the wrong size")
    return RecordProtection(params, key, iv, r.u64())


def write_connection(w: SnapshotWriter, conn: Connection) -> None:
    """The fields every connection has, whatever its version or role."""
    w.blob(conn._reader.pending())
    w.blob(conn._handshake_buffer)
    w.blob(bytes(conn._out))
    _write_protection(w, conn._read)
    _write_protection(w, conn._write)
    w.u32(conn._read_epoch)
    w.u16(conn.write_fragment_limit)
    w.u16(conn.read_fragment_limit)
    w.u8(int(conn.ccs_allowed))
    w.i64(conn.skip_early_data)
    w.u16(min(conn.dummy_change_cipher_specs, 0xFFFF))
    w.u16(min(conn.tiny_records, 0xFFFF))


def read_connection(r: SnapshotReader, conn: Connection) -> None:
    conn._reader.feed(r.blob())
    conn._handshake_buffer = r.blob()
    conn._out += r.blob()
    conn._read = _read_protection(r)
    conn._write = _read_protection(r)
    conn._read_epoch = r.u32()
    conn.write_fragment_limit = r.u16()
    conn.read_fragment_limit = r.u16()
    # RFC 8449: a record_size_limit is 64 to 2^14 + 1, so a fragment limit 63 to 2^14.
    if not (63 <= conn.write_fragment_limit <= MAX_PLAINTEXT >= conn.read_fragment_limit >= 63):
        raise SnapshotError("snapshot has a record size limit out of range")
    conn.ccs_allowed = r.flag()
    conn.skip_early_data = r.i64()
    conn.dummy_change_cipher_specs = r.u16()
    conn.tiny_records = r.u16()
