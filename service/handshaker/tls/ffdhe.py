"""RFC 7919 finite-field Diffie-Hellman groups (ffdhe2048, ffdhe3072, ffdhe4096) for TLS 1.3.

The arithmetic is cryptography's (OpenSSL's); only the peer-value checks that it
does not make are here. The private exponent comes from the injected RNG so
recorded traces replay. Nothing here parses TLS messages.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cryptography.hazmat.primitives.asymmetric import dh
from cryptography.utils import CryptographyDeprecationWarning

from .codepoints import NamedGroup
from .errors import IllegalParameter

Random = Callable[[int], bytes]

# RFC 7919 appendix A: the safe primes p (q = (p - 1) / 2 is prime too), generator g = 2.
FFDHE_PRIMES: dict[int, int] = {
    NamedGroup.FFDHE2048: int(
        "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695"
        "A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A"
        "D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935"
        "984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A"
        "BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4"
        "AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61"
        "9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005"
        "C58EF1837D1683B2C6F34A26C1B2EFFA886B423861285C97FFFFFFFFFFFFFFFF",
        16,
    ),
    NamedGroup.FFDHE3072: int(
        "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695"
        "A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A"
        "D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935"
        "984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A"
        "BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4"
        "AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61"
        "9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005"
        "C58EF1837D1683B2C6F34A26C1B2EFFA886B4238611FCFDCDE355B3B6519035B"
        "BC34F4DEF99C023861B46FC9D6E6C9077AD91D2691F7F7EE598CB0FAC186D91C"
        "AEFE130985139270B4130C93BC437944F4FD4452E2D74DD364F2E21E71F54BFF"
        "5CAE82AB9C9DF69EE86D2BC522363A0DABC521979B0DEADA1DBF9A42D5C4484E"
        "0ABCD06BFA53DDEF3C1B20EE3FD59D7C25E41D2B66C62E37FFFFFFFFFFFFFFFF",
        16,
    ),
    NamedGroup.FFDHE4096: int(
        "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695"
        "A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A"
        "D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935"
        "984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A"
        "BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4"
        "AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61"
        "9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005"
        "C58EF1837D1683B2C6F34A26C1B2EFFA886B4238611FCFDCDE355B3B6519035B"
        "BC34F4DEF99C023861B46FC9D6E6C9077AD91D2691F7F7EE598CB0FAC186D91C"
        "AEFE130985139270B4130C93BC437944F4FD4452E2D74DD364F2E21E71F54BFF"
        "5CAE82AB9C9DF69EE86D2BC522363A0DABC521979B0DEADA1DBF9A42D5C4484E"
        "0ABCD06BFA53DDEF3C1B20EE3FD59D7C25E41D2B669E1EF16E6F52C3164DF4FB"
        "7930E9E4E58857B6AC7D5F42D69F6D187763CF1D5503400487F55BA57E31CC7A"
        "7135C886EFB4318AED6A1E012D9E6832A907600A918130C46DC778F971AD0038"
        "092999A333CB8B7A1A1DB93D7140003C2A4ECEA9F98D0ACC0A8291CDCEC97DCF"
        "8EC9B55A7F88A46B4DB5A851F44182E1C68A007E5E655F6AFFFFFFFFFFFFFFFF",
        16,
    ),
}
GENERATOR = 2


@contextmanager
def _finite_field_dh() -> Iterator[None]:
    # cryptography marks FFDH deprecated; TLS 1.3 still defines it (RFC 8446 section 4.2.7),
    # so keep the warning out of the service's logs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


@functools.cache
def _parameter_numbers(group: int) -> dh.DHParameterNumbers:
    with _finite_field_dh():
        return dh.DHParameterNumbers(FFDHE_PRIMES[group], GENERATOR)


def prime_length(group: int) -> int:
    """The size of p in bytes: the length of every share and shared secret of `group`."""
    return (FFDHE_PRIMES[group].bit_length() + 7) // 8


def jacobi(a: int, n: int) -> int:
    """The Jacobi symbol (a/n) for odd n > 0: for a prime n, Euler's criterion makes it
    1 exactly when a^((n-1)/2) mod n == 1 (a non-zero quadratic residue)."""
    a %= n
    result = 1
    while a:
        # (2/n) = -1 when n = 3 or 5 (mod 8).
        twos = (a & -a).bit_length() - 1
        a >>= twos
        if twos & 1 and n % 8 in (3, 5):
            result = -result
        # Quadratic reciprocity: the sign flips when both are 3 (mod 4).
        if a % 4 == 3 and n % 4 == 3:
            result = -result
        a, n = n % a, a
    return result if n == 1 else 0


def check_peer_value(group: int, key_exchange: bytes) -> int:
    """The peer's Y, after the checks RFC 7919 section 5.1 and SP 800-56A ask for."""
    p = FFDHE_PRIMES[group]
    # RFC 8446 section 4.2.8.1: "the opaque value contains the Diffie-Hellman public
    # value (Y = g^X mod p) ... encoded as a big-endian integer and padded to the left
    # with zeros to the size of p in bytes."
    if len(key_exchange) != prime_length(group):
        raise IllegalParameter("FFDHE share is not the size of the prime")
    y = int.from_bytes(key_exchange, "big")
    # RFC 7919 section 5.1: "1 < Y < p-1".
    if not 1 < y < p - 1:
        raise IllegalParameter("FFDHE share is out of range")
    # SP 800-56A section 5.6.2.3.1: y^q mod p == 1 with q = (p-1)/2, i.e. Y lies in the
    # prime-order subgroup. By Euler's criterion that is the Jacobi symbol being 1,
    # which costs a few milliseconds where the exponentiation costs a few hundred.
    if jacobi(y, p) != 1:
        raise IllegalParameter("FFDHE share is not in the prime-order subgroup")
    return y


