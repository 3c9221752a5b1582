"""Key-exchange groups on their own: sizes and layouts per the RFCs and drafts, private-key
round trips, and illegal_parameter for every malformed share of every group."""

from __future__ import annotations

import math
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from engine_kit import seeded_random
from group_cases import malformed_client_shares, malformed_server_shares
from handshaker.tls import NamedGroup
from handshaker.tls.config import DEFAULT_GROUPS, DEFAULT_KEY_SHARE_GROUPS, ClientConfig
from handshaker.tls.errors import IllegalParameter
from handshaker.tls.ffdhe import FFDHE_PRIMES, FfdheKey, check_peer_value, jacobi
from handshaker.tls.groups import SUPPORTED_GROUPS, KeyShare, server_exchange

GROUPS = tuple(NamedGroup)
FFDHE = (NamedGroup.FFDHE2048, NamedGroup.FFDHE3072, NamedGroup.FFDHE4096)

# (client share, server share, shared secret) lengths, from RFC 8446 section 4.2.8,
# RFC 7919, draft-ietf-tls-mlkem and draft-ietf-tls-ecdhe-mlkem.
SIZES: dict[int, tuple[int, int, int]] = {
    NamedGroup.SECP256R1: (65, 65, 32),
    NamedGroup.SECP384R1: (97, 97, 48),
    NamedGroup.SECP521R1: (133, 133, 66),
    NamedGroup.X25519: (32, 32, 32),
    NamedGroup.X448: (56, 56, 56),
    NamedGroup.FFDHE2048: (256, 256, 256),
    NamedGroup.FFDHE3072: (384, 384, 384),
    NamedGroup.FFDHE4096: (512, 512, 512),
    NamedGroup.MLKEM768: (1184, 1088, 32),
    NamedGroup.MLKEM1024: (1568, 1568, 32),
    NamedGroup.SECP256R1MLKEM768: (65 + 1184, 65 + 1088, 32 + 32),
    NamedGroup.X25519MLKEM768: (1184 + 32, 1088 + 32, 32 + 32),
    NamedGroup.SECP384R1MLKEM1024: (97 + 1568, 97 + 1568, 48 + 32),
}


def _name(group: int) -> str:
    return NamedGroup(group).name


def exchange(group: int) -> tuple[KeyShare, bytes, bytes]:
    """A client share, the server's answer to it, and the server's shared secret."""
    client = KeyShare(group, os.urandom)
    server_share, secret = server_exchange(group, client.key_exchange, os.urandom)
    return client, server_share, secret


# --- every group ----------------------------------------------------------------------------


def test_every_named_group_is_supported() -> None:
    assert set(GROUPS) == SUPPORTED_GROUPS


@pytest.mark.parametrize("group", GROUPS, ids=_name)
def test_client_and_server_derive_the_same_secret_with_the_specified_sizes(group: int) -> None:
    client, server_share, secret = exchange(group)
    assert client.complete(server_share) == secret
    assert (len(client.key_exchange), len(server_share), len(secret)) == SIZES[group]


@pytest.mark.parametrize("group", GROUPS, ids=_name)
def test_private_bytes_round_trip_keeps_the_share_and_the_secrets(group: int) -> None:
    client, server_share, secret = exchange(group)
    restored = KeyShare.from_private_bytes(group, client.private_bytes())
    assert restored.group == group
    assert restored.key_exchange == client.key_exchange
    assert restored.private_bytes() == client.private_bytes()
    assert restored.complete(server_share) == secret
    # A second server answer: the restored share agrees on that one too.
    other_share, other_secret = server_exchange(group, client.key_exchange, os.urandom)
    assert restored.complete(other_share) == client.complete(other_share) == other_secret


@pytest.mark.parametrize("group", GROUPS, ids=_name)
def test_the_share_is_a_function_of_the_injected_random(group: int) -> None:
    first = KeyShare(group, seeded_random("same"))
    second = KeyShare(group, seeded_random("same"))
    assert first.key_exchange == second.key_exchange
    assert first.private_bytes() == second.private_bytes()
    assert KeyShare(group, seeded_random("other")).key_exchange != first.key_exchange


