"""Fairness between principals (issue 9, item 5): one caller at its quota does not stop another.

Alice (one mutual-TLS principal) holds every session she may have, on the unary API
and on streams; bob's handshakes still complete, in both roles. Bounded: two callers,
a cap of 4, 127.0.0.1 only.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from handshaker_wire.v1 import handshaker_pb2 as pb
from service_kit import (
    COMPLETE,
    ChannelPki,
    MultiplexStream,
    StartService,
    StreamHandshake,
    UnaryHandshake,
    client_options,
    development_keystore,
    handshaker_stub,
    relay,
)


def test_a_caller_at_its_quota_does_not_stop_another_principal(
    start_service: StartService, channel_pki: ChannelPki, tmp_path: Path
) -> None:
    keystore = development_keystore(tmp_path / "ks", "dns:alice.test", "dns:bob.test")
    service = start_service(
        *channel_pki.serve_args(), "--max-sessions-per-caller", "4", keystore=keystore
    )
    with (
        service.channel(channel_pki.credentials("alice.test")) as alice_channel,
        service.channel(channel_pki.credentials("bob.test")) as bob_channel,
    ):
        alice, bob = handshaker_stub(alice_channel), handshaker_stub(bob_channel)
        held = [
            alice.StartClient(pb.StartClientRequest(options=client_options())) for _ in range(4)
        ]
        assert all(h.step.session_id for h in held)
        with pytest.raises(grpc.RpcError) as raised:
            alice.StartClient(pb.StartClientRequest(options=client_options()))
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Alice also holds Multiplex streams up to the same cap.
        streams = [MultiplexStream(alice) for _ in range(4)]
        try:
            for stream in streams:
                stream.exchange(pb.ConnectionFrame(connection_id=1, abort=True))
            # Bob's completed unary pair keeps its 2 sessions (for GetKeys); the stream
            # pair holds 2 more while it runs: 4, his own cap, not alice's.
            c, s = relay(
                UnaryHandshake(bob, client_options()), UnaryHandshake(bob, pb.ServerOptions())
            )
            assert (c.state, s.state) == (COMPLETE, COMPLETE)
            with (
                StreamHandshake(bob, client_options()) as client,
                StreamHandshake(bob, pb.ServerOptions()) as server,
            ):
                c, s = relay(client, server)
                assert (c.state, s.state) == (COMPLETE, COMPLETE)
        finally:
            for stream in streams:
                stream.close()
