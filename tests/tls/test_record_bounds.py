"""Bounds on what a peer can make one handshake process: dummy CCS records and tiny records.

A peer that sends more change_cipher_spec records than RFC 8446 appendix D.4 allows, or
a stream of tiny handshake records, gets unexpected_message instead of our CPU; the
counts survive a snapshot.
"""

from __future__ import annotations

from engine_kit import EnginePKI, client_config, only_failure, server_config
from handshaker.tls import AlertDescription, ClientConnection, ConnectionState, ServerConnection
from handshaker.tls.core import MAX_DUMMY_CHANGE_CIPHER_SPECS, MAX_TINY_RECORDS, TINY_RECORD

CCS = b"\x14\x03\x03\x00\x01\x01"


def _records(message: bytes, size: int) -> bytes:
    return b"".join(
        b"\x16\x03\x03" + len(chunk).to_bytes(2, "big") + chunk
        for chunk in (message[i : i + size] for i in range(0, len(message), size))
    )


def test_dummy_change_cipher_specs_past_the_bound_are_unexpected(engine_pki: EnginePKI) -> None:
    client = ClientConnection(client_config(engine_pki))
    server = ServerConnection(server_config(engine_pki))
    server.receive_data(client.data_to_send())
    server.data_to_send()
    server.receive_data(CCS * MAX_DUMMY_CHANGE_CIPHER_SPECS)
    assert server.state is ConnectionState.HANDSHAKING
    server.receive_data(CCS)
    failure = only_failure(list(server.events()))
    assert failure.alert == AlertDescription.UNEXPECTED_MESSAGE
    assert "change_cipher_spec" in failure.reason


def test_one_dummy_change_cipher_spec_is_still_dropped(engine_pki: EnginePKI) -> None:
    client = ClientConnection(client_config(engine_pki))
    server = ServerConnection(server_config(engine_pki))
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(CCS + client.data_to_send().removeprefix(CCS))
    assert server.state is ConnectionState.COMPLETE


def test_a_client_hello_in_one_byte_records_is_refused_past_the_bound(
    engine_pki: EnginePKI,
) -> None:
    hello = ClientConnection(client_config(engine_pki)).data_to_send()[5:]
    server = ServerConnection(server_config(engine_pki))
    server.receive_data(_records(hello, 1))
    failure = only_failure(list(server.events()))
    assert failure.alert == AlertDescription.UNEXPECTED_MESSAGE
    assert "tiny" in failure.reason


def test_a_client_hello_in_records_of_the_bound_s_size_is_answered(
    engine_pki: EnginePKI,
) -> None:
    # Records of TINY_RECORD bytes are not tiny: a hundred of them are fine.
    hello = ClientConnection(client_config(engine_pki)).data_to_send()[5:]
    assert len(hello) > TINY_RECORD * MAX_TINY_RECORDS
    server = ServerConnection(server_config(engine_pki))
    server.receive_data(_records(hello, TINY_RECORD))
    assert server.state is ConnectionState.HANDSHAKING
    assert server.data_to_send()


def test_the_counts_survive_a_snapshot(engine_pki: EnginePKI) -> None:
    config = server_config(engine_pki)
    client = ClientConnection(client_config(engine_pki))
    server = ServerConnection(config)
    server.receive_data(client.data_to_send())
    server.data_to_send()
    server.receive_data(CCS * MAX_DUMMY_CHANGE_CIPHER_SPECS)
    restored = ServerConnection.restore(server.snapshot(), config)
    restored.receive_data(CCS)
    assert only_failure(list(restored.events())).alert == AlertDescription.UNEXPECTED_MESSAGE


def test_buffered_bytes_counts_a_partial_record_and_an_unfinished_message(
    engine_pki: EnginePKI,
) -> None:
    hello = ClientConnection(client_config(engine_pki)).data_to_send()
    server = ServerConnection(server_config(engine_pki))
    assert server.buffered_bytes == 0
    server.receive_data(hello[:10])  # half a record header and a little more
    assert server.buffered_bytes == 10
    # The whole message in two records: after the first, its bytes wait as a message.
    body = hello[5:]
    server = ServerConnection(server_config(engine_pki))
    server.receive_data(_records(body[:100], 100))
    assert server.buffered_bytes == 100
    server.receive_data(_records(body[100:], len(body)))
    assert server.buffered_bytes == 0
