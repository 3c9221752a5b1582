"""Many handshakes in flight at once through one service all complete, with matching keys."""

from __future__ import annotations

import asyncio

import grpc
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from service_kit import COMPLETE, NEED_INPUT, ServiceProcess, client_options, handshaker_stub

HANDSHAKES = 200


async def _stream_pair(stub: pb_grpc.HandshakerStub) -> tuple[pb.SessionKeys, pb.SessionKeys]:
    """A service client and a service server, each on its own Handshake stream."""
    client = stub.Handshake()
    server = stub.Handshake()
    try:
        await client.write(pb.HandshakeRequest(client=client_options()))
        hello = (await client.read()).step
        await server.write(pb.HandshakeRequest(server=pb.ServerOptions(), in_bytes=hello.out_bytes))
        flight = (await server.read()).step
        assert flight.state == NEED_INPUT, flight.failure
        await client.write(pb.HandshakeRequest(in_bytes=flight.out_bytes))
        finished = await client.read()
        assert finished.step.state == COMPLETE, finished.step.failure
        await server.write(pb.HandshakeRequest(in_bytes=finished.step.out_bytes))
        done = await server.read()
        assert done.step.state == COMPLETE, done.step.failure
        return finished.keys, done.keys
    finally:
        client.cancel()
        server.cancel()


async def _unary_pair(stub: pb_grpc.HandshakerStub) -> tuple[pb.SessionKeys, pb.SessionKeys]:
    """A service client and a service server through StartClient/StartServer and Feed."""
    hello = (
        await stub.StartClient(
            pb.StartClientRequest(options=client_options(), keys_in_response=True)
        )
    ).step
    flight = (
        await stub.StartServer(
            pb.StartServerRequest(
                options=pb.ServerOptions(), in_bytes=hello.out_bytes, keys_in_response=True
            )
        )
    ).step
    assert flight.state == NEED_INPUT, flight.failure
    finished = await stub.Feed(
        pb.FeedRequest(session_id=hello.session_id, in_bytes=flight.out_bytes)
    )
    assert finished.step.state == COMPLETE, finished.step.failure
    done = await stub.Feed(
        pb.FeedRequest(session_id=flight.session_id, in_bytes=finished.step.out_bytes)
    )
    assert done.step.state == COMPLETE, done.step.failure
    for session_id in (hello.session_id, flight.session_id):
        await stub.Abort(pb.AbortRequest(session_id=session_id))
    return finished.keys, done.keys


async def _run(address: str) -> list[tuple[pb.SessionKeys, pb.SessionKeys]]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = handshaker_stub(channel)
        pairs = [
            _stream_pair(stub) if index % 2 == 0 else _unary_pair(stub)
            for index in range(HANDSHAKES)
        ]
        return await asyncio.wait_for(asyncio.gather(*pairs), timeout=120)


def test_two_hundred_concurrent_handshakes_all_complete(service: ServiceProcess) -> None:
    results = asyncio.run(_run(service.address))
    assert len(results) == HANDSHAKES
    for client_keys, server_keys in results:
        assert client_keys.write == server_keys.read
        assert client_keys.read == server_keys.write
    # Every handshake derived its own keys.
    assert len({client.write.key for client, _ in results}) == HANDSHAKES