class FfdheKey:
    """Our exponent X and value Y = g^X mod p in one RFC 7919 group."""

    def __init__(self, group: int, x: int) -> None:
        p = FFDHE_PRIMES[group]
        q = (p - 1) // 2
        if not 1 <= x < q:
            raise ValueError("FFDHE private exponent out of range")
        numbers = _parameter_numbers(group)
        with _finite_field_dh():
            # cryptography cannot derive Y from X; g^X mod p is what "exchange" computes
            # for the peer value g, so a key holding X (any valid Y) gives it.
            seed = dh.DHPrivateNumbers(x, dh.DHPublicNumbers(GENERATOR, numbers)).private_key()
            generator = dh.DHPublicNumbers(GENERATOR, numbers).public_key()
            y = int.from_bytes(seed.exchange(generator), "big")
            self._key = dh.DHPrivateNumbers(x, dh.DHPublicNumbers(y, numbers)).private_key()
        self._x = x
        self.group = group
        self.share = y.to_bytes(prime_length(group), "big")

    @classmethod
    def generate(cls, group: int, random: Random) -> FfdheKey:
        q = (FFDHE_PRIMES[group] - 1) // 2
        # X uniform in [1, q-1]; the extra 8 bytes make the modular bias negligible.
        x = int.from_bytes(random(prime_length(group) + 8), "big") % (q - 1) + 1
        return cls(group, x)

    def private_bytes(self) -> bytes:
        return self._x.to_bytes(prime_length(self.group), "big")

    def exchange(self, peer: bytes) -> bytes:
        y = check_peer_value(self.group, peer)
        with _finite_field_dh():
            public = dh.DHPublicNumbers(y, _parameter_numbers(self.group)).public_key()
        try:
            secret = self._key.exchange(public)
        except ValueError:
            raise IllegalParameter("invalid FFDHE share") from None
        # RFC 8446 section 7.4.1: "the negotiated key (Z) is converted to a byte string by
        # encoding in big-endian form and left-padded with zeros up to the size of the prime."
        return secret.rjust(prime_length(self.group), b"\x00")
