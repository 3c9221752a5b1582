"""TLS 1.2 AEAD record protection, checked against the AEAD primitives directly:
the nonce (RFC 5288 section 3 for GCM, RFC 7905 section 2 for ChaCha20-Poly1305) and
the additional data (RFC 5246 section 6.2.3.3) are rebuilt by hand here.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from handshaker.tls import AlertDescription, ContentType, Tls12CipherSuite, TrafficKeys
from handshaker.tls.errors import BadRecordMac
from handshaker.tls.tls12.record import Tls12RecordProtection
from handshaker.tls.tls12.suites import Tls12SuiteParams

KEY16 = bytes(range(16))
KEY32 = bytes(range(32))
SALT = bytes.fromhex("a1a2a3a4")
IV12 = bytes.fromhex("000102030405060708090a0b")


def _aad(seq: int, content_type: int, length: int) -> bytes:
    # additional_data = seq_num + TLSCompressed.type + TLSCompressed.version + length
    return seq.to_bytes(8, "big") + bytes((content_type, 3, 3)) + length.to_bytes(2, "big")


def test_gcm_records_carry_the_sequence_number_as_explicit_nonce() -> None:
    params = Tls12SuiteParams.for_suite(Tls12CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
    protect = Tls12RecordProtection(params, KEY16, SALT, sequence_number=7)
    record = protect.seal(ContentType.APPLICATION_DATA, b"hello")
    explicit = (7).to_bytes(8, "big")
    expected_fragment = explicit + AESGCM(KEY16).encrypt(
        SALT + explicit, b"hello", _aad(7, ContentType.APPLICATION_DATA, 5)
    )
    assert (
        record == bytes((23, 3, 3)) + len(expected_fragment).to_bytes(2, "big") + expected_fragment
    )
    assert protect.sequence_number == 8


def test_chacha20_records_xor_the_sequence_number_into_the_iv() -> None:
    params = Tls12SuiteParams.for_suite(
        Tls12CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
    )
    protect = Tls12RecordProtection(params, KEY32, IV12, sequence_number=1)
    record = protect.seal(ContentType.ALERT, b"\x01\x00")
    nonce = (int.from_bytes(IV12, "big") ^ 1).to_bytes(12, "big")
    fragment = ChaCha20Poly1305(KEY32).encrypt(nonce, b"\x01\x00", _aad(1, ContentType.ALERT, 2))
    assert record == bytes((21, 3, 3)) + len(fragment).to_bytes(2, "big") + fragment


@pytest.mark.parametrize("suite", tuple(Tls12CipherSuite), ids=lambda s: s.name)
def test_open_reverses_seal_and_keeps_the_content_type(suite: Tls12CipherSuite) -> None:
    params = Tls12SuiteParams.for_suite(suite)
    key = bytes(params.key_len)
    iv = bytes(params.fixed_iv_len)
    keys = TrafficKeys(secret=b"", key=key, iv=iv, sequence_number=1)
    sender = Tls12RecordProtection.from_keys(suite, keys)
    receiver = Tls12RecordProtection.from_keys(suite, keys)
    for content_type in (ContentType.HANDSHAKE, ContentType.APPLICATION_DATA):
        assert receiver.open(sender.seal(content_type, b"data")) == (content_type, b"data")


def test_a_record_under_another_sequence_number_fails_authentication() -> None:
    params = Tls12SuiteParams.for_suite(Tls12CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)
    record = Tls12RecordProtection(params, KEY32, SALT, 0).seal(ContentType.APPLICATION_DATA, b"x")
    with pytest.raises(BadRecordMac) as raised:
        Tls12RecordProtection(params, KEY32, SALT, 1).open(record)
    assert raised.value.description == AlertDescription.BAD_RECORD_MAC


def test_a_record_too_short_for_nonce_and_tag_is_a_bad_record_mac() -> None:
    params = Tls12SuiteParams.for_suite(Tls12CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
    with pytest.raises(BadRecordMac):
        Tls12RecordProtection(params, KEY16, SALT).open(bytes((23, 3, 3, 0, 10)) + bytes(10))


def test_the_repr_shows_no_key() -> None:
    params = Tls12SuiteParams.for_suite(Tls12CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
    text = repr(Tls12RecordProtection(params, KEY16, SALT))
    assert KEY16.hex() not in text and "redacted" in text
