"""Malformed key shares of every group, by name: what a peer must answer with illegal_parameter.

Shared by the group unit tests and the engine-level tests; each case is built from a
good share so that only the named part is broken.
"""

from __future__ import annotations

from handshaker.tls import NamedGroup
from handshaker.tls.ffdhe import FFDHE_PRIMES

EC_POINT_LEN = {NamedGroup.SECP256R1: 65, NamedGroup.SECP384R1: 97, NamedGroup.SECP521R1: 133}


def _bad_points(point: bytes) -> dict[str, bytes]:
    """Broken variants of the valid uncompressed point `point`."""
    coordinate = (len(point) - 1) // 2
    x, y = point[1 : 1 + coordinate], point[1 + coordinate :]
    return {
        "off-curve": b"\x04" + x + (int.from_bytes(y, "big") ^ 1).to_bytes(coordinate, "big"),
        # The same point, compressed (SEC 1 section 2.3.3): RFC 8446 allows only uncompressed.
        "compressed": bytes((2 + (y[-1] & 1),)) + x,
        "compressed-prefix": bytes((2 + (y[-1] & 1),)) + x + y,
        "hybrid-prefix": bytes((6 + (y[-1] & 1),)) + x + y,
        "zeros": b"\x04" + bytes(2 * coordinate),
        "short": point[:-1],
        "long": point + b"\x00",
    }


def _invalid_encapsulation_key(length: int) -> bytes:
    # Coefficients of 0xFFF are >= q = 3329: FIPS 203's modulus check fails.
    return b"\xff" * length


def malformed_client_shares(group: int, good: bytes) -> dict[str, bytes]:
    """Named broken variants of the client share `good` (what a server must refuse)."""
    cases = {"short": good[:-1], "long": good + b"\x00", "empty": b""}
    if group == NamedGroup.X25519:
        cases |= {"all-zero": bytes(32), "small-order": b"\x01" + bytes(31)}
    elif group == NamedGroup.X448:
        cases |= {"all-zero": bytes(56), "small-order": b"\x01" + bytes(55)}
    elif group in EC_POINT_LEN:
        cases |= _bad_points(good)
    elif group in FFDHE_PRIMES:
        p = FFDHE_PRIMES[group]
        size = len(good)
        cases |= {
            "zero": bytes(size),
            "one": (1).to_bytes(size, "big"),
            "p-1": (p - 1).to_bytes(size, "big"),
            "p": p.to_bytes(size, "big"),
            "not-in-subgroup": (p - 2).to_bytes(size, "big"),
        }
    elif group in (NamedGroup.MLKEM768, NamedGroup.MLKEM1024):
        cases["invalid-encapsulation-key"] = _invalid_encapsulation_key(len(good))
    elif group == NamedGroup.X25519MLKEM768:
        cases["invalid-mlkem-part"] = _invalid_encapsulation_key(1184) + good[1184:]
        cases["small-order-x25519-part"] = good[:1184] + bytes(32)
    else:
        point_len = 65 if group == NamedGroup.SECP256R1MLKEM768 else 97
        kem_len = len(good) - point_len
        cases["invalid-mlkem-part"] = good[:point_len] + _invalid_encapsulation_key(kem_len)
        for name, point in _bad_points(good[:point_len]).items():
            if len(point) == point_len:
                cases[f"{name}-ecdh-part"] = point + good[point_len:]
        # The ML-KEM part first, as X25519MLKEM768 would have it.
        cases["swapped-order"] = good[point_len:] + good[:point_len]
    return cases


def malformed_server_shares(group: int, good: bytes) -> dict[str, bytes]:
    """Named broken variants of the server share `good` (what a client must refuse)."""
    cases = {"short": good[:-1], "long": good + b"\x00", "empty": b""}
    if group in (NamedGroup.X25519, NamedGroup.X448):
        cases["all-zero"] = bytes(len(good))
    elif group in EC_POINT_LEN:
        cases |= _bad_points(good)
    elif group in FFDHE_PRIMES:
        p = FFDHE_PRIMES[group]
        cases |= {
            "one": (1).to_bytes(len(good), "big"),
            "p-1": (p - 1).to_bytes(len(good), "big"),
            "not-in-subgroup": (p - 2).to_bytes(len(good), "big"),
        }
    elif group == NamedGroup.X25519MLKEM768:
        cases["small-order-x25519-part"] = good[:1088] + bytes(32)
        cases["short-ciphertext"] = good[:1087] + good[1088:]
    elif group in (NamedGroup.SECP256R1MLKEM768, NamedGroup.SECP384R1MLKEM1024):
        point_len = 65 if group == NamedGroup.SECP256R1MLKEM768 else 97
        for name, point in _bad_points(good[:point_len]).items():
            if len(point) == point_len:
                cases[f"{name}-ecdh-part"] = point + good[point_len:]
        cases["long-ciphertext"] = good + b"\x00"
    return cases
