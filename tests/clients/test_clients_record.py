"""The client record layer on its own: RFC 8448 vectors, both directions in memory, bad input."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from handshaker_client import (
    AlertDescription,
    ApplicationData,
    CipherSuite,
    CloseNotifyReceived,
    KeyUpdateReceived,
    LocalProtocolError,
    PeerAlertError,
    RecordLayer,
    RecordProtection,
    TLSProtocolError,
    TrafficKeys,
)
from handshaker_client.record import next_traffic_keys, traffic_keys_from_secret

SUITES = [
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
]
HASHES = {
    CipherSuite.TLS_AES_128_GCM_SHA256: "sha256",
    CipherSuite.TLS_AES_256_GCM_SHA384: "sha384",
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256: "sha256",
}

# RFC 8448 section 3 (Simple 1-RTT Handshake): the client application traffic
# secret, its key and IV, and the client's first application data record.
RFC8448_CLIENT_AP_SECRET = bytes.fromhex(
    "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5"
)
RFC8448_CLIENT_AP_KEY = bytes.fromhex("17422dda596ed5d9acd890e3c63f5051")
RFC8448_CLIENT_AP_IV = bytes.fromhex("5b78923dee08579033e523d9")
RFC8448_CLIENT_DATA = bytes(range(50))
RFC8448_CLIENT_RECORD = bytes.fromhex(
    "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f"
    "2b9819a8a5b46b395bd54a9a20441e2b62974e1f5a6292a2977014bd1e3deae6"
    "3aeebb21694915e4"
)


def expand_label(hash_name: str, secret: bytes, label: bytes, length: int) -> bytes:
    """HKDF-Expand-Label with an empty context, written out with HMAC (one or two blocks)."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes((len(full),)) + full + b"\x00"
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes((counter,)), hash_name).digest()
        out += block
        counter += 1
    return out[:length]


def pair(suite: int, *, limit: int = 2**14) -> tuple[RecordLayer, RecordLayer]:
    """Two record layers facing each other, keys from fresh random secrets."""
    size = hashlib.new(HASHES[suite]).digest_size
    client_keys = traffic_keys_from_secret(suite, os.urandom(size))
    server_keys = traffic_keys_from_secret(suite, os.urandom(size))
    client = RecordLayer(suite, server_keys, client_keys, peer_record_size_limit=limit)
    server = RecordLayer(suite, client_keys, server_keys, peer_record_size_limit=limit)
    return client, server


def deliver(sender: RecordLayer, receiver: RecordLayer) -> list[object]:
    receiver.receive_data(sender.data_to_send())
    return list(receiver.events())


def records_of(wire: bytes) -> list[bytes]:
    out = []
    while wire:
        length = int.from_bytes(wire[3:5], "big")
        out.append(wire[: 5 + length])
        wire = wire[5 + length :]
    return out


def test_keys_from_the_rfc8448_client_application_secret() -> None:
    keys = traffic_keys_from_secret(CipherSuite.TLS_AES_128_GCM_SHA256, RFC8448_CLIENT_AP_SECRET)
    assert keys.key == RFC8448_CLIENT_AP_KEY
    assert keys.iv == RFC8448_CLIENT_AP_IV


def test_seal_matches_the_rfc8448_client_application_record() -> None:
    keys = TrafficKeys(RFC8448_CLIENT_AP_SECRET, RFC8448_CLIENT_AP_KEY, RFC8448_CLIENT_AP_IV, 0)
    protection = RecordProtection(CipherSuite.TLS_AES_128_GCM_SHA256, keys)
    assert protection.seal(23, RFC8448_CLIENT_DATA) == RFC8448_CLIENT_RECORD


def test_open_reads_the_rfc8448_client_application_record() -> None:
    keys = TrafficKeys(RFC8448_CLIENT_AP_SECRET, RFC8448_CLIENT_AP_KEY, RFC8448_CLIENT_AP_IV, 0)
    layer = RecordLayer(CipherSuite.TLS_AES_128_GCM_SHA256, keys, keys)
    layer.receive_data(RFC8448_CLIENT_RECORD)
    assert list(layer.events()) == [ApplicationData(RFC8448_CLIENT_DATA)]


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_round_trip_in_both_directions(suite: int) -> None:
    client, server = pair(suite)
    client.send_application_data(b"ping")
    assert deliver(client, server) == [ApplicationData(b"ping")]
    server.send_application_data(b"pong")
    assert deliver(server, client) == [ApplicationData(b"pong")]


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_sequence_numbers_start_where_the_keys_say(suite: int) -> None:
    client, _ = pair(suite)
    keys = client.write_keys
    resumed_at_five = TrafficKeys(keys.secret, keys.key, keys.iv, 5)
    reader = RecordLayer(suite, resumed_at_five, keys)
    for _ in range(5):
        client.send_application_data(b"skipped")
    client.data_to_send()
    client.send_application_data(b"sixth")
    reader.receive_data(client.data_to_send())
    assert list(reader.events()) == [ApplicationData(b"sixth")]
    assert reader.read_keys.sequence_number == 6


