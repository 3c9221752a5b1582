"""Key-exchange groups: (EC)DHE and the X25519MLKEM768 hybrid, from `cryptography`.

Private keys are made from the injected RNG so recorded traces replay exactly
(ML-KEM encapsulation draws its own randomness inside OpenSSL). Every peer
share is validated; a bad one raises IllegalParameter (RFC 8446 section 4.2.8:
"Peers MUST validate each other's public key"; an all-zero X25519 output too).
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .codepoints import NamedGroup
from .errors import IllegalParameter

Random = Callable[[int], bytes]

_CURVES: dict[int, tuple[ec.EllipticCurve, int, int]] = {
    # group: (curve, scalar bytes, order n)
    NamedGroup.SECP256R1: (
        ec.SECP256R1(),
        32,
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    ),
    NamedGroup.SECP384R1: (
        ec.SECP384R1(),
        48,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
    ),
    NamedGroup.SECP521R1: (
        ec.SECP521R1(),
        66,
        0x01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409,
    ),
}
# Uncompressed point sizes: 0x04 || X || Y (RFC 8446 section 4.2.8.2).
_POINT_LEN = {g: 1 + 2 * size for g, (_, size, _) in _CURVES.items()}

MLKEM768_ENCAPSULATION_KEY_LEN = 1184
MLKEM768_CIPHERTEXT_LEN = 1088
X25519_LEN = 32


def _x25519_exchange(private: x25519.X25519PrivateKey, peer: bytes) -> bytes:
    if len(peer) != X25519_LEN:
        raise IllegalParameter("x25519 share is not 32 bytes")
    try:
        # cryptography refuses an all-zero result (a small-order peer point).
        return private.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
    except ValueError:
        raise IllegalParameter("invalid x25519 share") from None


def _ec_private(group: int, random: Random) -> ec.EllipticCurvePrivateKey:
    curve, size, order = _CURVES[group]
    # Reduce a random integer into [1, n-1]; the extra 8 bytes make the bias negligible.
    scalar = int.from_bytes(random(size + 8), "big") % (order - 1) + 1
    return ec.derive_private_key(scalar, curve)


def _ec_exchange(group: int, private: ec.EllipticCurvePrivateKey, peer: bytes) -> bytes:
    if len(peer) != _POINT_LEN[group] or peer[0] != 4:
        raise IllegalParameter("EC share is not an uncompressed point of the right size")
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[group][0], peer)
        return private.exchange(ec.ECDH(), public)
    except ValueError:
        raise IllegalParameter("invalid EC share") from None


class KeyShare:
    """Our side of one group's exchange, started in the ClientHello."""

    __slots__ = ("_private", "_x25519", "group", "key_exchange")

    def __init__(self, group: int, random: Random) -> None:
        self.group = group
        self._x25519: x25519.X25519PrivateKey | None = None
        self._private: object
        if group == NamedGroup.X25519:
            key = x25519.X25519PrivateKey.from_private_bytes(random(32))
            self._private = key
            self.key_exchange = key.public_key().public_bytes_raw()
        elif group == NamedGroup.X448:
            key448 = x448.X448PrivateKey.from_private_bytes(random(56))
            self._private = key448
            self.key_exchange = key448.public_key().public_bytes_raw()
        elif group in _CURVES:
            key_ec = _ec_private(group, random)
            self._private = key_ec
            self.key_exchange = key_ec.public_key().public_bytes(
                Encoding.X962, PublicFormat.UncompressedPoint
            )
        elif group == NamedGroup.X25519MLKEM768:
            # draft-ietf-tls-ecdhe-mlkem: client share = ML-KEM-768 encapsulation key || X25519.
            kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(random(64))
            self._x25519 = x25519.X25519PrivateKey.from_private_bytes(random(32))
            self._private = kem
            self.key_exchange = (
                kem.public_key().public_bytes_raw() + self._x25519.public_key().public_bytes_raw()
            )
        else:
            raise ValueError(f"unsupported group 0x{group:04x}")

    @classmethod
    def from_private_bytes(cls, group: int, private: bytes) -> KeyShare:
        """Rebuild a share from recorded private key bytes (trace replay)."""
        if group in _CURVES:
            size = _CURVES[group][1]
            scalar = int.from_bytes(private, "big")

            def exact(n: int) -> bytes:
                # _ec_private computes v % (n - 1) + 1, so feed it scalar - 1.
                return (scalar - 1).to_bytes(n, "big")

            return cls(group, lambda n: exact(n) if n == size + 8 else b"")
        # X25519MLKEM768 draws the 64-byte ML-KEM seed, then the X25519 key.
        cursor = [0]

        def draw(n: int) -> bytes:
            start = cursor[0]
            cursor[0] = start + n
            return private[start : start + n]

        return cls(group, draw)

    def private_bytes(self) -> bytes:
        """The private key in from_private_bytes' form (for snapshots; it is a secret)."""
        private = self._private
        if isinstance(private, x25519.X25519PrivateKey | x448.X448PrivateKey):
            return private.private_bytes_raw()
        if isinstance(private, ec.EllipticCurvePrivateKey):
            size = _CURVES[self.group][1]
            return private.private_numbers().private_value.to_bytes(size, "big")
        assert isinstance(private, mlkem.MLKEM768PrivateKey) and self._x25519 is not None
        return private.private_bytes_raw() + self._x25519.private_bytes_raw()

    def complete(self, peer: bytes) -> bytes:
        """The shared secret from the server's share."""
        private = self._private
        group = self.group
        if isinstance(private, x25519.X25519PrivateKey):
            return _x25519_exchange(private, peer)
        if isinstance(private, x448.X448PrivateKey):
            if len(peer) != 56:
                raise IllegalParameter("x448 share is not 56 bytes")
            try:
                return private.exchange(x448.X448PublicKey.from_public_bytes(peer))
            except ValueError:
                raise IllegalParameter("invalid x448 share") from None
        if isinstance(private, ec.EllipticCurvePrivateKey):
            return _ec_exchange(group, private, peer)
        assert isinstance(private, mlkem.MLKEM768PrivateKey) and self._x25519 is not None
        if len(peer) != MLKEM768_CIPHERTEXT_LEN + X25519_LEN:
            raise IllegalParameter("X25519MLKEM768 server share has the wrong size")
        try:
            kem_secret = private.decapsulate(peer[:MLKEM768_CIPHERTEXT_LEN])
        except ValueError:
            raise IllegalParameter("invalid ML-KEM ciphertext") from None
        return kem_secret + _x25519_exchange(self._x25519, peer[MLKEM768_CIPHERTEXT_LEN:])


