"""TLS 1.2 key derivation against published vectors: the PRF (RFC 5246 section 5), the
extended master secret (RFC 7627), the key block, Finished and the RFC 5705 exporter.

The PRF vectors are the widely used P_SHA256 / P_SHA384 ones ("test label"), posted to
the TLS working group list (msg03416) and used by GnuTLS, tlslite-ng and others. The
extended master secret and key block are checked against OpenSSL's TLS1-PRF KDF
(`openssl kdf`), an implementation independent of ours.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from handshaker.tls.codepoints import Tls12CipherSuite
from handshaker.tls.tls12 import prf
from handshaker.tls.tls12.suites import Tls12SuiteParams

SHA256_OUTPUT = bytes.fromhex(
    "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
    "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
    "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
    "87347b66"
)
SHA384_OUTPUT = bytes.fromhex(
    "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd"
    "e9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd"
    "8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425"
    "9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6"
    "91c8f3a26854308d5eaa3be85e0990703d73e56f"
)

AES128_SHA256 = Tls12SuiteParams.for_suite(Tls12CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
AES256_SHA384 = Tls12SuiteParams.for_suite(Tls12CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)
CHACHA = Tls12SuiteParams.for_suite(Tls12CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)

PRE_MASTER = bytes.fromhex("f8938ecc9edebc5030c0c6a441e213cd24e6f770a50dda07876f8d55da062bca")
CLIENT_RANDOM = bytes(range(32))
SERVER_RANDOM = bytes(range(32, 64))
SESSION_HASH_256 = bytes.fromhex("a" * 64)
SESSION_HASH_384 = bytes.fromhex("b" * 96)


def test_prf_sha256_matches_the_published_vector() -> None:
    secret = bytes.fromhex("9bbe436ba940f017b17652849a71db35")
    seed = bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c")
    assert prf.prf("sha256", secret, b"test label", seed, 100) == SHA256_OUTPUT


def test_prf_sha384_matches_the_published_vector() -> None:
    secret = bytes.fromhex("b80b733d6ceefcdc71566ea48e5567df")
    seed = bytes.fromhex("cd665cf6a8447dd6ff8b27555edb7465")
    assert prf.prf("sha384", secret, b"test label", seed, 148) == SHA384_OUTPUT


def test_a_shorter_prf_output_is_a_prefix_of_a_longer_one() -> None:
    secret = bytes.fromhex("9bbe436ba940f017b17652849a71db35")
    seed = bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c")
    assert prf.prf("sha256", secret, b"test label", seed, 33) == SHA256_OUTPUT[:33]


def _openssl_tls1_prf(digest: str, secret: bytes, seed: bytes, length: int) -> bytes:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI missing: apt-get install openssl")
    out = subprocess.run(
        [
            openssl,
            "kdf",
            "-keylen",
            str(length),
            "-kdfopt",
            f"digest:{digest}",
            "-kdfopt",
            f"hexsecret:{secret.hex()}",
            "-kdfopt",
            f"hexseed:{seed.hex()}",
            "-binary",
            "TLS1-PRF",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    return out


@pytest.mark.parametrize(
    ("params", "session_hash", "digest"),
    [(AES128_SHA256, SESSION_HASH_256, "SHA256"), (AES256_SHA384, SESSION_HASH_384, "SHA384")],
)
def test_extended_master_secret_is_rfc7627_prf_over_the_session_hash(
    params: Tls12SuiteParams, session_hash: bytes, digest: str
) -> None:
    ours = prf.master_secret(
        params,
        PRE_MASTER,
        client_random=CLIENT_RANDOM,
        server_random=SERVER_RANDOM,
        session_hash=session_hash,
    )
    assert len(ours) == 48
    assert ours == _openssl_tls1_prf(
        digest, PRE_MASTER, b"extended master secret" + session_hash, 48
    )


def test_legacy_master_secret_uses_both_randoms() -> None:
    ours = prf.master_secret(
        AES128_SHA256,
        PRE_MASTER,
        client_random=CLIENT_RANDOM,
        server_random=SERVER_RANDOM,
        session_hash=None,
    )
    assert ours == _openssl_tls1_prf(
        "SHA256", PRE_MASTER, b"master secret" + CLIENT_RANDOM + SERVER_RANDOM, 48
    )


@pytest.mark.parametrize(
    ("params", "digest", "key_len", "iv_len"),
    [
        (AES128_SHA256, "SHA256", 16, 4),
        (AES256_SHA384, "SHA384", 32, 4),
        (CHACHA, "SHA256", 32, 12),
    ],
)
def test_key_block_splits_into_keys_then_ivs(
    params: Tls12SuiteParams, digest: str, key_len: int, iv_len: int
) -> None:
    master = bytes(range(48))
    block = _openssl_tls1_prf(
        digest, master, b"key expansion" + SERVER_RANDOM + CLIENT_RANDOM, 2 * (key_len + iv_len)
    )
    assert prf.key_block(params, master, CLIENT_RANDOM, SERVER_RANDOM) == (
        block[:key_len],
        block[key_len : 2 * key_len],
        block[2 * key_len : 2 * key_len + iv_len],
        block[2 * key_len + iv_len :],
    )


def test_finished_verify_data_is_12_bytes_of_prf() -> None:
    master = bytes(range(48))
    handshake_hash = bytes(32)
    assert prf.verify_data(AES128_SHA256, master, prf.CLIENT_FINISHED, handshake_hash) == (
        _openssl_tls1_prf("SHA256", master, b"client finished" + handshake_hash, 12)
    )


def test_exporter_with_and_without_context_differ_as_rfc5705_says() -> None:
    master = bytes(range(48))
    without = prf.export_keying_material(
        AES128_SHA256,
        master,
        client_random=CLIENT_RANDOM,
        server_random=SERVER_RANDOM,
        label=b"EXPORTER-test",
        context=None,
        length=32,
    )
    empty = prf.export_keying_material(
        AES128_SHA256,
        master,
        client_random=CLIENT_RANDOM,
        server_random=SERVER_RANDOM,
        label=b"EXPORTER-test",
        context=b"",
        length=32,
    )
    assert without == _openssl_tls1_prf(
        "SHA256", master, b"EXPORTER-test" + CLIENT_RANDOM + SERVER_RANDOM, 32
    )
    assert empty == _openssl_tls1_prf(
        "SHA256", master, b"EXPORTER-test" + CLIENT_RANDOM + SERVER_RANDOM + b"\x00\x00", 32
    )
