"""The key schedule reproduces every RFC 8448 secret, key, IV and Finished value.

Transcript hashes are computed here from the RFC's message bytes; the secrets the
key schedule derives from them must equal the RFC's, stage by stage.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from handshaker.tls import CipherSuite, ContentType, HandshakeResult, RecordProtection
from handshaker.tls.errors import BadRecordMac
from handshaker.tls.events import TrafficKeys
from handshaker.tls.key_schedule import (
    ApplicationSecrets,
    CipherSuiteParams,
    HandshakeSecrets,
    TrafficSecret,
    finished_verify_data,
    hkdf_extract,
)
from vectors import transcript
from vectors.rfc8448 import SIMPLE_1RTT, TRACES, Trace

PARAMS = CipherSuiteParams.for_suite(CipherSuite.TLS_AES_128_GCM_SHA256)


def _ids(trace: Trace) -> str:
    return f"section{trace.section}"


parametrize_traces = pytest.mark.parametrize("trace", TRACES, ids=_ids)


def _handshake(trace: Trace) -> HandshakeSecrets:
    return HandshakeSecrets.derive(
        PARAMS, trace.shared_secret, transcript.through_server_hello(trace)
    )


def _application(trace: Trace) -> ApplicationSecrets:
    return ApplicationSecrets.derive(
        PARAMS, _handshake(trace).master_secret(), transcript.through_server_finished(trace)
    )


@parametrize_traces
def test_early_secret_without_psk(trace: Trace) -> None:
    assert hkdf_extract(PARAMS, PARAMS.zeros, PARAMS.zeros) == trace.early_secret


@parametrize_traces
def test_handshake_secret(trace: Trace) -> None:
    assert _handshake(trace).handshake_secret == trace.handshake_secret


@parametrize_traces
def test_client_handshake_traffic_secret_key_and_iv(trace: Trace) -> None:
    client = _handshake(trace).client
    assert client.secret == trace.client_handshake_traffic_secret
    assert client.key == trace.client_handshake_key
    assert client.iv == trace.client_handshake_iv


@parametrize_traces
def test_server_handshake_traffic_secret_key_and_iv(trace: Trace) -> None:
    server = _handshake(trace).server
    assert server.secret == trace.server_handshake_traffic_secret
    assert server.key == trace.server_handshake_key
    assert server.iv == trace.server_handshake_iv


@parametrize_traces
def test_master_secret(trace: Trace) -> None:
    assert _handshake(trace).master_secret() == trace.master_secret


@parametrize_traces
def test_server_finished_verify_data(trace: Trace) -> None:
    verify_data = finished_verify_data(
        PARAMS,
        trace.server_handshake_traffic_secret,
        transcript.through_certificate_verify(trace),
    )
    assert verify_data == trace.server_finished_verify_data
    assert trace.server_finished == b"\x14\x00\x00\x20" + verify_data


@parametrize_traces
def test_client_finished_verify_data(trace: Trace) -> None:
    verify_data = finished_verify_data(
        PARAMS,
        trace.client_handshake_traffic_secret,
        transcript.through_server_finished(trace),
    )
    assert verify_data == trace.client_finished_verify_data
    assert trace.client_finished == b"\x14\x00\x00\x20" + verify_data


@parametrize_traces
def test_client_application_traffic_secret_key_and_iv(trace: Trace) -> None:
    client = _application(trace).client
    assert client.secret == trace.client_application_traffic_secret
    assert client.key == trace.client_application_key
    assert client.iv == trace.client_application_iv


@parametrize_traces
def test_server_application_traffic_secret_key_and_iv(trace: Trace) -> None:
    server = _application(trace).server
    assert server.secret == trace.server_application_traffic_secret
    assert server.key == trace.server_application_key
    assert server.iv == trace.server_application_iv


@parametrize_traces
def test_exporter_master_secret(trace: Trace) -> None:
    assert _application(trace).exporter_master_secret == trace.exporter_master_secret


@parametrize_traces
def test_resumption_master_secret(trace: Trace) -> None:
    secret = _application(trace).resumption_master_secret(transcript.through_client_finished(trace))
    assert secret == trace.resumption_master_secret


@parametrize_traces
def test_traffic_secret_derives_key_and_iv_from_the_secret_alone(trace: Trace) -> None:
    derived = TrafficSecret.derive(PARAMS, trace.server_application_traffic_secret)
    assert (derived.key, derived.iv) == (trace.server_application_key, trace.server_application_iv)


# --- record protection with the RFC's keys -------------------------------------------


def _protection(key: bytes, iv: bytes, sequence_number: int = 0) -> RecordProtection:
    return RecordProtection(PARAMS, key, iv, sequence_number)


def _server_flight(trace: Trace) -> bytes:
    return (
        trace.encrypted_extensions
        + trace.certificate
        + trace.certificate_verify
        + trace.server_finished
    )


@parametrize_traces
def test_server_flight_record_opens_to_the_server_messages(trace: Trace) -> None:
    protection = _protection(trace.server_handshake_key, trace.server_handshake_iv)
    assert protection.open(trace.server_flight_record) == (
        ContentType.HANDSHAKE,
        _server_flight(trace),
    )


@parametrize_traces
def test_sealing_the_server_flight_gives_the_rfc_record(trace: Trace) -> None:
    protection = _protection(trace.server_handshake_key, trace.server_handshake_iv)
    sealed = protection.seal(ContentType.HANDSHAKE, _server_flight(trace))
    assert sealed == trace.server_flight_record


@parametrize_traces
def test_client_finished_record_opens_to_client_finished(trace: Trace) -> None:
    protection = _protection(trace.client_handshake_key, trace.client_handshake_iv)
    opened = protection.open(trace.client_finished_record)
    assert opened == (ContentType.HANDSHAKE, trace.client_finished)


@parametrize_traces
def test_sealing_client_finished_gives_the_rfc_record(trace: Trace) -> None:
    protection = _protection(trace.client_handshake_key, trace.client_handshake_iv)
    sealed = protection.seal(ContentType.HANDSHAKE, trace.client_finished)
    assert sealed == trace.client_finished_record


def _client_close_notify_sequence(trace: Trace) -> int:
    # In section 3 the client sends one application_data record first.
    return 1 if trace.client_application_data_record is not None else 0


def _server_close_notify_sequence(trace: Trace) -> int:
    # In section 3 the server sends a NewSessionTicket and one application_data record first.
    return 2 if trace.client_application_data_record is not None else 0


@parametrize_traces
def test_close_notify_records_open_with_the_application_keys(trace: Trace) -> None:
    close_notify = (ContentType.ALERT, b"\x01\x00")
    client = TrafficKeys(
        trace.client_application_traffic_secret,
        trace.client_application_key,
        trace.client_application_iv,
        _client_close_notify_sequence(trace),
    )
    server = TrafficKeys(
        trace.server_application_traffic_secret,
        trace.server_application_key,
        trace.server_application_iv,
        _server_close_notify_sequence(trace),
    )
    reader = RecordProtection.from_keys(trace.cipher_suite, client)
    assert reader.open(trace.client_close_notify_record) == close_notify
    reader = RecordProtection.from_keys(trace.cipher_suite, server)
    assert reader.open(trace.server_close_notify_record) == close_notify


def test_client_application_data_record_round_trips() -> None:
    trace = SIMPLE_1RTT
    assert trace.client_application_data is not None
    assert trace.client_application_data_record is not None
    writer = _protection(trace.client_application_key, trace.client_application_iv)
    sealed = writer.seal(ContentType.APPLICATION_DATA, trace.client_application_data)
    assert sealed == trace.client_application_data_record
    reader = _protection(trace.client_application_key, trace.client_application_iv)
    assert reader.open(sealed) == (ContentType.APPLICATION_DATA, trace.client_application_data)


def test_tampered_record_fails_authentication() -> None:
    trace = SIMPLE_1RTT
    record = bytearray(trace.server_flight_record)
    record[-1] ^= 1
    protection = _protection(trace.server_handshake_key, trace.server_handshake_iv)
    with pytest.raises(BadRecordMac):
        protection.open(bytes(record))


# --- the exporter (RFC 8446 section 7.5) ---------------------------------------------


def _expand_label(secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    # An HKDF-Expand-Label written against cryptography's HKDFExpand, independent of
    # the engine's own HMAC-based one.
    full_label = b"tls13 " + label
    info = (
        length.to_bytes(2, "big")
        + bytes((len(full_label),))
        + full_label
        + bytes((len(context),))
        + context
    )
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def _reference_exporter(secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """TLS-Exporter(label, context_value, key_length) =
    HKDF-Expand-Label(Derive-Secret(Secret, label, ""), "exporter", Hash(context_value), key_length)
    """
    empty_hash = PARAMS.hash_of(b"")
    derived = _expand_label(secret, label, empty_hash, PARAMS.hash_len)
    return _expand_label(derived, b"exporter", PARAMS.hash_of(context), length)


def _result_with_exporter_secret(trace: Trace) -> HandshakeResult:
    keys = TrafficKeys(b"", b"", b"")
    return HandshakeResult(
        version=0x0304,
        cipher_suite=trace.cipher_suite,
        group=trace.group,
        peer_signature_scheme=trace.signature_scheme,
        signature_scheme=None,
        alpn_protocol=None,
        server_name="server",
        peer_certificates=(trace.server_certificate_der,),
        read=keys,
        write=keys,
        exporter_master_secret=trace.exporter_master_secret,
        resumption_master_secret=trace.resumption_master_secret,
        client_random=trace.client_random,
    )


@parametrize_traces
@pytest.mark.parametrize(
    ("label", "context", "length"),
    [
        (b"EXPORTER-Channel-Binding", b"", 32),
        (b"EXPERIMENTAL-test", b"context value", 48),
        (b"EXPERIMENTAL-short", b"\x00" * 40, 12),
    ],
)
def test_exporter_uses_the_exporter_master_secret(
    trace: Trace, label: bytes, context: bytes, length: int
) -> None:
    # RFC 8448 publishes exporter_master_secret but no exporter output, so the
    # expected value is the RFC 8446 formula applied to the RFC's secret.
    exported = _result_with_exporter_secret(trace).export_keying_material(label, context, length)
    assert len(exported) == length
    assert exported == _reference_exporter(trace.exporter_master_secret, label, context, length)


def test_exporter_outputs_differ_by_label_and_context() -> None:
    result = _result_with_exporter_secret(SIMPLE_1RTT)
    base = result.export_keying_material(b"EXPERIMENTAL-a", b"", 32)
    assert base != result.export_keying_material(b"EXPERIMENTAL-b", b"", 32)
    assert base != result.export_keying_material(b"EXPERIMENTAL-a", b"x", 32)