# The part of a server share that the injected RNG decides: all of it for Diffie-Hellman,
# the ECDH part of a hybrid (ML-KEM encapsulation draws OpenSSL's randomness).
SERVER_RANDOM_PART: dict[int, slice] = {
    **{g: slice(None) for g in GROUPS},
    NamedGroup.X25519MLKEM768: slice(1088, None),
    NamedGroup.SECP256R1MLKEM768: slice(0, 65),
    NamedGroup.SECP384R1MLKEM1024: slice(0, 97),
}
del SERVER_RANDOM_PART[NamedGroup.MLKEM768], SERVER_RANDOM_PART[NamedGroup.MLKEM1024]


@pytest.mark.parametrize("group", tuple(SERVER_RANDOM_PART), ids=_name)
def test_the_servers_key_is_a_function_of_the_injected_random(group: int) -> None:
    client = KeyShare(group, os.urandom)
    part = SERVER_RANDOM_PART[group]
    first = server_exchange(group, client.key_exchange, seeded_random("s"))[0][part]
    second = server_exchange(group, client.key_exchange, seeded_random("s"))[0][part]
    assert first == second


@pytest.mark.parametrize("group", GROUPS, ids=_name)
def test_malformed_private_bytes_are_refused(group: int) -> None:
    private = KeyShare(group, os.urandom).private_bytes()
    for bad in (private[:-1], private + b"\x00", b""):
        with pytest.raises(ValueError):
            KeyShare.from_private_bytes(group, bad)


def test_an_unknown_group_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported group 0x0a0a"):
        KeyShare(0x0A0A, os.urandom)
    with pytest.raises(ValueError):
        KeyShare.from_private_bytes(0x0A0A, bytes(32))


def test_the_x25519mlkem768_private_bytes_keep_the_replay_layout() -> None:
    # Recorded traces give the 64-byte ML-KEM seed, then the X25519 key.
    seed, ours = os.urandom(64), os.urandom(32)
    share = KeyShare.from_private_bytes(NamedGroup.X25519MLKEM768, seed + ours)
    kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
    ecdh = x25519.X25519PrivateKey.from_private_bytes(ours)
    assert share.key_exchange == (
        kem.public_key().public_bytes_raw() + ecdh.public_key().public_bytes_raw()
    )


# --- the defaults ------------------------------------------------------------------------------


def test_default_groups_put_the_hybrids_first_and_ffdhe_last() -> None:
    assert DEFAULT_GROUPS[:3] == (
        NamedGroup.X25519MLKEM768,
        NamedGroup.SECP256R1MLKEM768,
        NamedGroup.SECP384R1MLKEM1024,
    )
    assert DEFAULT_GROUPS[-3:] == FFDHE
    assert DEFAULT_KEY_SHARE_GROUPS == (NamedGroup.X25519MLKEM768, NamedGroup.X25519)


def test_pure_mlkem_groups_are_supported_but_opt_in() -> None:
    for group in (NamedGroup.MLKEM768, NamedGroup.MLKEM1024):
        assert group not in DEFAULT_GROUPS
        config = ClientConfig(
            verify_peer=False, supported_groups=(group,), key_share_groups=(group,)
        )
        assert config.supported_groups == (group,)


def test_a_group_the_engine_lacks_is_refused_by_the_config() -> None:
    with pytest.raises(ValueError, match="supported_groups"):
        ClientConfig(verify_peer=False, supported_groups=(0x0103,), key_share_groups=())


# --- hybrid layouts (draft-ietf-tls-ecdhe-mlkem) ---------------------------------------------


def _ec_private(curve: ec.EllipticCurve, scalar: bytes) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(scalar, "big"), curve)


def _point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


