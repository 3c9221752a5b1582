"""Private-key operations awaited by the service: a slow keystore never blocks the event loop.

The service runs in this process (grpc.aio) over a MemoryKeyStore whose
credential's key is an AsyncKey. The slow and failing backends below are test
doubles for timing and faults only: they sign with a real key in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator

import grpc
from handshaker.api.options import ConfigFactory
from handshaker.api.servicer import HandshakerServicer
from handshaker.keystore import (
    EMPTY_POLICY,
    LOCAL,
    AsyncKey,
    KeyOperationError,
    MemoryKeyStore,
    Role,
)
from handshaker.sessions import MemorySessionStore
from handshaker.tls import (
    AlertDescription,
    ClientConfig,
    ClientConnection,
    ConnectionState,
    Credential,
    HandshakeComplete,
    PrivateKeySigner,
)
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from pki import Leaf, TestPKI

HANDSHAKES = 50
SIGN_SECONDS = 0.1


class SlowKey(AsyncKey):
    """Signs after SIGN_SECONDS, counting how many signatures are in flight at once."""

    def __init__(self, leaf: Leaf) -> None:
        self._signer = PrivateKeySigner(leaf.key)
        super().__init__("slow", self._signer.signature_schemes, backend="slow-hsm:test")
        self.in_flight = 0
        self.peak = 0
        self.calls = 0

    async def sign(self, scheme: int, message: bytes) -> bytes:
        self.calls += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(SIGN_SECONDS)
        finally:
            self.in_flight -= 1
        return self._signer.sign(scheme, message)


class DownKey(AsyncKey):
    """A backend that is down."""

    def __init__(self, leaf: Leaf) -> None:
        super().__init__("down", PrivateKeySigner(leaf.key).signature_schemes, backend="hsm:rack7")

    async def sign(self, scheme: int, message: bytes) -> bytes:
        raise KeyOperationError(self.backend, "the token is not present")


Service = tuple[pb_grpc.HandshakerStub, dict[str, AsyncKey]]


@contextlib.asynccontextmanager
async def _service(pki: TestPKI) -> AsyncIterator[Service]:
    leaf = pki.servers["ecdsa-p256"]
    keys: dict[str, AsyncKey] = {"slow": SlowKey(leaf), "down": DownKey(leaf)}
    store = MemoryKeyStore(
        {name: Credential(leaf.chain, key) for name, key in keys.items()},
        {"default": (pki.root.certificate,)},
        policy=functools.reduce(
            lambda policy, name: policy.grant_credential(name, LOCAL, (Role.SERVER,)),
            keys,
            EMPTY_POLICY,
        ),
    )
    servicer = HandshakerServicer(MemorySessionStore(), ConfigFactory(store))
    server = grpc.aio.server()
    pb_grpc.add_HandshakerServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.HandshakerStub(channel), keys  # type: ignore[no-untyped-call]
    finally:
        await channel.close()
        await server.stop(None)


def _client(pki: TestPKI) -> ClientConnection:
    return ClientConnection(
        ClientConfig(server_name="localhost", trust_anchors=(pki.root.certificate,))
    )


async def _unary_server_handshake(stub: pb_grpc.HandshakerStub, pki: TestPKI) -> None:
    """An in-process engine client against a server-role session of the service."""
    client = _client(pki)
    flight = (
        await stub.StartServer(
            pb.StartServerRequest(
                options=pb.ServerOptions(credential="slow"), in_bytes=client.data_to_send()
            )
        )
    ).step
    assert flight.state == pb.HANDSHAKE_STATE_NEED_INPUT, flight.failure
    client.receive_data(flight.out_bytes)
    assert client.state is ConnectionState.COMPLETE
    done = (
        await stub.Feed(
            pb.FeedRequest(session_id=flight.session_id, in_bytes=client.data_to_send())
        )
    ).step
    assert done.state == pb.HANDSHAKE_STATE_COMPLETE, done.failure


def test_fifty_unary_handshakes_wait_for_a_slow_key_together(pki: TestPKI) -> None:
    asyncio.run(_fifty_unary(pki))


async def _fifty_unary(pki: TestPKI) -> None:
    async with _service(pki) as (stub, keys):
        slow = keys["slow"]
        assert isinstance(slow, SlowKey)
        started = time.monotonic()
        await asyncio.gather(*(_unary_server_handshake(stub, pki) for _ in range(HANDSHAKES)))
        elapsed = time.monotonic() - started
        assert slow.calls == HANDSHAKES
        # The signatures were out together (on a loaded machine a few handshakes may
        # finish before the last ones start): none waited for another.
        assert slow.peak >= HANDSHAKES // 2
        # One after another they would take HANDSHAKES * SIGN_SECONDS = 5 s.
        assert elapsed < 2.0, f"{HANDSHAKES} handshakes took {elapsed:.2f} s"


def test_one_multiplex_message_of_fifty_connections_waits_for_their_keys_together(
    pki: TestPKI,
) -> None:
    asyncio.run(_fifty_multiplexed(pki))


async def _fifty_multiplexed(pki: TestPKI) -> None:
    async with _service(pki) as (stub, keys):
        slow = keys["slow"]
        assert isinstance(slow, SlowKey)
        clients = {n: _client(pki) for n in range(1, HANDSHAKES + 1)}
        stream = stub.Multiplex()
        try:
            frames = [
                pb.ConnectionFrame(
                    connection_id=n,
                    request=pb.HandshakeRequest(
                        server=pb.ServerOptions(credential="slow"), in_bytes=c.data_to_send()
                    ),
                )
                for n, c in clients.items()
            ]
            await stream.write(pb.MultiplexRequest(frames=frames))
            response = await stream.read()
            assert isinstance(response, pb.MultiplexResponse)
            assert {r.connection_id for r in response.results} == set(clients)
            finals = []
            for result in response.results:
                assert result.response.step.state == pb.HANDSHAKE_STATE_NEED_INPUT, result
                client = clients[result.connection_id]
                client.receive_data(result.response.step.out_bytes)
                assert isinstance(client.next_event(), HandshakeComplete)
                finals.append(
                    pb.ConnectionFrame(
                        connection_id=result.connection_id,
                        request=pb.HandshakeRequest(in_bytes=client.data_to_send()),
                    )
                )
            await stream.write(pb.MultiplexRequest(frames=finals))
            response = await stream.read()
            assert isinstance(response, pb.MultiplexResponse)
            assert all(
                r.response.step.state == pb.HANDSHAKE_STATE_COMPLETE for r in response.results
            )
            assert len(response.results) == HANDSHAKES
        finally:
            stream.cancel()
        assert slow.peak == HANDSHAKES


def test_a_key_backend_that_is_down_fails_the_handshake_naming_the_keystore(
    pki: TestPKI,
) -> None:
    asyncio.run(_down(pki))


async def _down(pki: TestPKI) -> None:
    async with _service(pki) as (stub, _):
        client = _client(pki)
        step = (
            await stub.StartServer(
                pb.StartServerRequest(
                    options=pb.ServerOptions(credential="down"), in_bytes=client.data_to_send()
                )
            )
        ).step
        assert step.state == pb.HANDSHAKE_STATE_FAILED
        assert step.failure.alert == AlertDescription.INTERNAL_ERROR
        assert step.failure.reason == "keystore hsm:rack7: the token is not present"
        # The alert record to send is there, after the ServerHello the client already has.
        client.receive_data(step.out_bytes)
        assert client.state is ConnectionState.FAILED
