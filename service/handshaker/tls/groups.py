"""Key-exchange groups: (EC)DHE, FFDHE, ML-KEM and the ECDHE-MLKEM hybrids, from `cryptography`.

Private keys are made from the injected RNG so recorded traces replay exactly
(ML-KEM encapsulation draws its own randomness inside OpenSSL). Every peer
share is validated; a bad one raises IllegalParameter (RFC 8446 section 4.2.8:
"Peers MUST validate each other's public key"; an all-zero X25519 output too).
Each group's private key round-trips through bytes (KeyShare.private_bytes and
KeyShare.from_private_bytes), so a share can be recorded and rebuilt.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar, cast

from cryptography.hazmat.backends.openssl.backend import backend as _backend
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .codepoints import NamedGroup
from .errors import IllegalParameter, InternalError
from .ffdhe import FFDHE_PRIMES, FfdheKey, prime_length


def _openssl_bindings() -> object | None:
    """cryptography's Rust bindings behind its public constructors (see binding_or_public);
    None in a release laid out otherwise, which then gets the public constructors."""
    try:
        bindings: object = importlib.import_module("cryptography.hazmat.bindings._rust").openssl
    except (ImportError, AttributeError):
        return None
    return bindings


_rust_openssl = _openssl_bindings()

Random = Callable[[int], bytes]
F = TypeVar("F", bound=Callable[..., Any])


def binding_or_public(public: F, binding: str, supported: bool) -> F:
    """`public`, a `cryptography` constructor, or the binding it calls once its backend check
    passes: the wrapper repeats an import and that check on every call (about 2 us, four
    calls a handshake). The check is made here, once; without the binding (another
    `cryptography` release), the public constructor."""
    module_name, _, name = binding.rpartition(".")
    module = getattr(_rust_openssl, module_name, None) if supported else None
    direct = getattr(module, name, None)
    return cast(F, direct) if callable(direct) else public


_X25519_SUPPORTED = _backend.x25519_supported()
_x25519_private = binding_or_public(
    x25519.X25519PrivateKey.from_private_bytes, "x25519.from_private_bytes", _X25519_SUPPORTED
)
_x25519_public = binding_or_public(
    x25519.X25519PublicKey.from_public_bytes, "x25519.from_public_bytes", _X25519_SUPPORTED
)

MLKEM768_ENCAPSULATION_KEY_LEN = 1184
MLKEM768_CIPHERTEXT_LEN = 1088
MLKEM1024_ENCAPSULATION_KEY_LEN = 1568
MLKEM1024_CIPHERTEXT_LEN = 1568
# FIPS 203: ML-KEM.KeyGen_internal takes the 64-byte seed d || z.
MLKEM_SEED_LEN = 64
X25519_LEN = 32
X448_LEN = 56


class _Key(ABC):
    """Our private key in one algorithm, and the public part we send."""

    share: bytes

    @abstractmethod
    def private_bytes(self) -> bytes: ...

    @abstractmethod
    def complete(self, peer: bytes) -> bytes:
        """The shared secret from the server's part of the exchange."""


class _Algorithm(ABC):
    """One key agreement: a Diffie-Hellman function or a KEM."""

    client_share_len: int
    server_share_len: int
    private_len: int

    @abstractmethod
    def generate(self, random: Random) -> _Key: ...

    @abstractmethod
    def load(self, private: bytes) -> _Key:
        """The key whose private_bytes() gave `private` (ValueError if malformed)."""

    @abstractmethod
    def respond(self, peer: bytes, random: Random) -> tuple[bytes, bytes]:
        """The server's answer to a client share: (our part, shared secret)."""


class _DiffieHellman(_Algorithm):
    """Both sides send a public value of one size; the server's answer is a fresh key."""

    def respond(self, peer: bytes, random: Random) -> tuple[bytes, bytes]:
        key = self.generate(random)
        return key.share, key.complete(peer)


# --- X25519 and X448 (RFC 7748, RFC 8446 section 4.2.8.2) -------------------------------


class _X25519Key(_Key):
    def __init__(self, private: bytes) -> None:
        self._key = _x25519_private(private)
        self.share = self._key.public_key().public_bytes_raw()

    def private_bytes(self) -> bytes:
        return self._key.private_bytes_raw()

    def complete(self, peer: bytes) -> bytes:
        if len(peer) != X25519_LEN:
            raise IllegalParameter("x25519 share is not 32 bytes")
        try:
            # cryptography refuses an all-zero result (a small-order peer point).
            return self._key.exchange(_x25519_public(peer))
        except ValueError:
            raise IllegalParameter("invalid x25519 share") from None


