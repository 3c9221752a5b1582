"""Property tests: mutated real handshake flights never escape the engine and end cleanly.

Each example takes a recorded flight (client hello, server flight, client final
flight), applies a few mutations, feeds it to a fresh engine of the receiving
role, and checks the outcome: no exception, exactly one event, and on failure the
alert record queued for the peer. Settings are deterministic so CI is stable.
"""

from __future__ import annotations

from collections.abc import Callable

from engine_kit import Trace, split_records
from handshaker.tls import (
    AlertDescription,
    ConnectionState,
    ContentType,
    HandshakeComplete,
    HandshakeFailed,
)
from handshaker.tls.connection import Connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ_SETTINGS = settings(
    derandomize=True,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Mutation = Callable[[bytes], bytes]

# A 2-byte alert under AEAD: 5-byte header, 2 + 1 inner bytes, 16-byte tag.
PROTECTED_ALERT_LEN = 5 + 3 + 16


def _flip(index: int, mask: int) -> Mutation:
    return lambda data: (
        data[: index % len(data)]
        + bytes((data[index % len(data)] ^ mask,))
        + data[index % len(data) + 1 :]
        if data
        else data
    )


def _truncate(keep: int) -> Mutation:
    return lambda data: data[: keep % (len(data) + 1)]


def _insert(index: int, chunk: bytes) -> Mutation:
    return lambda data: data[: index % (len(data) + 1)] + chunk + data[index % (len(data) + 1) :]


def _on_records(edit: Callable[[list[bytes]], list[bytes]]) -> Mutation:
    return lambda data: b"".join(edit(split_records(data)))


def _duplicate_record(index: int) -> Mutation:
    def edit(records: list[bytes]) -> list[bytes]:
        if not records:
            return records
        i = index % len(records)
        return [*records[: i + 1], records[i], *records[i + 1 :]]

    return _on_records(edit)


def _drop_record(index: int) -> Mutation:
    def edit(records: list[bytes]) -> list[bytes]:
        if not records:
            return records
        i = index % len(records)
        return records[:i] + records[i + 1 :]

    return _on_records(edit)


def _swap_records(first: int, second: int) -> Mutation:
    def edit(records: list[bytes]) -> list[bytes]:
        if len(records) < 2:
            return records
        i, j = first % len(records), second % len(records)
        records = list(records)
        records[i], records[j] = records[j], records[i]
        return records

    return _on_records(edit)


def _set_byte(index: int, value: int) -> Mutation:
    return lambda data: (
        data[: index % len(data)] + bytes((value,)) + data[index % len(data) + 1 :]
        if data
        else data
    )


def _splice(other: bytes, start: int, length: int, at: int) -> Mutation:
    piece = other[start % max(len(other), 1) :][:length]
    return _insert(at, piece)


def mutations(donor: bytes) -> st.SearchStrategy[Mutation]:
    """One mutation; `donor` is another flight to splice pieces from."""
    index = st.integers(min_value=0, max_value=5000)
    return st.one_of(
        st.builds(_flip, index, st.integers(min_value=1, max_value=255)),
        st.builds(
            _set_byte,
            st.integers(min_value=0, max_value=300),
            st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]),
        ),
        st.builds(_truncate, index),
        st.builds(_insert, index, st.binary(min_size=1, max_size=12)),
        st.builds(_duplicate_record, st.integers(min_value=0, max_value=8)),
        st.builds(_drop_record, st.integers(min_value=0, max_value=8)),
        st.builds(_swap_records, st.integers(0, 8), st.integers(0, 8)),
        st.builds(_splice, st.just(donor), index, st.integers(min_value=1, max_value=200), index),
    )


def mutated(flight: bytes, donor: bytes) -> st.SearchStrategy[tuple[bytes, int]]:
    """The flight after one to three mutations, and where to split its delivery."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[bytes, int]:
        data = flight
        for mutation in draw(st.lists(mutations(donor), min_size=1, max_size=3)):
            data = mutation(data)
        return data, draw(st.integers(min_value=0, max_value=len(data)))

    return build()


def feed_and_check(conn: Connection, data: bytes, split: int) -> None:
    """Feed `data` in two pieces; the engine must end cleanly, never with internal_error."""
    conn.receive_data(data[:split])
    if conn.state is ConnectionState.HANDSHAKING:
        conn.receive_data(data[split:])
    events = list(conn.events())
    if conn.state is ConnectionState.HANDSHAKING:
        # Waiting for bytes that will never come: the caller gives up.
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
    # Malformed input is the peer's fault: never reported as our internal error.
    assert failure.alert != AlertDescription.INTERNAL_ERROR, failure.reason
    last = split_records(conn.data_to_send())[-1]
    if last[0] == ContentType.ALERT:
        assert len(last) == 7
        assert last[5:] in (bytes((2, failure.alert)), bytes((1, failure.alert)))
    else:
        assert last[0] == ContentType.APPLICATION_DATA
        assert len(last) == PROTECTED_ALERT_LEN


@FUZZ_SETTINGS
@given(case=st.data())
def test_mutated_client_hello_never_escapes_the_server(trace: Trace, case: st.DataObject) -> None:
    data, split = case.draw(mutated(trace.client_hello_flight, trace.server_flight))
    feed_and_check(trace.new_server(), data, split)


@FUZZ_SETTINGS
@given(case=st.data())
def test_mutated_server_flight_never_escapes_the_client(trace: Trace, case: st.DataObject) -> None:
    data, split = case.draw(mutated(trace.server_flight, trace.client_hello_flight))
    feed_and_check(trace.new_client(), data, split)


@FUZZ_SETTINGS
@given(case=st.data())
def test_mutated_client_final_flight_never_escapes_the_server(
    trace: Trace, case: st.DataObject
) -> None:
    data, split = case.draw(mutated(trace.client_final_flight, trace.client_hello_flight))
    feed_and_check(trace.server_after_hello(), data, split)


@FUZZ_SETTINGS
@given(case=st.data())
def test_mutated_client_certificate_flight_never_escapes_the_server(
    trace_client_auth: Trace, case: st.DataObject
) -> None:
    trace = trace_client_auth
    data, split = case.draw(mutated(trace.client_final_flight, trace.server_flight))
    feed_and_check(trace.server_after_hello(), data, split)


def test_unmutated_flights_complete(trace: Trace) -> None:
    """The fuzzers start from flights that really complete a handshake."""
    client = trace.new_client()
    client.receive_data(trace.server_flight)
    server = trace.server_after_hello()
    server.receive_data(trace.client_final_flight)
    assert [type(e) for e in client.events()] == [HandshakeComplete]
    assert [type(e) for e in server.events()] == [HandshakeComplete]