def test_byte_at_a_time_delivery() -> None:
    client, server = pair(CipherSuite.TLS_AES_256_GCM_SHA384)
    client.send_application_data(b"first")
    client.send_application_data(b"second")
    received = b""
    for byte in client.data_to_send():
        server.receive_data(bytes((byte,)))
        for event in server.events():
            assert isinstance(event, ApplicationData)
            received += event.data
    assert received == b"firstsecond"


def test_fragments_at_two_to_the_fourteen() -> None:
    client, server = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    data = os.urandom(40_000)
    client.send_application_data(data)
    wire = client.data_to_send()
    # Each record: 5-byte header, content, 1 content-type byte, 16-byte tag.
    assert [len(r) - 5 - 1 - 16 for r in records_of(wire)] == [16384, 16384, 40_000 - 32768]
    server.receive_data(wire)
    assert b"".join(e.data for e in server.events() if isinstance(e, ApplicationData)) == data


def test_fragments_at_the_peer_record_size_limit() -> None:
    client, server = pair(CipherSuite.TLS_CHACHA20_POLY1305_SHA256, limit=1000)
    client.send_application_data(bytes(2500))
    wire = client.data_to_send()
    assert [len(r) - 5 - 1 - 16 for r in records_of(wire)] == [1000, 1000, 500]
    server.receive_data(wire)
    assert sum(len(e.data) for e in server.events() if isinstance(e, ApplicationData)) == 2500


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_key_update_requested_updates_both_directions(suite: int) -> None:
    client, server = pair(suite)
    old_client_write = client.write_keys
    old_server_write = server.write_keys
    client.update_keys(request_peer_update=True)
    client.send_application_data(b"under the new key")
    assert deliver(client, server) == [
        KeyUpdateReceived(update_requested=True),
        ApplicationData(b"under the new key"),
    ]
    hash_name = HASHES[suite]
    size = hashlib.new(hash_name).digest_size
    expected = expand_label(hash_name, old_client_write.secret, b"traffic upd", size)
    assert client.write_keys.secret == expected
    assert server.read_keys.secret == expected
    assert server.read_keys.key == expand_label(
        hash_name, expected, b"key", len(old_client_write.key)
    )
    assert server.read_keys.iv == expand_label(hash_name, expected, b"iv", 12)
    # The server answered with update_not_requested and switched its write key.
    server.send_application_data(b"reply")
    assert deliver(server, client) == [
        KeyUpdateReceived(update_requested=False),
        ApplicationData(b"reply"),
    ]
    assert server.write_keys.secret == expand_label(
        hash_name, old_server_write.secret, b"traffic upd", size
    )
    assert client.read_keys.secret == server.write_keys.secret
    assert (client.key_updates_sent, client.key_updates_received) == (1, 1)
    assert (server.key_updates_sent, server.key_updates_received) == (1, 1)


def test_key_update_not_requested_leaves_the_other_direction() -> None:
    client, server = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    before = server.write_keys
    client.update_keys(request_peer_update=False)
    assert deliver(client, server) == [KeyUpdateReceived(update_requested=False)]
    assert server.data_to_send() == b""
    assert server.write_keys == before


def test_next_traffic_keys_is_the_traffic_upd_derivation() -> None:
    suite = CipherSuite.TLS_AES_256_GCM_SHA384
    keys = traffic_keys_from_secret(suite, os.urandom(48))
    updated = next_traffic_keys(suite, keys)
    assert updated.secret == expand_label("sha384", keys.secret, b"traffic upd", 48)
    assert updated.key == expand_label("sha384", updated.secret, b"key", 32)
    assert updated.sequence_number == 0


def test_automatic_key_update_before_the_record_limit() -> None:
    suite = CipherSuite.TLS_AES_128_GCM_SHA256
    client, server = pair(suite)
    client = RecordLayer(suite, client.read_keys, client.write_keys, key_update_after_records=3)
    for n in range(5):
        client.send_application_data(b"%d" % n)
    events = deliver(client, server)
    assert KeyUpdateReceived(update_requested=False) in events
    assert [e.data for e in events if isinstance(e, ApplicationData)] == [
        b"0", b"1", b"2", b"3", b"4"
    ]


def test_close_notify_ends_reading_and_writing() -> None:
    client, server = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    client.send_application_data(b"last words")
    client.close()
    with pytest.raises(TLSProtocolError):
        client.send_application_data(b"too late")
    wire = client.data_to_send()
    server.receive_data(wire + b"\x17\x03\x03\x00\x20" + bytes(32))
    assert list(server.events()) == [ApplicationData(b"last words"), CloseNotifyReceived()]
    assert server.close_notify_received