class _X25519(_DiffieHellman):
    def __init__(self) -> None:
        self.client_share_len = self.server_share_len = self.private_len = X25519_LEN

    def generate(self, random: Random) -> _Key:
        return _X25519Key(random(X25519_LEN))

    def load(self, private: bytes) -> _Key:
        return _X25519Key(private)


class _X448Key(_Key):
    def __init__(self, private: bytes) -> None:
        self._key = x448.X448PrivateKey.from_private_bytes(private)
        self.share = self._key.public_key().public_bytes_raw()

    def private_bytes(self) -> bytes:
        return self._key.private_bytes_raw()

    def complete(self, peer: bytes) -> bytes:
        if len(peer) != X448_LEN:
            raise IllegalParameter("x448 share is not 56 bytes")
        try:
            return self._key.exchange(x448.X448PublicKey.from_public_bytes(peer))
        except ValueError:
            raise IllegalParameter("invalid x448 share") from None


class _X448(_DiffieHellman):
    def __init__(self) -> None:
        self.client_share_len = self.server_share_len = self.private_len = X448_LEN

    def generate(self, random: Random) -> _Key:
        return _X448Key(random(X448_LEN))

    def load(self, private: bytes) -> _Key:
        return _X448Key(private)


# --- ECDHE over the NIST curves (RFC 8446 section 4.2.8.2) --------------------------------


class _EcdhKey(_Key):
    def __init__(self, algorithm: _Ecdh, scalar: int) -> None:
        self._algorithm = algorithm
        self._key = ec.derive_private_key(scalar, algorithm.curve)
        self.share = self._key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )

    def private_bytes(self) -> bytes:
        return self._key.private_numbers().private_value.to_bytes(self._algorithm.size, "big")

    def complete(self, peer: bytes) -> bytes:
        # "struct { uint8 legacy_form = 4; opaque X[coordinate_length];
        #  opaque Y[coordinate_length]; } UncompressedPointRepresentation;"
        if len(peer) != self._algorithm.client_share_len or peer[0] != 4:
            raise IllegalParameter("EC share is not an uncompressed point of the right size")
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(self._algorithm.curve, peer)
            return self._key.exchange(ec.ECDH(), public)
        except ValueError:
            raise IllegalParameter("invalid EC share") from None


class _Ecdh(_DiffieHellman):
    def __init__(self, curve: ec.EllipticCurve, size: int, order: int) -> None:
        self.curve = curve
        self.size = size
        self.order = order
        self.client_share_len = self.server_share_len = 1 + 2 * size
        self.private_len = size

    def generate(self, random: Random) -> _Key:
        # Reduce a random integer into [1, n-1]; the extra 8 bytes make the bias negligible.
        scalar = int.from_bytes(random(self.size + 8), "big") % (self.order - 1) + 1
        return _EcdhKey(self, scalar)

    def load(self, private: bytes) -> _Key:
        if len(private) != self.size:
            raise ValueError("EC private scalar has the wrong size")
        return _EcdhKey(self, int.from_bytes(private, "big"))


# --- FFDHE (RFC 7919) ------------------------------------------------------------------


class _FfdheKey(_Key):
    def __init__(self, key: FfdheKey) -> None:
        self._key = key
        self.share = key.share

    def private_bytes(self) -> bytes:
        return self._key.private_bytes()

    def complete(self, peer: bytes) -> bytes:
        return self._key.exchange(peer)


class _Ffdhe(_DiffieHellman):
    def __init__(self, group: int) -> None:
        self.group = group
        self.client_share_len = self.server_share_len = self.private_len = prime_length(group)

    def generate(self, random: Random) -> _Key:
        return _FfdheKey(FfdheKey.generate(self.group, random))

    def load(self, private: bytes) -> _Key:
        if len(private) != self.private_len:
            raise ValueError("FFDHE private exponent has the wrong size")
        return _FfdheKey(FfdheKey(self.group, int.from_bytes(private, "big")))


# --- ML-KEM (FIPS 203, draft-ietf-tls-mlkem) -----------------------------------------------

_MlKemPrivate = mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey


