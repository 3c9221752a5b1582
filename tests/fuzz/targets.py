"""Fuzz targets (atheris): each role's receive_data at every step, and options -> config.

    python tests/fuzz/targets.py TARGET [libFuzzer flags] [CORPUS_DIR ...]
    tests/fuzz/run.sh TARGET SECONDS          # on a copy of the committed corpus

TARGET is `server`, `client` or `options`. The first input byte picks the scenario (with
or without client authentication) and the step: the recorded flights before that step are
replayed (tests/fuzz/scenarios.py makes them the same bytes everywhere) and the rest of the
input is what the peer sends next. A finding is any exception out of the engine, a failure
whose reason is an internal error (a bug caught by the engine's last-resort handler), a
failed handshake that queued no alert, or a snapshot that does not restore.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).parent))

with atheris.instrument_imports():
    import scenarios
    from google.protobuf.message import DecodeError
    from handshaker.api.options import ConfigFactory, InvalidOptions
    from handshaker.keystore import KeyNotFound, KeystoreError, MemoryKeyStore
    from handshaker.keystore.policy import EMPTY_POLICY, Role
    from handshaker.keystore.principals import LOCAL
    from handshaker.tls import (
        ClientConnection,
        ConnectionState,
        HandshakeFailed,
        ServerConnection,
    )
    from handshaker_wire.v1 import handshaker_pb2 as pb


def _last_record_type(out: bytes) -> int | None:
    pos, last = 0, None
    while pos + 5 <= len(out):
        last = out[pos]
        pos += 5 + int.from_bytes(out[pos + 3 : pos + 5], "big")
    return last if pos == len(out) else None


def _check(conn: ClientConnection | ServerConnection) -> None:
    by_peer = False
    for event in conn.events():
        if isinstance(event, HandshakeFailed):
            if event.reason.startswith("internal error"):
                raise AssertionError(f"engine bug: {event.reason}")
            by_peer = event.sent_by_peer
    # A handshake the peer ended with its alert owes it none.
    if conn.state is ConnectionState.FAILED and not by_peer:
        if _last_record_type(conn.data_to_send()) not in (21, 23):
            # The alert is the last record queued: in the clear (21) or protected (23).
            raise AssertionError("a failed handshake queued no alert")
    elif conn.state is ConnectionState.HANDSHAKING and conn.pending_operation is None:
        snapshot = conn.snapshot()
        if isinstance(conn, ClientConnection):
            ClientConnection.restore(snapshot, conn.config)
        else:
            ServerConnection.restore(snapshot, conn.config)


def server_target(data: bytes) -> None:
    if not data:
        return
    mutual, step = bool(data[0] & 1), (data[0] >> 1) % 2
    conn = scenarios.server(mutual)
    if step == 1:
        hello, _, _ = scenarios.server_flights(mutual)
        conn.receive_data(hello)
        conn.data_to_send()
    conn.receive_data(data[1:])
    _check(conn)


def client_target(data: bytes) -> None:
    if not data:
        return
    conn = scenarios.client(bool(data[0] & 1))
    conn.data_to_send()
    conn.receive_data(data[1:])
    _check(conn)


_FACTORY: ConfigFactory | None = None


def _factory() -> ConfigFactory:
    global _FACTORY
    if _FACTORY is None:
        w = scenarios.world()
        assert w.server_for_client.credential is not None
        policy = EMPTY_POLICY.grant_credential("localhost", LOCAL, (Role.SERVER, Role.CLIENT))
        store = MemoryKeyStore(
            {"localhost": w.server_for_client.credential},
            {"default": w.client.trust_anchors},
            default="localhost",
            policy=policy,
        )
        _FACTORY = ConfigFactory(store, clock=lambda: 0.0)
    return _FACTORY


def options_target(data: bytes) -> None:
    if not data:
        return
    factory = _factory()
    try:
        if data[0] & 1:
            factory.server(pb.ServerOptions.FromString(data[1:]), LOCAL)
        else:
            factory.client(pb.ClientOptions.FromString(data[1:]), LOCAL)
    except (DecodeError, InvalidOptions, KeyNotFound, KeystoreError):
        # The answers the service maps to INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED.
        return


TARGETS = {"server": server_target, "client": client_target, "options": options_target}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer flags] [CORPUS ...]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
