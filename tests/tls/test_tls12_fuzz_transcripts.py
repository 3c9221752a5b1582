"""Property tests for TLS 1.2: mutated real flights never escape the engine and end cleanly.

The flights of a reproducible TLS 1.2 handshake (Ed25519, X25519, seeded RNGs) are
mutated as in test_fuzz_transcripts.py and fed to a fresh engine of the receiving
role: no exception, exactly one event, never internal_error for the peer's bytes,
and on failure the alert record queued (in the clear, or protected after our CCS).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from engine_kit import EnginePKI, handshake, seeded_random, split_records
from handshaker.tls import (
    AlertDescription,
    ClientAuth,
    ClientConfig,
    ClientConnection,
    ConnectionState,
    ContentType,
    HandshakeComplete,
    HandshakeFailed,
    NamedGroup,
    ServerConfig,
    ServerConnection,
)
from handshaker.tls.connection import Connection
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_transcripts import FUZZ_SETTINGS, mutated
from tls12_kit import tls12_client, tls12_server

# A protected TLS 1.2 alert: header, 8-byte explicit nonce (GCM), 2 bytes, 16-byte tag.
PROTECTED_ALERT_LENS = (5 + 8 + 2 + 16, 5 + 2 + 16)


@dataclass
class Trace12:
    client_config: ClientConfig
    server_config: ServerConfig
    seed: str
    client_hello: bytes
    server_first: bytes
    client_final: bytes
    server_final: bytes

    def new_client(self) -> ClientConnection:
        client = ClientConnection(self.client_config, random=seeded_random(self.seed + "/client"))
        assert client.data_to_send() == self.client_hello
        return client

    def new_server(self) -> ServerConnection:
        return ServerConnection(self.server_config, random=seeded_random(self.seed + "/server"))

    def server_after_hello(self) -> ServerConnection:
        server = self.new_server()
        server.receive_data(self.client_hello)
        assert server.data_to_send() == self.server_first
        return server

    def client_after_its_flight(self) -> ClientConnection:
        client = self.new_client()
        client.receive_data(self.server_first)
        assert client.data_to_send() == self.client_final
        return client


def _trace(pki: EnginePKI, seed: str, *, client_auth: bool) -> Trace12:
    client_overrides: dict[str, object] = {"key_share_groups": (NamedGroup.X25519,)}
    server_overrides: dict[str, object] = {}
    if client_auth:
        client_overrides["credential"] = pki.clients["ed25519"].credential()
        server_overrides.update(client_auth=ClientAuth.REQUIRED, client_trust_anchors=(pki.root,))
    client_cfg = tls12_client(pki, **client_overrides)
    server_cfg = tls12_server(pki, "ed25519", **server_overrides)
    outcome = handshake(client_cfg, server_cfg, seed=seed)
    (client_hello, client_final) = outcome.sent_by("client")
    (server_first, server_final) = outcome.sent_by("server")
    assert [type(e) for e in outcome.client_events] == [HandshakeComplete]
    return Trace12(
        client_cfg, server_cfg, seed, client_hello, server_first, client_final, server_final
    )


@pytest.fixture(scope="module")
def trace12(engine_pki: EnginePKI) -> Trace12:
    return _trace(engine_pki, "fuzz12", client_auth=False)


@pytest.fixture(scope="module")
def trace12_client_auth(engine_pki: EnginePKI) -> Trace12:
    return _trace(engine_pki, "fuzz12-auth", client_auth=True)


def feed_and_check(conn: Connection, data: bytes, split: int) -> None:
    conn.receive_data(data[:split])
    if conn.state is ConnectionState.HANDSHAKING:
        conn.receive_data(data[split:])
    events = list(conn.events())
    if conn.state is ConnectionState.HANDSHAKING:
        assert events == []
        conn.data_to_send()
        conn.abort()
        events = list(conn.events())
        assert [type(e) for e in events] == [HandshakeFailed]
    if conn.state is ConnectionState.COMPLETE:
        assert len(events) == 1 and isinstance(events[0], HandshakeComplete), events
        return
    assert conn.state is ConnectionState.FAILED
    assert len(events) == 1, events
    failure = events[0]
    assert isinstance(failure, HandshakeFailed)
    if failure.sent_by_peer:
        return
    assert failure.alert in set(AlertDescription)
    assert failure.alert != AlertDescription.INTERNAL_ERROR, failure.reason
    last = split_records(conn.data_to_send())[-1]
    assert last[0] == ContentType.ALERT
    if len(last) != 7:
        assert len(last) in PROTECTED_ALERT_LENS
    else:
        assert last[5:] in (bytes((2, failure.alert)), bytes((1, failure.alert)))


@FUZZ_SETTINGS
@given(case=st.data())
def test_mutated_tls12_client_hello_never_escapes_the_server(
    trace12: Trace12, case: st.DataObject
) -> None:
    data, split = case.draw(mutated(trace12.client_hello, trace12.server_first))
    feed_and_check(trace12.new_server(), data, split)


@FUZZ_SETTINGS
@given(case=st.data())
def test_mutated_tls12_server_flight_never_escapes_the_client(
    trace12: Trace12, case: st.DataObject
) -> None:
    data, split = case.draw(mutated(trace12.server_first, trace12.client_hello))
    feed_and_check(trace12.new_client(), data, split)


@FUZZ_SETTINGS
@given(case=st.data())
def test_mutated_tls12_client_final_flight_never_escapes_the_server(
    trace12_client_auth: Trace12, case: st.DataObject
) -> None:
    trace = trace12_client_auth
    data, split = case.draw(mutated(trace.client_final, trace.server_first))
    feed_and_check(trace.server_after_hello(), data, split)


@FUZZ_SETTINGS
@given(case=st.data())
def test_mutated_tls12_server_finished_flight_never_escapes_the_client(
    trace12: Trace12, case: st.DataObject
) -> None:
    data, split = case.draw(mutated(trace12.server_final, trace12.client_final))
    feed_and_check(trace12.client_after_its_flight(), data, split)


def test_unmutated_tls12_flights_complete(trace12: Trace12) -> None:
    client = trace12.client_after_its_flight()
    client.receive_data(trace12.server_final)
    server = trace12.server_after_hello()
    server.receive_data(trace12.client_final)
    assert [type(e) for e in client.events()] == [HandshakeComplete]
    assert [type(e) for e in server.events()] == [HandshakeComplete]