class _MlKemKey(_Key):
    def __init__(self, algorithm: _MlKem, seed: bytes) -> None:
        self._algorithm = algorithm
        self._seed = seed
        self._key: _MlKemPrivate = algorithm.private_from_seed(seed)
        self.share = self._key.public_key().public_bytes_raw()

    def private_bytes(self) -> bytes:
        return self._seed

    def complete(self, peer: bytes) -> bytes:
        # draft-ietf-tls-mlkem section 4.2: "the client MUST check if the ciphertext length
        # matches the selected parameter set, and abort with an illegal_parameter alert if
        # it fails." A wrong ciphertext of the right length is implicitly rejected (FIPS
        # 203): an unrelated secret, so the server's flight does not decrypt.
        if len(peer) != self._algorithm.server_share_len:
            raise IllegalParameter("ML-KEM ciphertext has the wrong size")
        try:
            return self._key.decapsulate(peer)
        except ValueError:
            # "If ML-KEM decapsulation fails for any other reason, the connection MUST be
            # aborted with an internal_error alert."
            raise InternalError("ML-KEM decapsulation failed") from None


class _MlKem(_Algorithm):
    def __init__(
        self,
        private_from_seed: Callable[[bytes], _MlKemPrivate],
        public_from_bytes: Callable[[bytes], mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey],
        encapsulation_key_len: int,
        ciphertext_len: int,
    ) -> None:
        self.private_from_seed = private_from_seed
        self.public_from_bytes = public_from_bytes
        self.client_share_len = encapsulation_key_len
        self.server_share_len = ciphertext_len
        self.private_len = MLKEM_SEED_LEN

    def generate(self, random: Random) -> _Key:
        return _MlKemKey(self, random(MLKEM_SEED_LEN))

    def load(self, private: bytes) -> _Key:
        if len(private) != MLKEM_SEED_LEN:
            raise ValueError("ML-KEM seed is not 64 bytes")
        return _MlKemKey(self, private)

    def respond(self, peer: bytes, random: Random) -> tuple[bytes, bytes]:
        if len(peer) != self.client_share_len:
            raise IllegalParameter("ML-KEM encapsulation key has the wrong size")
        try:
            # draft-ietf-tls-mlkem section 4.2: "the server MUST perform the encapsulation
            # key check described in Section 7.2 of [FIPS203] ... and abort with an
            # illegal_parameter alert if it fails." OpenSSL runs that check here.
            encapsulation_key = self.public_from_bytes(peer)
        except ValueError:
            raise IllegalParameter("invalid ML-KEM encapsulation key") from None
        shared_secret, ciphertext = encapsulation_key.encapsulate()
        return ciphertext, shared_secret


# --- hybrids (draft-ietf-tls-ecdhe-mlkem) ------------------------------------------------


class _HybridKey(_Key):
    def __init__(self, algorithm: _Hybrid, first: _Key, second: _Key) -> None:
        self._algorithm = algorithm
        self._first = first
        self._second = second
        self.share = first.share + second.share

    def private_bytes(self) -> bytes:
        return self._first.private_bytes() + self._second.private_bytes()

    def complete(self, peer: bytes) -> bytes:
        first, second = self._algorithm.first, self._algorithm.second
        if len(peer) != first.server_share_len + second.server_share_len:
            raise IllegalParameter("hybrid server share has the wrong size")
        cut = first.server_share_len
        return self._first.complete(peer[:cut]) + self._second.complete(peer[cut:])


class _Hybrid(_Algorithm):
    """Two algorithms side by side: shares, and shared secrets, concatenated in one order.

    draft-ietf-tls-ecdhe-mlkem (RFC 10024): X25519MLKEM768 puts ML-KEM first in the
    client share (encapsulation key, then X25519 share), the server share (ciphertext,
    then X25519 share) and the shared secret; SecP256r1MLKEM768 and SecP384r1MLKEM1024
    put the ECDH part first in all three. OpenSSL 4 and Go's crypto/tls agree (tests/interop).
    """

    def __init__(self, first: _Algorithm, second: _Algorithm) -> None:
        self.first = first
        self.second = second
        self.client_share_len = first.client_share_len + second.client_share_len
        self.server_share_len = first.server_share_len + second.server_share_len
        self.private_len = first.private_len + second.private_len

    def generate(self, random: Random) -> _Key:
        first = self.first.generate(random)
        return _HybridKey(self, first, self.second.generate(random))

    def load(self, private: bytes) -> _Key:
        if len(private) != self.private_len:
            raise ValueError("hybrid private key has the wrong size")
        cut = self.first.private_len
        return _HybridKey(self, self.first.load(private[:cut]), self.second.load(private[cut:]))

    def respond(self, peer: bytes, random: Random) -> tuple[bytes, bytes]:
        if len(peer) != self.client_share_len:
            raise IllegalParameter("hybrid client share has the wrong size")
        cut = self.first.client_share_len
        first_share, first_secret = self.first.respond(peer[:cut], random)
        second_share, second_secret = self.second.respond(peer[cut:], random)
        return first_share + second_share, first_secret + second_secret


