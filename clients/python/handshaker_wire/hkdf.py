"""HMAC and HKDF-Expand-Label over hashlib's SHA-2, version-neutral (the TLS 1.3 key
schedule, TLS 1.3 traffic-key updates and the TLS 1.2 PRF all key HMACs with these).

The standard library's HMAC has a per-call EVP set-up that dominates for the short
inputs of a key schedule, so HMAC (RFC 2104) is composed here from two hashes; each
HKDF-Expand-Label of a traffic key or IV is one hash block, so one HMAC call.
The service's engine and the Python client's record layer use this one copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import _Hash

# Each hash's constructor, HMAC block size and output size, by name.
HASHES: dict[str, tuple[Callable[..., _Hash], int, int]] = {
    "sha256": (hashlib.sha256, 64, 32),
    "sha384": (hashlib.sha384, 128, 48),
    "sha512": (hashlib.sha512, 128, 64),
}

_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def hmac_digest(key: bytes, message: bytes, hash_name: str) -> bytes:
    """HMAC-Hash(key, message), equal to hmac.digest(key, message, hash_name)."""
    constructor, block_size, _ = HASHES[hash_name]
    if len(key) > block_size:
        key = constructor(key).digest()
    key = key.ljust(block_size, b"\0")
    inner = constructor(key.translate(_IPAD))
    inner.update(message)
    return constructor(key.translate(_OPAD) + inner.digest()).digest()


class HmacKey:
    """HMAC under one key, the key padded and absorbed once (RFC 2104).

    A secret of the key schedule keys two to four HMACs (a traffic secret: key,
    iv, finished; the master secret: four Derive-Secrets; TLS 1.2's PRF: every
    block), so each use after the first costs two hash copies instead of two set-ups.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes, hash_name: str) -> None:
        constructor, block_size, _ = HASHES[hash_name]
        if len(key) > block_size:
            key = constructor(key).digest()
        key = key.ljust(block_size, b"\0")
        self._inner = constructor(key.translate(_IPAD))
        self._outer = constructor(key.translate(_OPAD))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@lru_cache(maxsize=256)
def hkdf_label_prefix(length: int, label: bytes) -> bytes:
    """The HkdfLabel's length and "tls13 "-prefixed label, ahead of its context."""
    full_label = b"tls13 " + label
    return length.to_bytes(2, "big") + bytes((len(full_label),)) + full_label


def hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label(Secret, Label, Context, Length) of RFC 8446 section 7.1.

    struct {
        uint16 length = Length;
        opaque label<7..255> = "tls13 " + Label;
        opaque context<0..255> = Context;
    } HkdfLabel;
    """
    info = hkdf_label_prefix(length, label) + bytes((len(context),)) + context
    if length <= HASHES[hash_name][2]:
        # One block: T(1) = HMAC(PRK, info | 0x01) (RFC 5869 section 2.3).
        return hmac_digest(secret, info + b"\x01", hash_name)[:length]
    output = b""
    block = b""
    counter = 1
    while len(output) < length:
        block = hmac_digest(secret, block + info + bytes((counter,)), hash_name)
        output += block
        counter += 1
    return output[:length]
