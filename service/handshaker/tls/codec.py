"""Wire codec primitives: a bounded reader and a growing writer.

`Reader.block(n)` returns a sub-reader over an n-byte length-prefixed vector;
used as a context manager it fails with decode_error when the vector is not
consumed exactly. Every truncation and every leftover becomes DecodeError here,
in one place, so message parsers never check lengths themselves.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from types import TracebackType

from .errors import DecodeError


@lru_cache(maxsize=512)
def uint16_array(count: int) -> struct.Struct:
    """The big-endian layout of `count` uint16 values: one C call reads a whole list."""
    return struct.Struct(f">{count}H")


class Reader:
    """Reads big-endian integers and vectors from data[pos:end]."""

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def eof(self) -> bool:
        return self.pos >= self.end

    def _take(self, n: int) -> int:
        start = self.pos
        stop = start + n
        if stop > self.end:
            raise DecodeError("message truncated")
        self.pos = stop
        return start

    def uint8(self) -> int:
        start = self._take(1)
        return self.data[start]

    def uint16(self) -> int:
        start = self._take(2)
        data = self.data
        return (data[start] << 8) | data[start + 1]

    def uint24(self) -> int:
        start = self._take(3)
        return int.from_bytes(self.data[start : start + 3], "big")

    def uint32(self) -> int:
        start = self._take(4)
        return int.from_bytes(self.data[start : start + 4], "big")

    def raw(self, n: int) -> bytes:
        start = self._take(n)
        return self.data[start : start + n]

    def rest(self) -> bytes:
        start = self.pos
        self.pos = self.end
        return self.data[start : self.end]

    def _length(self, size: int) -> int:
        if size == 1:
            return self.uint8()
        if size == 2:
            return self.uint16()
        return self.uint24()

    def opaque(self, size: int, minimum: int = 0) -> bytes:
        """An opaque vector with a `size`-byte length prefix (opaque x<minimum..2^(8*size)-1>)."""
        n = self._length(size)
        if n < minimum:
            raise DecodeError("vector shorter than its minimum length")
        return self.raw(n)

    def block(self, size: int, minimum: int = 0) -> Reader:
        """A sub-reader over the next length-prefixed vector; the parent skips past it."""
        n = self._length(size)
        if n < minimum:
            raise DecodeError("vector shorter than its minimum length")
        start = self._take(n)
        return Reader(self.data, start, start + n)

    def uint16_list(self, size: int = 2, minimum: int = 2) -> tuple[int, ...]:
        """A vector of uint16 values (cipher suites, groups, signature schemes, versions)."""
        n = self._length(size)
        if n < minimum or n % 2:
            raise DecodeError("malformed list of 16-bit values")
        start = self._take(n)
        return uint16_array(n >> 1).unpack_from(self.data, start)

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self.pos != self.end:
            raise DecodeError("trailing bytes in a vector")

    def finish(self) -> None:
        if self.pos != self.end:
            raise DecodeError("trailing bytes after a message")


class Writer:
    """Appends big-endian integers and vectors to a bytearray."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def uint8(self, v: int) -> None:
        self.buf.append(v)

    def uint16(self, v: int) -> None:
        self.buf += v.to_bytes(2, "big")

    def uint24(self, v: int) -> None:
        self.buf += v.to_bytes(3, "big")

    def raw(self, b: bytes) -> None:
        self.buf += b

    def opaque(self, size: int, b: bytes) -> None:
        self.buf += len(b).to_bytes(size, "big")
        self.buf += b

    def uint16_list(self, size: int, values: tuple[int, ...] | list[int]) -> None:
        self.buf += (2 * len(values)).to_bytes(size, "big")
        for v in values:
            self.buf += v.to_bytes(2, "big")

    def block(self, size: int) -> _WriterBlock:
        """Reserve a `size`-byte length prefix, filled in when the block closes."""
        return _WriterBlock(self.buf, size)

    def getvalue(self) -> bytes:
        return bytes(self.buf)


class _WriterBlock:
    def __init__(self, buf: bytearray, size: int) -> None:
        self.buf = buf
        self.size = size
        self.start = 0

    def __enter__(self) -> None:
        self.buf += bytes(self.size)
        self.start = len(self.buf)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        length = len(self.buf) - self.start
        if length >= 1 << (8 * self.size):
            raise ValueError("vector too long for its length prefix")
        self.buf[self.start - self.size : self.start] = length.to_bytes(self.size, "big")
