"""The engine's record protection and the Python client's are one implementation
(handshaker_wire.record), and so is their HKDF: same bytes, same alerts, each side
raising its own kind of error."""

from __future__ import annotations

import os

import pytest
from handshaker.tls import errors as engine_errors
from handshaker.tls.key_schedule import CipherSuiteParams, TrafficSecret
from handshaker.tls.record import RecordProtection
from handshaker.tls.tls12.record import Tls12RecordProtection
from handshaker.tls.tls12.suites import Tls12SuiteParams
from handshaker_client.errors import LocalProtocolError
from handshaker_client.keys import TrafficKeys
from handshaker_client.record import RecordProtection as ClientProtection
from handshaker_client.record import traffic_keys_from_secret
from handshaker_client.record12 import Tls12RecordProtection as ClientTls12Protection
from handshaker_wire import record as wire

TLS13_SUITES = (0x1301, 0x1302, 0x1303)
TLS12_SUITES = (0xC02B, 0xC02C, 0xCCA9)


def test_both_sides_subclass_the_shared_protections() -> None:
    assert issubclass(RecordProtection, wire.Tls13Protection)
    assert issubclass(ClientProtection, wire.Tls13Protection)
    assert issubclass(Tls12RecordProtection, wire.Tls12Protection)
    assert issubclass(ClientTls12Protection, wire.Tls12Protection)
    # Neither side redefines the cryptography: nonces, sealing and opening are inherited.
    for cls in (RecordProtection, ClientProtection, Tls12RecordProtection, ClientTls12Protection):
        assert not {"open_fragment", "_next_sequence", "_nonce"} & set(vars(cls))
    assert "seal" not in vars(RecordProtection)
    assert "seal" not in vars(Tls12RecordProtection)


@pytest.mark.parametrize("suite", TLS13_SUITES)
def test_tls13_keys_and_records_agree(suite: int) -> None:
    params = CipherSuiteParams.for_suite(suite)
    secret = os.urandom(params.hash_len)
    engine_keys = TrafficSecret.derive(params, secret)
    client_keys = traffic_keys_from_secret(suite, secret)
    assert (engine_keys.key, engine_keys.iv) == (client_keys.key, client_keys.iv)

    engine = RecordProtection(params, engine_keys.key, engine_keys.iv)
    client = ClientProtection(suite, client_keys)
    records = [engine.seal(23, b"x" * n) for n in (0, 1, 1000, 2**14)]
    client_side = ClientProtection(suite, client_keys)
    assert records == [client_side.seal(23, b"x" * n) for n in (0, 1, 1000, 2**14)]
    for n, record in zip((0, 1, 1000, 2**14), records, strict=True):
        assert client.open(record[:5], record[5:]) == (23, b"x" * n)


@pytest.mark.parametrize("suite", TLS12_SUITES)
def test_tls12_records_agree(suite: int) -> None:
    params = Tls12SuiteParams.for_suite(suite)
    key, iv = os.urandom(params.key_len), os.urandom(params.fixed_iv_len)
    engine = Tls12RecordProtection(params, key, iv, 7)
    client = ClientTls12Protection(suite, TrafficKeys(b"", key, iv, 7))
    opener = ClientTls12Protection(suite, TrafficKeys(b"", key, iv, 7))
    for data in (b"", b"hello", os.urandom(2**14)):
        record = engine.seal(23, data)
        assert record == client.seal(23, data)
        assert opener.open(23, record[5:]) == data


def test_a_bad_record_is_each_sides_own_error_with_the_same_alert() -> None:
    suite = 0x1301
    params = CipherSuiteParams.for_suite(suite)
    secret = os.urandom(params.hash_len)
    keys = traffic_keys_from_secret(suite, secret)
    record = RecordProtection(params, keys.key, keys.iv).seal(23, b"data")
    tampered = record[:-1] + bytes((record[-1] ^ 1,))

    with pytest.raises(engine_errors.BadRecordMac):
        RecordProtection(params, keys.key, keys.iv).open(tampered)
    with pytest.raises(LocalProtocolError) as raised:
        ClientProtection(suite, keys).open(tampered[:5], tampered[5:])
    assert raised.value.alert == wire.BAD_RECORD_MAC == engine_errors.BadRecordMac.description

    # Only zeros inside: no content type.
    empty = RecordProtection(params, keys.key, keys.iv).seal(0, b"")
    with pytest.raises(engine_errors.UnexpectedMessage):
        RecordProtection(params, keys.key, keys.iv).open(empty)
    with pytest.raises(LocalProtocolError) as raised:
        ClientProtection(suite, keys).open(empty[:5], empty[5:])
    assert raised.value.alert == wire.UNEXPECTED_MESSAGE


def test_the_last_sequence_number_is_never_used() -> None:
    params = Tls12SuiteParams.for_suite(0xC02B)
    key, iv = os.urandom(16), os.urandom(4)
    protection = Tls12RecordProtection(params, key, iv, 2**64 - 1)
    with pytest.raises(engine_errors.InternalError):
        protection.seal(23, b"late")
    client = ClientTls12Protection(0xC02B, TrafficKeys(b"", key, iv, 2**64 - 1))
    with pytest.raises(LocalProtocolError) as raised:
        client.seal(23, b"late")
    assert raised.value.alert == wire.INTERNAL_ERROR