@pytest.mark.parametrize(
    ("group", "curve", "size", "kem", "ek_len"),
    [
        (NamedGroup.SECP256R1MLKEM768, ec.SECP256R1(), 32, mlkem.MLKEM768PrivateKey, 1184),
        (NamedGroup.SECP384R1MLKEM1024, ec.SECP384R1(), 48, mlkem.MLKEM1024PrivateKey, 1568),
    ],
    ids=["SecP256r1MLKEM768", "SecP384r1MLKEM1024"],
)
def test_ecdh_mlkem_hybrids_put_the_ecdh_share_and_secret_first(
    group: int,
    curve: ec.EllipticCurve,
    size: int,
    kem: type[mlkem.MLKEM768PrivateKey] | type[mlkem.MLKEM1024PrivateKey],
    ek_len: int,
) -> None:
    client, server_share, secret = exchange(group)
    private = client.private_bytes()
    ecdh_key = _ec_private(curve, private[:size])
    kem_key = kem.from_seed_bytes(private[size:])
    point_len = 1 + 2 * size
    # client_share = ECDH point || ML-KEM encapsulation key.
    assert client.key_exchange[:point_len] == _point(ecdh_key)
    assert client.key_exchange[point_len:] == kem_key.public_key().public_bytes_raw()
    assert len(client.key_exchange) == point_len + ek_len
    # server_share = ECDH point || ML-KEM ciphertext; secret = ECDH secret || ML-KEM secret.
    server_point = ec.EllipticCurvePublicKey.from_encoded_point(curve, server_share[:point_len])
    ecdh_secret = ecdh_key.exchange(ec.ECDH(), server_point)
    kem_secret = kem_key.decapsulate(server_share[point_len:])
    assert secret == ecdh_secret + kem_secret


def test_x25519mlkem768_puts_the_mlkem_share_and_secret_first() -> None:
    client, server_share, secret = exchange(NamedGroup.X25519MLKEM768)
    private = client.private_bytes()
    kem_key = mlkem.MLKEM768PrivateKey.from_seed_bytes(private[:64])
    ecdh_key = x25519.X25519PrivateKey.from_private_bytes(private[64:])
    assert client.key_exchange[:1184] == kem_key.public_key().public_bytes_raw()
    assert client.key_exchange[1184:] == ecdh_key.public_key().public_bytes_raw()
    kem_secret = kem_key.decapsulate(server_share[:1088])
    ecdh_secret = ecdh_key.exchange(x25519.X25519PublicKey.from_public_bytes(server_share[1088:]))
    assert secret == kem_secret + ecdh_secret


# --- FFDHE (RFC 7919) -----------------------------------------------------------------------


def _e_bits(bits: int) -> int:
    """floor(2^bits * e), from the series e = sum 1/n!."""
    guard = 64
    scale = 1 << (bits + guard)
    total, term, n = 0, scale, 0
    while term:
        total += term
        n += 1
        term //= n
    return total >> guard


@pytest.mark.parametrize(
    ("group", "bits", "x"),
    [
        (NamedGroup.FFDHE2048, 2048, 560316),
        (NamedGroup.FFDHE3072, 3072, 2625351),
        (NamedGroup.FFDHE4096, 4096, 5736041),
    ],
    ids=["ffdhe2048", "ffdhe3072", "ffdhe4096"],
)
def test_ffdhe_primes_follow_the_rfc_7919_formula(group: int, bits: int, x: int) -> None:
    # RFC 7919 appendix A: p = 2^b - 2^{b-64} + {[2^{b-130} e] + X } * 2^64 - 1.
    expected = 2**bits - 2 ** (bits - 64) + (_e_bits(bits - 130) + x) * 2**64 - 1
    assert FFDHE_PRIMES[group] == expected
    assert FFDHE_PRIMES[group].bit_length() == bits