_SECP256R1 = _Ecdh(
    ec.SECP256R1(), 32, 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
)
_SECP384R1 = _Ecdh(
    ec.SECP384R1(),
    48,
    0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
)
_SECP521R1 = _Ecdh(
    ec.SECP521R1(),
    66,
    0x01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409,
)
_MLKEM_SUPPORTED = _backend.mlkem_supported()
_MLKEM768 = _MlKem(
    binding_or_public(
        mlkem.MLKEM768PrivateKey.from_seed_bytes,
        "mlkem.from_mlkem768_seed_bytes",
        _MLKEM_SUPPORTED,
    ),
    binding_or_public(
        mlkem.MLKEM768PublicKey.from_public_bytes,
        "mlkem.from_mlkem768_public_bytes",
        _MLKEM_SUPPORTED,
    ),
    MLKEM768_ENCAPSULATION_KEY_LEN,
    MLKEM768_CIPHERTEXT_LEN,
)
_MLKEM1024 = _MlKem(
    binding_or_public(
        mlkem.MLKEM1024PrivateKey.from_seed_bytes,
        "mlkem.from_mlkem1024_seed_bytes",
        _MLKEM_SUPPORTED,
    ),
    binding_or_public(
        mlkem.MLKEM1024PublicKey.from_public_bytes,
        "mlkem.from_mlkem1024_public_bytes",
        _MLKEM_SUPPORTED,
    ),
    MLKEM1024_ENCAPSULATION_KEY_LEN,
    MLKEM1024_CIPHERTEXT_LEN,
)

_ALGORITHMS: dict[int, _Algorithm] = {
    NamedGroup.X25519: _X25519(),
    NamedGroup.X448: _X448(),
    NamedGroup.SECP256R1: _SECP256R1,
    NamedGroup.SECP384R1: _SECP384R1,
    NamedGroup.SECP521R1: _SECP521R1,
    **{group: _Ffdhe(group) for group in FFDHE_PRIMES},
    NamedGroup.MLKEM768: _MLKEM768,
    NamedGroup.MLKEM1024: _MLKEM1024,
    NamedGroup.X25519MLKEM768: _Hybrid(_MLKEM768, _X25519()),
    NamedGroup.SECP256R1MLKEM768: _Hybrid(_SECP256R1, _MLKEM768),
    NamedGroup.SECP384R1MLKEM1024: _Hybrid(_SECP384R1, _MLKEM1024),
}


def _algorithm(group: int) -> _Algorithm:
    try:
        return _ALGORITHMS[group]
    except KeyError:
        raise ValueError(f"unsupported group 0x{group:04x}") from None


class KeyShare:
    """Our side of one group's exchange, started in the ClientHello."""

    def __init__(self, group: int, random: Random | None, private: bytes | None = None) -> None:
        algorithm = _algorithm(group)
        key = algorithm.generate(random) if random is not None else algorithm.load(private or b"")
        self.group = group
        self._key = key
        self.key_exchange = key.share

    @classmethod
    def from_private_bytes(cls, group: int, private: bytes) -> KeyShare:
        """Rebuild a share from its private_bytes() (trace replay, snapshots)."""
        return cls(group, None, private)

    def private_bytes(self) -> bytes:
        """The private key as from_private_bytes takes it: raw X25519/X448 keys, the EC
        scalar or FFDHE exponent big-endian at full size, the 64-byte ML-KEM seed; a
        hybrid's parts concatenated in the order of its shares."""
        return self._key.private_bytes()

    def complete(self, peer: bytes) -> bytes:
        """The shared secret from the server's share."""
        return self._key.complete(peer)


def server_exchange(group: int, peer: bytes, random: Random) -> tuple[bytes, bytes]:
    """Answer a client's share: (our key_exchange, shared secret)."""
    return _algorithm(group).respond(peer, random)


SUPPORTED_GROUPS = frozenset(_ALGORITHMS)
