"""DHE for TLS 1.2 (RFC 5246 sections 7.4.3 and 8.1.2) over the RFC 7919 groups only.

The group arithmetic and the peer-value checks are ffdhe.py's (shared with TLS 1.3's
FFDHE key shares); what differs in TLS 1.2 is here: the server names its group by
sending the prime and generator (RFC 7919 section 3: the client recognises them, and
we never accept a prime that is not one of the named groups), values travel without
leading zero bytes, and "leading bytes of Z that contain all zero bits are stripped
before it is used as the pre_master_secret".
"""

from __future__ import annotations

from ..errors import IllegalParameter, InsufficientSecurity
from ..ffdhe import FFDHE_PRIMES, prime_length
from .messages import encode_dh_params

GENERATOR = 2


def server_dh_params(group: int, public: bytes) -> bytes:
    """ServerDHParams for our share of `group`."""
    return encode_dh_params(FFDHE_PRIMES[group], GENERATOR, public)


def named_group(p: int, g: int, offered: tuple[int, ...]) -> int:
    """The RFC 7919 group a server's (p, g) are, among those we offered (any of ours
    when we offered none, as a legacy client would).

    RFC 7919 section 4: a client that receives parameters it does not accept "SHOULD
    terminate the connection" (insufficient_security when it will not use them).
    """
    for group in offered or tuple(FFDHE_PRIMES):
        if FFDHE_PRIMES.get(group) == p and g == GENERATOR:
            return group
    raise InsufficientSecurity("server's DHE parameters are not an RFC 7919 group we offered")


def full_length(group: int, value: bytes) -> bytes:
    """A peer's dh_Ys or dh_Yc left-padded to the prime's length, as ffdhe.py checks it."""
    size = prime_length(group)
    if len(value) > size:
        raise IllegalParameter("DH public value longer than the prime")
    return value.rjust(size, b"\x00")


def premaster(shared: bytes) -> bytes:
    """RFC 5246 section 8.1.2: Z without its leading zero bytes."""
    return shared.lstrip(b"\x00")