@pytest.mark.parametrize("group", FFDHE, ids=_name)
def test_ffdhe_peer_values_outside_the_subgroup_are_refused(group: int) -> None:
    p = FFDHE_PRIMES[group]
    size = math.ceil(p.bit_length() / 8)
    for y in (0, 1, p - 1, p, p + 1, 2 ** (8 * size) - 1):
        with pytest.raises(IllegalParameter, match="out of range"):
            check_peer_value(group, y.to_bytes(size, "big"))
    # p = 7 (mod 8) and p = 3 (mod 4): 2 is a square and -1 is not, so -2 lies outside
    # the prime-order subgroup: Y^q mod p = p - 1.
    assert pow(p - 2, (p - 1) // 2, p) == p - 1
    with pytest.raises(IllegalParameter, match="subgroup"):
        check_peer_value(group, (p - 2).to_bytes(size, "big"))
    assert check_peer_value(group, (2).to_bytes(size, "big")) == 2


@pytest.mark.parametrize("group", FFDHE, ids=_name)
def test_ffdhe_share_must_be_exactly_the_size_of_the_prime(group: int) -> None:
    share = KeyShare(group, os.urandom).key_exchange
    for bad in (share[1:], b"\x00" + share, share[:-1], b""):
        with pytest.raises(IllegalParameter, match="size of the prime"):
            server_exchange(group, bad, os.urandom)


def test_the_subgroup_check_agrees_with_euler_on_many_values() -> None:
    p = FFDHE_PRIMES[NamedGroup.FFDHE2048]
    q = (p - 1) // 2
    rng = seeded_random("jacobi")
    for _ in range(40):
        y = int.from_bytes(rng(256), "big") % (p - 3) + 2
        assert (jacobi(y, p) == 1) == (pow(y, q, p) == 1)


def test_the_ffdhe_secret_is_left_padded_to_the_size_of_the_prime() -> None:
    group = NamedGroup.FFDHE2048
    # X = 5 against the peer value g = 2: Z = 2^5 = 32, one byte before padding.
    secret = FfdheKey(group, 5).exchange((2).to_bytes(256, "big"))
    assert secret == bytes(255) + b"\x20"


def test_the_ffdhe_exponent_stays_in_range() -> None:
    group = NamedGroup.FFDHE2048
    q = (FFDHE_PRIMES[group] - 1) // 2
    for bad in (0, q, q + 1):
        with pytest.raises(ValueError, match="out of range"):
            FfdheKey(group, bad)
    # All-ones RNG output still lands in [1, q-1].
    key = FfdheKey.generate(group, lambda n: b"\xff" * n)
    assert 1 <= int.from_bytes(key.private_bytes(), "big") < q


# --- malformed shares: illegal_parameter everywhere -------------------------------------------


@pytest.mark.parametrize("group", GROUPS, ids=_name)
def test_every_malformed_client_share_is_an_illegal_parameter(group: int) -> None:
    good = KeyShare(group, os.urandom).key_exchange
    for name, share in malformed_client_shares(group, good).items():
        with pytest.raises(IllegalParameter):
            server_exchange(group, share, os.urandom)
            pytest.fail(f"{_name(group)}: the {name} client share was accepted")


@pytest.mark.parametrize("group", GROUPS, ids=_name)
def test_every_malformed_server_share_is_an_illegal_parameter(group: int) -> None:
    client = KeyShare(group, os.urandom)
    good, _ = server_exchange(group, client.key_exchange, os.urandom)
    for name, share in malformed_server_shares(group, good).items():
        with pytest.raises(IllegalParameter):
            client.complete(share)
            pytest.fail(f"{_name(group)}: the {name} server share was accepted")


def test_unwrapped_bindings_are_the_public_constructors_without_their_check() -> None:
    """groups.binding_or_public calls cryptography's bindings directly: the same keys from the
    same bytes as the public constructors, and the public one when a binding is absent."""
    from handshaker.tls import groups

    private = bytes(range(32))
    peer = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    direct = groups._x25519_private(private)
    public = x25519.X25519PrivateKey.from_private_bytes(private)
    assert direct.private_bytes_raw() == public.private_bytes_raw()
    assert direct.exchange(groups._x25519_public(peer)) == public.exchange(
        x25519.X25519PublicKey.from_public_bytes(peer)
    )
    seed = bytes(range(64))
    kem = groups._MLKEM768.private_from_seed(seed)
    assert (
        kem.public_key().public_bytes_raw()
        == mlkem.MLKEM768PrivateKey.from_seed_bytes(seed).public_key().public_bytes_raw()
    )
    fallback = x25519.X25519PublicKey.from_public_bytes
    assert groups.binding_or_public(fallback, "x25519.no_such_function", True) is fallback
    assert groups.binding_or_public(fallback, "x25519.from_public_bytes", False) is fallback
    with pytest.raises(ValueError):
        groups._x25519_public(b"short")