def server_exchange(group: int, peer: bytes, random: Random) -> tuple[bytes, bytes]:
    """Answer a client's share: (our key_exchange, shared secret)."""
    if group == NamedGroup.X25519MLKEM768:
        if len(peer) != MLKEM768_ENCAPSULATION_KEY_LEN + X25519_LEN:
            raise IllegalParameter("X25519MLKEM768 client share has the wrong size")
        try:
            encapsulation_key = mlkem.MLKEM768PublicKey.from_public_bytes(
                peer[:MLKEM768_ENCAPSULATION_KEY_LEN]
            )
        except ValueError:
            raise IllegalParameter("invalid ML-KEM encapsulation key") from None
        ours = x25519.X25519PrivateKey.from_private_bytes(random(32))
        ecdh_secret = _x25519_exchange(ours, peer[MLKEM768_ENCAPSULATION_KEY_LEN:])
        kem_secret, ciphertext = encapsulation_key.encapsulate()
        return ciphertext + ours.public_key().public_bytes_raw(), kem_secret + ecdh_secret
    share = KeyShare(group, random)
    return share.key_exchange, share.complete(peer)


SUPPORTED_GROUPS = frozenset(
    (
        NamedGroup.X25519,
        NamedGroup.X448,
        NamedGroup.SECP256R1,
        NamedGroup.SECP384R1,
        NamedGroup.SECP521R1,
        NamedGroup.X25519MLKEM768,
    )
)
