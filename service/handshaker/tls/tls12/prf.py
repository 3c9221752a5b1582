"""The TLS 1.2 key derivation: PRF (RFC 5246 section 5), master secret (section 8.1,
RFC 7627 section 4), key block (section 6.3), Finished (section 7.4.9), exporter (RFC 5705).

Pure functions of their inputs: no clock, RNG or I/O. HMAC comes from the standard
library (OpenSSL underneath).
"""

from __future__ import annotations

from handshaker_wire.hkdf import HmacKey

from .suites import Tls12SuiteParams

MASTER_SECRET_LEN = 48
VERIFY_DATA_LEN = 12


def p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """P_hash(secret, seed) = HMAC_hash(secret, A(1) + seed) + HMAC_hash(secret, A(2) + seed) + ...

    where A(0) = seed and A(i) = HMAC_hash(secret, A(i-1)) (RFC 5246 section 5).
    """
    # Every HMAC here is under `secret`: keyed once (handshaker_wire.hkdf.HmacKey, version-neutral).
    mac = HmacKey(secret, hash_name)
    out = bytearray()
    a = seed
    while len(out) < length:
        a = mac.digest(a)
        out += mac.digest(a + seed)
    return bytes(out[:length])


def prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """PRF(secret, label, seed) = P_<hash>(secret, label + seed)."""
    return p_hash(hash_name, secret, label + seed, length)


def master_secret(
    params: Tls12SuiteParams,
    pre_master_secret: bytes,
    *,
    client_random: bytes,
    server_random: bytes,
    session_hash: bytes | None,
) -> bytes:
    """The master secret; extended (RFC 7627 section 4) when `session_hash` is given.

    master_secret = PRF(pre_master_secret, "extended master secret", session_hash)[0..47]
    master_secret = PRF(pre_master_secret, "master secret",
                        ClientHello.random + ServerHello.random)[0..47]
    """
    if session_hash is not None:
        return prf(
            params.hash_name,
            pre_master_secret,
            b"extended master secret",
            session_hash,
            MASTER_SECRET_LEN,
        )
    return prf(
        params.hash_name,
        pre_master_secret,
        b"master secret",
        client_random + server_random,
        MASTER_SECRET_LEN,
    )


def key_block(
    params: Tls12SuiteParams, master: bytes, client_random: bytes, server_random: bytes
) -> tuple[bytes, bytes, bytes, bytes]:
    """(client_write_key, server_write_key, client_write_IV, server_write_IV).

    key_block = PRF(SecurityParameters.master_secret, "key expansion",
                    SecurityParameters.server_random + SecurityParameters.client_random);
    AEAD suites have no MAC keys (mac_key_length 0); the IVs are the GCM salt or the
    ChaCha20-Poly1305 IV.
    """
    k = params.key_len
    v = params.fixed_iv_len
    block = prf(
        params.hash_name, master, b"key expansion", server_random + client_random, 2 * (k + v)
    )
    return block[:k], block[k : 2 * k], block[2 * k : 2 * k + v], block[2 * k + v :]


def verify_data(
    params: Tls12SuiteParams, master: bytes, label: bytes, handshake_hash: bytes
) -> bytes:
    """verify_data = PRF(master_secret, finished_label, Hash(handshake_messages))[0..11]."""
    return prf(params.hash_name, master, label, handshake_hash, VERIFY_DATA_LEN)


CLIENT_FINISHED = b"client finished"
SERVER_FINISHED = b"server finished"


def export_keying_material(
    params: Tls12SuiteParams,
    master: bytes,
    *,
    client_random: bytes,
    server_random: bytes,
    label: bytes,
    context: bytes | None,
    length: int,
) -> bytes:
    """RFC 5705 section 4:

    PRF(SecurityParameters.master_secret, label,
        SecurityParameters.client_random + SecurityParameters.server_random
        [+ context_value_length + context_value])[length]
    """
    seed = client_random + server_random
    if context is not None:
        if len(context) >= 2**16:
            raise ValueError("an exporter context is shorter than 2^16 bytes")
        seed += len(context).to_bytes(2, "big") + context
    return prf(params.hash_name, master, label, seed, length)