def seal_from_peer(peer: RecordLayer, content_type: int, content: bytes) -> bytes:
    """A record sealed under the peer's current write key, outside its API."""
    protection = RecordProtection(peer.cipher_suite, peer.write_keys)
    return protection.seal(content_type, content)


def test_new_session_tickets_are_dropped() -> None:
    client, server = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    ticket_body = bytes(4) + bytes(4) + b"\x01\x00" + b"\x00\x03abc" + b"\x00\x00"
    ticket = bytes((4,)) + len(ticket_body).to_bytes(3, "big") + ticket_body
    wire = seal_from_peer(server, 22, ticket + ticket)
    protection = RecordProtection(server.cipher_suite, server.write_keys)
    protection.sequence_number = 1
    wire += protection.seal(23, b"after the tickets")
    client.receive_data(wire)
    assert list(client.events()) == [ApplicationData(b"after the tickets")]
    assert client.tickets_dropped == 2


def test_a_ticket_split_across_records_is_dropped() -> None:
    client, server = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    body = bytes(10) + b"\x00\x05ticket"[:7] + b"\x00\x00"
    ticket = bytes((4,)) + len(body).to_bytes(3, "big") + body
    protection = RecordProtection(server.cipher_suite, server.write_keys)
    client.receive_data(protection.seal(22, ticket[:6]) + protection.seal(22, ticket[6:]))
    assert list(client.events()) == []
    assert client.tickets_dropped == 1


def alert_in(layer_with_alert: RecordLayer, reader: RecordLayer) -> int:
    """The alert description that `layer_with_alert` queued, as its peer decrypts it."""
    reader.receive_data(layer_with_alert.data_to_send())
    with pytest.raises(PeerAlertError) as raised:
        list(reader.events())
    return raised.value.alert


@pytest.mark.parametrize(
    ("message", "alert"),
    [
        (bytes((13, 0, 0, 4, 0, 0, 0, 0)), AlertDescription.UNEXPECTED_MESSAGE),
        (bytes((24, 0, 0, 1, 2)), AlertDescription.ILLEGAL_PARAMETER),
        (bytes((24, 0, 0, 2, 0, 0)), AlertDescription.DECODE_ERROR),
        (bytes((24, 0, 0, 1, 0)) + bytes((4, 0, 0, 1)), AlertDescription.UNEXPECTED_MESSAGE),
    ],
    ids=["certificate_request", "bad_request_update", "long_key_update", "key_update_not_last"],
)
def test_bad_post_handshake_messages_get_their_alert(message: bytes, alert: int) -> None:
    client, server = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    client.receive_data(seal_from_peer(server, 22, message))
    with pytest.raises(LocalProtocolError) as raised:
        list(client.events())
    assert raised.value.alert == alert
    assert alert_in(client, server) == alert


def test_a_forged_record_is_bad_record_mac() -> None:
    client, server = pair(CipherSuite.TLS_AES_256_GCM_SHA384)
    server.send_application_data(b"genuine")
    wire = bytearray(server.data_to_send())
    wire[-1] ^= 1
    client.receive_data(bytes(wire))
    with pytest.raises(LocalProtocolError) as raised:
        list(client.events())
    assert raised.value.alert == AlertDescription.BAD_RECORD_MAC
    assert alert_in(client, server) == AlertDescription.BAD_RECORD_MAC


def test_an_unprotected_record_after_the_handshake_is_unexpected() -> None:
    client, _ = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    client.receive_data(b"\x14\x03\x03\x00\x01\x01")
    with pytest.raises(LocalProtocolError) as raised:
        list(client.events())
    assert raised.value.alert == AlertDescription.UNEXPECTED_MESSAGE


def test_an_oversized_record_is_record_overflow() -> None:
    client, _ = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    client.receive_data(b"\x17\x03\x03" + (2**14 + 257).to_bytes(2, "big"))
    with pytest.raises(LocalProtocolError) as raised:
        list(client.events())
    assert raised.value.alert == AlertDescription.RECORD_OVERFLOW


def test_a_fatal_alert_from_the_peer_raises_with_its_description() -> None:
    client, server = pair(CipherSuite.TLS_AES_128_GCM_SHA256)
    server.send_alert(AlertDescription.INTERNAL_ERROR)
    client.receive_data(server.data_to_send())
    with pytest.raises(PeerAlertError) as raised:
        list(client.events())
    assert raised.value.alert == AlertDescription.INTERNAL_ERROR
    assert raised.value.alert_name == "internal_error"
    # The connection is over: later calls raise the same error, nothing is sent back.
    with pytest.raises(PeerAlertError):
        client.next_event()
    assert client.data_to_send() == b""
