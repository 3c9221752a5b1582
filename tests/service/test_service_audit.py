"""The audit trail: exactly one JSON line per private-key use, with its fields, never a secret.

In-process servicers (caplog reads the "handshaker.audit" records) cover each kind of
key use: an inline signer in the server role, a client certificate under client auth,
a deferred key that signs, and one whose backend is down. One `handshaker serve`
process checks the stream choice (--audit-log FILE, stderr by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from handshaker.api import ConfigFactory, HandshakerServicer
from handshaker.api.audit import MAX_PEER_LENGTH, PEER_METADATA
from handshaker.keystore import EMPTY_POLICY, LOCAL, AsyncKey, KeyOperationError, MemoryKeyStore
from handshaker.keystore import Role as KeyRole
from handshaker.sessions import MemorySessionStore
from handshaker.tls import (
    ClientAuth,
    ClientConfig,
    ClientConnection,
    ConnectionState,
    Credential,
    PrivateKeySigner,
    ServerConfig,
    ServerConnection,
)
from handshaker_client.aio import AsyncHandshakerClient
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from pki import Leaf, TestPKI, pem
from service_kit import (
    COMPLETE,
    StartService,
    UnaryHandshake,
    client_options,
    parse_json_line,
    relay,
    session_secrets,
)

PEER = "203.0.113.7:50123"


class OkKey(AsyncKey):
    def __init__(self, leaf: Leaf) -> None:
        self._signer = PrivateKeySigner(leaf.key)
        super().__init__("hsm-ok", self._signer.signature_schemes, backend="hsm:test")

    async def sign(self, scheme: int, message: bytes) -> bytes:
        await asyncio.sleep(0)
        return self._signer.sign(scheme, message)


class DownKey(AsyncKey):
    def __init__(self, leaf: Leaf) -> None:
        signer = PrivateKeySigner(leaf.key)
        super().__init__("hsm-down", signer.signature_schemes, backend="hsm:rack7")

    async def sign(self, scheme: int, message: bytes) -> bytes:
        raise KeyOperationError(self.backend, "the token is not present")


@contextlib.asynccontextmanager
async def _service(
    pki: TestPKI, addresses: list[str] | None = None
) -> AsyncIterator[pb_grpc.HandshakerStub]:
    """An in-process service; its address is appended to `addresses` when given."""
    leaf = pki.servers["ecdsa-p256"]
    client_leaf = pki.clients["ecdsa-p256"]
    credentials = {
        "inline": Credential(leaf.chain, PrivateKeySigner(leaf.key)),
        "client-cert": Credential(client_leaf.chain, PrivateKeySigner(client_leaf.key)),
        "hsm-ok": Credential(leaf.chain, OkKey(leaf)),
        "hsm-down": Credential(leaf.chain, DownKey(leaf)),
    }
    policy = EMPTY_POLICY
    for name in credentials:
        policy = policy.grant_credential(name, LOCAL, (KeyRole.SERVER, KeyRole.CLIENT))
    store = MemoryKeyStore(credentials, {"default": (pki.root.certificate,)}, policy=policy)
    servicer = HandshakerServicer(MemorySessionStore(), ConfigFactory(store))
    server = grpc.aio.server()
    pb_grpc.add_HandshakerServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    if addresses is not None:
        addresses.append(f"127.0.0.1:{port}")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.HandshakerStub(channel)  # type: ignore[no-untyped-call]
    finally:
        await channel.close()
        await server.stop(None)


def _audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [dict(getattr(r, "fields", {})) for r in caplog.records if r.name == "handshaker.audit"]


async def _server_role(
    stub: pb_grpc.HandshakerStub, pki: TestPKI, credential: str
) -> tuple[pb.HandshakeStep, bytes]:
    client = ClientConnection(
        ClientConfig(server_name="localhost", trust_anchors=(pki.root.certificate,))
    )
    metadata = ((PEER_METADATA, PEER),)
    first = await stub.StartServer(
        pb.StartServerRequest(
            options=pb.ServerOptions(credential=credential),
            in_bytes=client.data_to_send(),
            keys_in_response=True,
        ),
        metadata=metadata,
    )
    if first.step.state != pb.HANDSHAKE_STATE_NEED_INPUT:
        return first.step, b""
    client.receive_data(first.step.out_bytes)
    assert client.state is ConnectionState.COMPLETE
    done = await stub.Feed(
        pb.FeedRequest(session_id=first.step.session_id, in_bytes=client.data_to_send()),
        metadata=metadata,
    )
    keys = await stub.GetKeys(pb.GetKeysRequest(session_id=first.step.session_id))
    return done.step, b"".join(session_secrets(keys.keys))


def _assert_no_secrets(lines: list[dict[str, object]], *secrets: bytes) -> None:
    text = json.dumps(lines)
    for secret in secrets:
        for chunk in (secret.hex(), secret[:16].hex()):
            assert chunk not in text


def _key_pem(leaf: Leaf) -> bytes:
    return leaf.key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_an_inline_server_signature_is_one_line_with_every_field(
    pki: TestPKI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="handshaker.audit")

    async def run() -> tuple[pb.HandshakeStep, bytes]:
        async with _service(pki) as stub:
            return await _server_role(stub, pki, "inline")

    step, secrets = asyncio.run(run())
    assert step.state == pb.HANDSHAKE_STATE_COMPLETE
    lines = _audit_lines(caplog)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["principal"] == "local"
    assert line["credential"] == "inline"
    assert line["role"] == "server"
    assert line["operation"] == "sign"
    assert line["scheme"] == f"0x{step.result.signature_scheme:04x}"
    assert line["sni"] == "localhost"
    assert line["peer"] == PEER
    assert line["result"] == "ok"
    assert line["alert"] is None
    assert isinstance(line["session"], str) and len(line["session"]) == 8
    _assert_no_secrets(lines, secrets, _key_pem(pki.servers["ecdsa-p256"]))


def test_a_deferred_signature_is_one_line_and_a_failed_one_names_the_alert(
    pki: TestPKI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="handshaker.audit")

    async def run() -> tuple[pb.HandshakeStep, pb.HandshakeStep]:
        async with _service(pki) as stub:
            ok, _ = await _server_role(stub, pki, "hsm-ok")
            down, _ = await _server_role(stub, pki, "hsm-down")
            return ok, down

    ok, down = asyncio.run(run())
    assert ok.state == pb.HANDSHAKE_STATE_COMPLETE
    assert down.state == pb.HANDSHAKE_STATE_FAILED
    lines = _audit_lines(caplog)
    assert [(x["credential"], x["result"], x["alert"]) for x in lines] == [
        ("hsm-ok", "ok", None),
        ("hsm-down", "failed", down.failure.alert),
    ]
    assert lines[1]["reason"] == "keystore hsm:rack7: the token is not present"
    assert all(x["peer"] == PEER and x["role"] == "server" for x in lines)


def test_a_client_certificate_signature_is_one_line_in_the_client_role(
    pki: TestPKI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="handshaker.audit")
    leaf = pki.servers["ecdsa-p256"]
    server = ServerConnection(
        ServerConfig(
            credential=Credential(leaf.chain, PrivateKeySigner(leaf.key)),
            client_auth=ClientAuth.REQUIRED,
            client_trust_anchors=(pki.root.certificate,),
        )
    )

    async def run() -> pb.HandshakeStep:
        async with _service(pki) as stub:
            options = pb.ClientOptions(
                server_name="localhost",
                credential="client-cert",
                trust_anchors_pem=pem(pki.root.certificate).decode(),
            )
            start = await stub.StartClient(pb.StartClientRequest(options=options))
            server.receive_data(start.step.out_bytes)
            step = await stub.Feed(
                pb.FeedRequest(session_id=start.step.session_id, in_bytes=server.data_to_send())
            )
            server.receive_data(step.step.out_bytes)
            assert server.state is ConnectionState.COMPLETE
            return step.step

    step = asyncio.run(run())
    assert step.state == pb.HANDSHAKE_STATE_COMPLETE
    lines = _audit_lines(caplog)
    assert len(lines) == 1, lines
    assert lines[0]["credential"] == "client-cert"
    assert lines[0]["role"] == "client"
    assert lines[0]["sni"] == "localhost"
    assert lines[0]["peer"] is None  # the caller reported none
    assert lines[0]["result"] == "ok"


def test_a_handshake_without_a_key_use_writes_no_line(
    pki: TestPKI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="handshaker.audit")

    async def run() -> None:
        async with _service(pki) as stub:
            options = pb.ClientOptions(server_name="localhost", insecure_skip_verify=True)
            await stub.StartClient(pb.StartClientRequest(options=options))

    asyncio.run(run())
    assert _audit_lines(caplog) == []


def test_serve_writes_the_trail_to_its_own_file_or_to_stderr(
    start_service: StartService, tmp_path: Path
) -> None:
    trail = tmp_path / "audit.jsonl"
    for args in (("--audit-log", str(trail)), ()):
        service = start_service(*args)
        with service.channel() as channel:
            stub = pb_grpc.HandshakerStub(channel)  # type: ignore[no-untyped-call]
            c, s = relay(
                UnaryHandshake(stub, client_options()), UnaryHandshake(stub, pb.ServerOptions())
            )
            assert (c.state, s.state) == (COMPLETE, COMPLETE)
        service.stop()
        on_stderr = [e for e in service.log_entries() if e.get("logger") == "handshaker.audit"]
        if args:
            assert on_stderr == []
            lines = [parse_json_line(x) for x in trail.read_text().splitlines()]
            assert trail.stat().st_mode & 0o077 == 0
        else:
            lines = list(on_stderr)
        assert len(lines) == 1, lines
        entry = lines[0]
        assert entry is not None
        assert entry["message"] == "private key used"
        assert (entry["credential"], entry["role"], entry["principal"]) == (
            "localhost",
            "server",
            "local",
        )


def _multiplex_start(connection_id: int, hello: bytes, peer: str = "") -> pb.ConnectionFrame:
    return pb.ConnectionFrame(
        connection_id=connection_id,
        request=pb.HandshakeRequest(
            server=pb.ServerOptions(credential="inline"), in_bytes=hello, peer_address=peer
        ),
    )


def test_each_multiplex_connection_is_audited_with_its_own_peer_address(
    pki: TestPKI, caplog: pytest.LogCaptureFixture
) -> None:
    """One Multiplex stream, three TLS connections: two report their own peer_address,
    the third none (it gets the stream's metadata); a later frame's address is ignored."""
    caplog.set_level(logging.INFO, logger="handshaker.audit")
    peers = {1: "203.0.113.7:51234", 2: "[2001:db8::7]:443", 3: ""}
    fallback = "192.0.2.1:9"

    async def run() -> None:
        clients = {
            cid: ClientConnection(
                ClientConfig(server_name="localhost", trust_anchors=(pki.root.certificate,))
            )
            for cid in peers
        }
        async with _service(pki) as stub:
            call = stub.Multiplex(metadata=((PEER_METADATA, fallback),))
            # All three start in one message, on one stream.
            await call.write(
                pb.MultiplexRequest(
                    frames=[_multiplex_start(cid, clients[cid].data_to_send(), peers[cid])
                            for cid in peers]
                )
            )  # fmt: skip
            results: dict[int, pb.ConnectionResult] = {}
            while len(results) < len(peers):
                response = await call.read()
                results.update((r.connection_id, r) for r in response.results)
            finishes = []
            for cid, result in results.items():
                assert result.response.step.state == pb.HANDSHAKE_STATE_NEED_INPUT
                clients[cid].receive_data(result.response.step.out_bytes)
                # A later frame's peer_address is not read.
                finishes.append(
                    pb.ConnectionFrame(
                        connection_id=cid,
                        request=pb.HandshakeRequest(
                            in_bytes=clients[cid].data_to_send(), peer_address="198.51.100.99:1"
                        ),
                    )
                )
            await call.write(pb.MultiplexRequest(frames=finishes))
            done: set[int] = set()
            while len(done) < len(peers):
                response = await call.read()
                for r in response.results:
                    assert r.response.step.state == pb.HANDSHAKE_STATE_COMPLETE
                    done.add(r.connection_id)
            await call.done_writing()

    asyncio.run(run())
    lines = _audit_lines(caplog)
    assert sorted(str(x["peer"]) for x in lines) == sorted(
        [peers[1], peers[2], fallback]
    ), lines
    assert len({x["session"] for x in lines}) == 3  # one line per connection


def test_a_peer_address_in_the_request_is_printable_and_bounded(
    pki: TestPKI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="handshaker.audit")

    async def run() -> None:
        client = ClientConnection(
            ClientConfig(server_name="localhost", trust_anchors=(pki.root.certificate,))
        )
        async with _service(pki) as stub:
            call = stub.Handshake(metadata=((PEER_METADATA, "192.0.2.1:9"),))
            await call.write(
                pb.HandshakeRequest(
                    server=pb.ServerOptions(credential="inline"),
                    in_bytes=client.data_to_send(),
                    peer_address="evil\n" + "x" * 500,
                )
            )
            client.receive_data((await call.read()).step.out_bytes)
            await call.write(pb.HandshakeRequest(in_bytes=client.data_to_send()))
            assert (await call.read()).step.state == pb.HANDSHAKE_STATE_COMPLETE
            await call.done_writing()

    asyncio.run(run())
    (line,) = _audit_lines(caplog)
    assert line["peer"] == ("evil?" + "x" * 500)[:MAX_PEER_LENGTH]


def test_the_python_clients_multiplexed_sessions_pass_their_peer(
    pki: TestPKI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="handshaker.audit")

    async def run() -> None:
        addresses: list[str] = []
        async with _service(pki, addresses):
            client = AsyncHandshakerClient(addresses[0])
            try:
                for peer in ("203.0.113.1:1000", "203.0.113.2:2000"):
                    tls = ClientConnection(
                        ClientConfig(server_name="localhost", trust_anchors=(pki.root.certificate,))
                    )
                    session = client.multiplexed_session(
                        pb.ServerOptions(credential="inline"), peer=peer
                    )
                    step = await session.start(tls.data_to_send())
                    tls.receive_data(step.out_bytes)
                    assert (await session.feed(tls.data_to_send())).state == COMPLETE
            finally:
                await client.close()

    asyncio.run(run())
    assert [x["peer"] for x in _audit_lines(caplog)] == ["203.0.113.1:1000", "203.0.113.2:2000"]
