"""The Redis session store: replicas sharing one Redis and one keystore, sealed records,
compare-and-set, key rotation, idle expiry, caps across replicas, and Redis going away.

Every test runs its own redis-server (redis_kit) and real `handshaker serve`
replicas; the compare-and-set race runs two servicers in this process, because
only there can both requests be held at the same point (a slow key operation).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from handshaker.api.options import ConfigFactory
from handshaker.api.servicer import HandshakerServicer
from handshaker.keystore import LOCAL, MemoryKeyStore
from handshaker.keystore.policy import EMPTY_POLICY, Role
from handshaker.sessions import (
    MemorySessionStore,
    Session,
    SessionConflict,
    SessionNotFound,
    SessionStoreUnavailable,
)
from handshaker.sessions import Role as SessionRole
from handshaker.sessions.redis_store import RedisSessionStore, store_name
from handshaker.sessions.sealing import Sealer, SealingError
from handshaker.tls import (
    ClientConfig,
    ClientConnection,
    ConnectionState,
    Credential,
    HandshakeComplete,
    NamedGroup,
    ServerConfig,
    ServerConnection,
)
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from pki import TestPKI, pem
from redis_kit import RedisServer, require_redis
from service_kit import (
    COMPLETE,
    HANDSHAKER,
    NEED_INPUT,
    RecordLayer,
    ServiceProcess,
    StartService,
    UnaryHandshake,
    encodings,
    handshaker_stub,
    session_secrets,
)
from test_service_key_operations import SlowKey

PREFIX = "handshaker:"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def replicas(
    start_service: StartService, redis: RedisServer, keystore: Path, count: int, *args: str
) -> list[ServiceProcess]:
    """`count` replicas on one Redis and one keystore (started one by one: the first makes
    the development CA and the session-store key, the others find them)."""
    return [
        start_service("--session-store", redis.url, *args, keystore=keystore) for _ in range(count)
    ]


def stubs_of(services: list[ServiceProcess]) -> list[pb_grpc.HandshakerStub]:
    return [handshaker_stub(s.channel()) for s in services]


def client_options(service: ServiceProcess) -> pb.ClientOptions:
    return pb.ClientOptions(server_name="localhost", trust_anchors_pem=service.dev_ca_pem)


def relay_round_robin(
    stubs: list[pb_grpc.HandshakerStub], client: UnaryHandshake, server: UnaryHandshake
) -> int:
    """Drive a service client against a service server, every call on the next replica;
    returns how many calls were made."""
    calls = 0

    def on_next(handshake: UnaryHandshake) -> UnaryHandshake:
        nonlocal calls
        handshake.stub = stubs[calls % len(stubs)]
        calls += 1
        return handshake

    step = on_next(client).step()
    peer, other = server, client
    states = {id(client): step.state, id(server): NEED_INPUT}
    data = step.out_bytes
    while data:
        step = on_next(peer).step(data)
        states[id(peer)] = step.state
        data = step.out_bytes
        peer, other = other, peer
    assert states[id(client)] == COMPLETE and states[id(server)] == COMPLETE, states
    return calls


def assert_records_cross(client: pb.SessionKeys, server: pb.SessionKeys) -> None:
    a, b = RecordLayer(client), RecordLayer(server)
    assert b.feed(a.seal(b"ping")) == [b"ping"]
    assert a.feed(b.seal(b"pong")) == [b"pong"]


def record(redis: RedisServer, session_id: str) -> dict[bytes, bytes]:
    with redis.client() as client:
        return client.hgetall(f"{PREFIX}s:{session_id}")  # type: ignore[return-value]


# --- replicas share sessions -----------------------------------------------------------


@pytest.mark.parametrize("version", [0x0304, 0x0303], ids=["tls13", "tls12"])
def test_a_handshake_moves_between_three_replicas_and_redis_holds_no_secret(
    start_service: StartService, redis_server: RedisServer, tmp_path: Path, version: int
) -> None:
    services = replicas(start_service, redis_server, tmp_path / "keystore", 3)
    stubs = stubs_of(services)
    options = client_options(services[0])
    options.max_version = version
    client = UnaryHandshake(stubs[0], options)
    server = UnaryHandshake(stubs[1], pb.ServerOptions())
    assert relay_round_robin(stubs, client, server) >= 4
    client.stub, server.stub = stubs[2], stubs[0]
    client_keys, server_keys = client.keys(), server.keys()
    assert client_keys.write.key == server_keys.read.key
    assert_records_cross(client_keys, server_keys)
    # A finished session takes no more bytes, on any replica (as with the memory store).
    with pytest.raises(grpc.RpcError) as error:
        stubs[1].Feed(pb.FeedRequest(session_id=client.session_id, in_bytes=b"\x16"))
    assert error.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "the handshake is complete" in (error.value.details() or "")
    # Export works on any replica, and agrees between the two sides.
    exports = [
        stub.ExportKeyingMaterial(
            pb.ExportKeyingMaterialRequest(
                session_id=h.session_id, label=b"EXPERIMENTAL x", length=32
            )
        ).keying_material
        for stub, h in ((stubs[1], client), (stubs[2], server))
    ]
    assert exports[0] == exports[1]
    assert client_keys.version == version
    # What Redis holds is ciphertext: no secret of the handshake in any encoding.
    stored = b"".join(
        k + v for h in (client, server) for k, v in record(redis_server, h.session_id).items()
    )
    for secret in session_secrets(client_keys) + session_secrets(server_keys):
        assert secret not in stored
        for text in encodings(secret):
            assert text.encode() not in stored
    key_files = list((tmp_path / "keystore" / "session-store" / "keys").glob("*.key"))
    assert len(key_files) == 1, "replicas starting on one keystore make one key"
    assert key_files[0].stat().st_mode & 0o777 == 0o600
    assert len(key_files[0].read_bytes()) == 32
    for service in services:
        for secret in session_secrets(client_keys):
            assert all(text not in service.logs() for text in encodings(secret))


@pytest.mark.parametrize("version", [0x0304, 0x0303], ids=["tls13", "tls12"])
def test_the_exporter_on_every_replica_agrees_with_the_peer(
    start_service: StartService,
    redis_server: RedisServer,
    tmp_path: Path,
    pki: TestPKI,
    version: int,
) -> None:
    # The peer is the engine in this process: its exporter is the truth each replica's
    # record (TLS 1.2's master secret and server random included) must reproduce.
    services = replicas(start_service, redis_server, tmp_path / "keystore", 3)
    stubs = stubs_of(services)
    options = pb.ClientOptions(
        server_name="localhost", trust_anchors_pem=pem(pki.root.certificate), max_version=version
    )
    client = UnaryHandshake(stubs[0], options)
    peer = ServerConnection(ServerConfig(credential=pki.servers["ecdsa-p256"].credential()))
    step = client.step()
    calls = 1
    while step.state == NEED_INPUT:
        peer.receive_data(step.out_bytes)
        client.stub = stubs[calls % len(stubs)]
        calls += 1
        step = client.step(peer.data_to_send())
    assert step.state == COMPLETE
    if step.out_bytes:  # TLS 1.3's client Finished (TLS 1.2's server sends the last flight)
        peer.receive_data(step.out_bytes)
    event = peer.next_event()
    assert isinstance(event, HandshakeComplete) and event.result.version == version
    expected = event.result.export_keying_material(b"EXPERIMENTAL x", b"", 32)
    for stub in stubs:
        exported = stub.ExportKeyingMaterial(
            pb.ExportKeyingMaterialRequest(
                session_id=client.session_id, label=b"EXPERIMENTAL x", length=32
            )
        )
        assert exported.keying_material == expected


def test_abort_on_one_replica_ends_the_session_on_all(
    start_service: StartService, redis_server: RedisServer, tmp_path: Path
) -> None:
    services = replicas(start_service, redis_server, tmp_path / "keystore", 2)
    stubs = stubs_of(services)
    client = UnaryHandshake(stubs[0], client_options(services[0]))
    client.step()
    stubs[1].Abort(pb.AbortRequest(session_id=client.session_id))
    with pytest.raises(grpc.RpcError) as error:
        stubs[0].Feed(pb.FeedRequest(session_id=client.session_id, in_bytes=b""))
    assert error.value.code() is grpc.StatusCode.NOT_FOUND
    assert record(redis_server, client.session_id) == {}


# --- sealing -----------------------------------------------------------------------------


def test_a_sealed_record_copied_under_another_session_id_is_refused(
    start_service: StartService, redis_server: RedisServer, tmp_path: Path
) -> None:
    services = replicas(start_service, redis_server, tmp_path / "keystore", 2)
    stubs = stubs_of(services)
    victim = UnaryHandshake(stubs[0], client_options(services[0]))
    victim.step()
    thief = UnaryHandshake(stubs[0], client_options(services[0]))
    thief.step()
    with redis_server.client() as r:
        # The owner and version fields are copied too: only the seal can tell.
        r.hset(f"{PREFIX}s:{thief.session_id}", "r", r.hget(f"{PREFIX}s:{victim.session_id}", "r"))  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as error:
        stubs[1].Feed(pb.FeedRequest(session_id=thief.session_id, in_bytes=b"\x16\x03\x03"))
    assert error.value.code() is grpc.StatusCode.NOT_FOUND
    assert "no such session" in (error.value.details() or "")
    refused = services[1].entries_with("session record refused")
    assert refused and refused[0]["session"] == thief.session_id[:8]
    # The victim's own record still opens where it belongs.
    assert victim.stub.Feed(pb.FeedRequest(session_id=victim.session_id)).step.state == NEED_INPUT


def test_a_seal_opens_only_for_its_session_id_and_owner(tmp_path: Path) -> None:
    sealer = Sealer(tmp_path / "keys")
    blob = sealer.seal(b"snapshot", "id-a", "alice")
    assert sealer.open(blob, "id-a", "alice") == b"snapshot"
    for session_id, owner in (("id-a", "bob"), ("id-b", "alice"), ("id-a", "alice\x00")):
        with pytest.raises(SealingError, match="does not open"):
            sealer.open(blob, session_id, owner)
    tampered = blob[:-1] + bytes((blob[-1] ^ 1,))
    with pytest.raises(SealingError):
        sealer.open(tampered, "id-a", "alice")
    # Another Sealer on the same directory (another replica) opens it; a new key seals.
    other = Sealer(tmp_path / "keys")
    assert other.open(blob, "id-a", "alice") == b"snapshot"
    other.rotate()
    newer = other.seal(b"later", "id-c", "alice")
    assert newer[1:9] != blob[1:9]
    assert sealer.open(newer, "id-c", "alice") == b"later"  # found in the directory


def test_keys_from_a_read_only_mount_are_used_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Kubernetes Secret volume: NAME.key links into a ..data folder, and nothing may be
    # written there (no first key, no lock file); every replica mounts the same keys.
    keys = tmp_path / "keys"
    data = keys / "..2026_01_01_00_00_00.1"
    data.mkdir(parents=True)
    (data / "20260101T000000000000Z-00000001.key").write_bytes(bytes(range(32)))
    (keys / "..data").symlink_to(data.name)
    (keys / "20260101T000000000000Z-00000001.key").symlink_to(
        "..data/20260101T000000000000Z-00000001.key"
    )

    def no_writes(self: Sealer) -> None:
        raise AssertionError("wrote to a directory that holds keys")

    monkeypatch.setattr(Sealer, "_locked", no_writes)
    one, other = Sealer(keys), Sealer(keys)
    assert one.sealing_key_id == other.sealing_key_id
    assert other.open(one.seal(b"snapshot", "id-a", "alice"), "id-a", "alice") == b"snapshot"
    assert sorted(p.name for p in keys.iterdir()) == sorted(
        ["..2026_01_01_00_00_00.1", "..data", "20260101T000000000000Z-00000001.key"]
    )


def test_rotated_key_seals_new_records_and_old_records_still_open(
    start_service: StartService, redis_server: RedisServer, tmp_path: Path
) -> None:
    keystore = tmp_path / "keystore"
    (old,) = replicas(start_service, redis_server, keystore, 1)
    client = UnaryHandshake(handshaker_stub(old.channel()), client_options(old))
    server = UnaryHandshake(client.stub, pb.ServerOptions())
    hello = client.step().out_bytes
    flight = server.step(hello)
    sealed_before = record(redis_server, server.session_id)[b"r"]
    rotated = subprocess.run(
        [str(HANDSHAKER), "keys", "rotate-session-key", "--keystore", str(keystore)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "new session-store key" in rotated.stdout
    assert len(list((keystore / "session-store" / "keys").glob("*.key"))) == 2
    (new,) = replicas(start_service, redis_server, keystore, 1)
    new_stub = handshaker_stub(new.channel())
    # The new replica opens the record sealed under the old key, and seals under the new one.
    client.stub = new_stub
    finished = client.step(flight.out_bytes)
    assert finished.state == COMPLETE
    client_record = record(redis_server, client.session_id)[b"r"]
    key_id_of = lambda blob: blob[1:9]  # noqa: E731 (format byte, then the key id)
    assert key_id_of(client_record) != key_id_of(sealed_before)
    # The old replica opens what the new key sealed (it finds the key in the directory).
    client.stub = handshaker_stub(old.channel())
    server.stub = new_stub
    assert server.step(finished.out_bytes).state == COMPLETE
    assert_records_cross(client.keys(), server.keys())


# --- idle expiry and caps --------------------------------------------------------------


def test_an_idle_session_expires_through_the_redis_ttl(
    start_service: StartService, redis_server: RedisServer, tmp_path: Path
) -> None:
    services = replicas(
        start_service, redis_server, tmp_path / "keystore", 2, "--idle-timeout", "2"
    )
    stubs = stubs_of(services)
    client = UnaryHandshake(stubs[0], client_options(services[0]))
    client.step()
    with redis_server.client() as r:
        ttl = r.pttl(f"{PREFIX}s:{client.session_id}")
    assert 0 < int(ttl) <= 2000  # type: ignore[arg-type]
    # Each step renews the TTL: 2.4 s after the start, the session is still there...
    time.sleep(1.2)
    stubs[1].Feed(pb.FeedRequest(session_id=client.session_id))
    time.sleep(1.2)
    stubs[0].Feed(pb.FeedRequest(session_id=client.session_id))
    # ...and idleness past the timeout ends it on every replica.
    time.sleep(2.6)
    for stub in stubs:
        with pytest.raises(grpc.RpcError) as error:
            stub.Feed(pb.FeedRequest(session_id=client.session_id))
        assert error.value.code() is grpc.StatusCode.NOT_FOUND
    assert record(redis_server, client.session_id) == {}
    with redis_server.client() as r:
        assert r.zcard(f"{PREFIX}o:local") == 0  # the caller's count went with it


def test_the_store_is_named_without_credentials() -> None:
    assert store_name("redis://user:hunter2@db.internal:6379/0") == "redis://db.internal:6379/0"
    assert store_name("rediss://:hunter2@[::1]:6380/2") == "rediss://[::1]:6380/2"
    assert store_name("unix:///run/redis.sock") == "unix:///run/redis.sock"


def test_the_caps_hold_across_replicas(
    start_service: StartService, redis_server: RedisServer, tmp_path: Path
) -> None:
    services = replicas(
        start_service, redis_server, tmp_path / "keystore", 2,
        "--max-sessions-per-caller", "2", "--max-sessions", "3",
    )  # fmt: skip
    stubs = stubs_of(services)
    options = client_options(services[0])
    first = UnaryHandshake(stubs[0], options)
    first.step()
    UnaryHandshake(stubs[1], options).step()
    with pytest.raises(grpc.RpcError) as error:
        UnaryHandshake(stubs[0], options).step()
    assert error.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "this caller holds 2 sessions" in (error.value.details() or "")
    # Aborting on one replica frees the place on the other.
    stubs[0].Abort(pb.AbortRequest(session_id=first.session_id))
    UnaryHandshake(stubs[1], options).step()


def test_the_total_cap_holds_across_replicas(
    start_service: StartService, redis_server: RedisServer, tmp_path: Path
) -> None:
    services = replicas(
        start_service, redis_server, tmp_path / "keystore", 2, "--max-sessions", "2"
    )
    stubs = stubs_of(services)
    options = client_options(services[0])
    UnaryHandshake(stubs[0], options).step()
    UnaryHandshake(stubs[1], options).step()
    with pytest.raises(grpc.RpcError) as error:
        UnaryHandshake(stubs[0], options).step()
    assert error.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "the service holds 2 sessions" in (error.value.details() or "")


# --- Redis going away --------------------------------------------------------------------


def test_redis_down_at_start_is_one_error_line_and_a_failing_exit(tmp_path: Path) -> None:
    require_redis()
    missing = tmp_path / "no-redis.sock"
    done = subprocess.run(
        [
            str(HANDSHAKER), "serve", "--listen", "127.0.0.1:0",
            "--keystore", str(tmp_path / "keystore"), "--session-store", f"unix://{missing}",
        ],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    # stderr is not a terminal: the one line is a JSON line of level error.
    errors = [
        entry["message"]
        for entry in map(json.loads, done.stderr.splitlines())
        if entry.get("level") == "error"
    ]
    assert errors == [
        f"handshaker serve: session store unix://{missing} is unreachable (ConnectionError)"
    ], done.stderr
    assert "Traceback" not in done.stderr
    assert '"listening"' not in done.stderr


def test_a_bad_session_store_url_is_one_error_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            str(HANDSHAKER), "serve", "--keystore", str(tmp_path / "keystore"),
            "--session-store", "mysql://user:hunter2@db/1",
        ],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "handshaker serve: --session-store 'mysql://db/1': give memory" in done.stderr
    assert "hunter2" not in done.stderr


def test_redis_unreachable_mid_run_is_unavailable_naming_the_store(
    start_service: StartService, tmp_path: Path
) -> None:
    redis = RedisServer().start()
    try:
        (service,) = replicas(start_service, redis, tmp_path / "keystore", 1)
        stub = handshaker_stub(service.channel())
        client = UnaryHandshake(stub, client_options(service))
        client.step()
    finally:
        redis.stop()
    for call in (
        lambda: stub.Feed(pb.FeedRequest(session_id=client.session_id)),
        lambda: UnaryHandshake(stub, client_options(service)).step(),
    ):
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() is grpc.StatusCode.UNAVAILABLE
        assert f"session store {redis.url} is unavailable" in (error.value.details() or "")
    # Streams do not need the store: they still work on this replica.
    assert service.process.poll() is None


def test_a_redis_that_never_answers_is_unavailable_within_the_store_timeout(
    tmp_path: Path,
) -> None:
    asyncio.run(_silent_redis(tmp_path))


async def _silent_redis(tmp_path: Path) -> None:
    # Accepts connections and reads what it is sent, answers nothing: a hung Redis.
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()

    socket = tmp_path / "silent.sock"
    silent = await asyncio.start_unix_server(swallow, path=str(socket))
    store = RedisSessionStore(f"unix://{socket}", Sealer(tmp_path / "keys"), timeout=0.3)
    try:
        for operation in (lambda: store.load("id", "owner"), store.count, store.ping):
            began = time.monotonic()
            with pytest.raises(SessionStoreUnavailable, match=f"session store unix://{socket}"):
                await operation()
            # Bounded by the store's timeout (redis-py's retries included): a hung Redis
            # never holds a caller's request.
            assert time.monotonic() - began < 1.5
    finally:
        await store.close()
        silent.close()


# --- compare-and-set ---------------------------------------------------------------------


def test_two_replicas_feeding_one_session_at_once_one_wins_and_the_session_goes_on(
    pki: TestPKI, redis_server: RedisServer, tmp_path: Path
) -> None:
    asyncio.run(_race(pki, redis_server, tmp_path))


async def _replica_in_process(
    keystore: MemoryKeyStore, redis: RedisServer, tmp_path: Path
) -> tuple[grpc.aio.Server, grpc.aio.Channel, RedisSessionStore]:
    """A servicer on the Redis store, served on 127.0.0.1, and a channel to it."""
    store = RedisSessionStore(redis.url, Sealer(tmp_path / "keys"))
    servicer = HandshakerServicer(store, ConfigFactory(keystore), streams=MemorySessionStore())
    server = grpc.aio.server()
    pb_grpc.add_HandshakerServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, grpc.aio.insecure_channel(f"127.0.0.1:{port}"), store


async def _race(pki: TestPKI, redis: RedisServer, tmp_path: Path) -> None:
    leaf = pki.servers["ecdsa-p256"]
    slow = SlowKey(leaf)
    keystore = MemoryKeyStore(
        {"slow": Credential(leaf.chain, slow)},
        {"default": (pki.root.certificate,)},
        policy=EMPTY_POLICY.grant_credential("slow", LOCAL, (Role.SERVER,)),
    )
    # Two replicas: their own servicer, Redis client and config cache.
    servers, channels, stores = zip(
        *[await _replica_in_process(keystore, redis, tmp_path) for _ in range(2)], strict=True
    )
    a, b = (pb_grpc.HandshakerStub(c) for c in channels)  # type: ignore[no-untyped-call]
    try:
        # The client's key share is for X25519 only and the server takes only P-256: a
        # HelloRetryRequest first, then the second ClientHello needs the slow signature.
        client = ClientConnection(
            ClientConfig(
                server_name="localhost",
                trust_anchors=(pki.root.certificate,),
                supported_groups=(NamedGroup.X25519, NamedGroup.SECP256R1),
                key_share_groups=(NamedGroup.X25519,),
            )
        )
        options = pb.ServerOptions(credential="slow", groups=[NamedGroup.SECP256R1])
        retry = (
            await a.StartServer(
                pb.StartServerRequest(options=options, in_bytes=client.data_to_send())
            )
        ).step
        assert retry.state == NEED_INPUT and retry.out_bytes
        client.receive_data(retry.out_bytes)
        second_hello = client.data_to_send()
        request = pb.FeedRequest(session_id=retry.session_id, in_bytes=second_hello)
        # Both replicas load version 1 and sign (slowly) at once; one save wins.
        outcomes = await asyncio.gather(a.Feed(request), b.Feed(request), return_exceptions=True)
        won = [o for o in outcomes if isinstance(o, pb.FeedResponse)]
        lost = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert lost[0].code() is grpc.StatusCode.ABORTED
        assert "was not kept" in (lost[0].details() or "")
        assert slow.peak == 2
        # The session is as the winner left it: the client goes on with the winner's flight.
        client.receive_data(won[0].step.out_bytes)
        event = client.next_event()
        assert isinstance(event, HandshakeComplete), event
        assert client.state is ConnectionState.COMPLETE
        done = (
            await b.Feed(
                pb.FeedRequest(session_id=retry.session_id, in_bytes=client.data_to_send())
            )
        ).step
        assert done.state == COMPLETE, done.failure
        keys = (await a.GetKeys(pb.GetKeysRequest(session_id=retry.session_id))).keys
        assert keys.read.key == event.result.write.key
    finally:
        for channel in channels:
            await channel.close()
        for server in servers:
            await server.stop(None)
        for store in stores:
            await store.close()


def server_session(
    pki: TestPKI, server_config: ServerConfig, session_id: str = "s1"
) -> tuple[ClientConnection, Session]:
    """An engine client and a server-role session of `owner` that has answered its
    ClientHello (the client has the server's flight): a session a store can save."""
    client = ClientConnection(
        ClientConfig(server_name="localhost", trust_anchors=(pki.root.certificate,))
    )
    connection = ServerConnection(server_config)
    connection.receive_data(client.data_to_send())
    client.receive_data(connection.data_to_send())
    return client, Session(session_id, "owner", SessionRole.SERVER, connection, options=b"")


# --- a replica's own sessions stay live ------------------------------------------------


def test_a_replica_continues_its_own_session_live_and_reloads_one_moved_on_elsewhere(
    pki: TestPKI, redis_server: RedisServer, tmp_path: Path
) -> None:
    asyncio.run(_live_sessions(pki, redis_server, tmp_path))


async def _live_sessions(pki: TestPKI, redis: RedisServer, tmp_path: Path) -> None:
    leaf = pki.servers["ecdsa-p256"]
    server_config = ServerConfig(credential=leaf.credential())
    client, session = server_session(pki, server_config)
    assert session.state is ConnectionState.HANDSHAKING
    a, b = (RedisSessionStore(redis.url, Sealer(tmp_path / "keys")) for _ in range(2))
    try:
        await a.add(session)
        await a.save(session)
        # The replica that saved it gets its live session back, not a restored copy...
        assert await a.load("s1", "owner") is session
        await a.save(session)
        # ...which another replica's request never sees: there it comes from the record.
        elsewhere = await b.load("s1", "owner")
        assert elsewhere is not session and elsewhere.connection is None
        assert elsewhere.version == session.version == 2
        elsewhere.connection = ServerConnection.restore(elsewhere.snapshot, server_config)
        await b.save(elsewhere)
        # Redis moved past the version `a` holds: `a` loads the record, never its stale copy.
        again = await a.load("s1", "owner")
        assert again is not session and again.connection is None and again.version == 3
        assert again.snapshot == record_snapshot(elsewhere)
        again.connection = ServerConnection.restore(again.snapshot, server_config)
        await a.save(again)
        # Two requests at once on one replica: one takes the live session, the other the
        # record, and compare-and-set keeps one of their steps.
        first = await a.load("s1", "owner")
        second = await a.load("s1", "owner")
        assert first is again and second.connection is None
        second.connection = ServerConnection.restore(second.snapshot, server_config)
        await a.save(first)
        with pytest.raises(SessionConflict):
            await a.save(second)
        # Another caller cannot take it, live or not; after an Abort it is gone everywhere.
        with pytest.raises(SessionNotFound):
            await a.load("s1", "someone else")
        await a.discard("s1", "owner")
        for store in (a, b):
            with pytest.raises(SessionNotFound):
                await store.load("s1", "owner")
        # The live session still finishes the handshake it was in.
        first.connection.receive_data(client.data_to_send())
        assert isinstance(first.connection.next_event(), HandshakeComplete)
    finally:
        await a.close()
        await b.close()


def record_snapshot(session: Session) -> bytes:
    assert session.connection is not None
    return session.connection.snapshot()


def test_a_grant_revoked_between_steps_is_denied_on_the_replica_holding_the_session_live(
    start_service: StartService, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The live path authorizes each step as a restore does: PERMISSION_DENIED."""
    from test_service_authorization import started_then_revoked

    (service,) = replicas(start_service, redis_server, tmp_path / "keystore", 1)
    # The start is saved and kept live on this one replica; the revocation comes after.
    with started_then_revoked(service) as (server, hello), pytest.raises(grpc.RpcError) as raised:
        server.step(hello)
    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED, raised.value


def test_live_sessions_leave_the_replica_with_their_idle_timeout(
    pki: TestPKI, redis_server: RedisServer, tmp_path: Path
) -> None:
    asyncio.run(_live_expiry(pki, redis_server, tmp_path))


async def _live_expiry(pki: TestPKI, redis: RedisServer, tmp_path: Path) -> None:
    server_config = ServerConfig(credential=pki.servers["ecdsa-p256"].credential())
    store = RedisSessionStore(redis.url, Sealer(tmp_path / "keys"), idle_timeout=0.3)

    def started(session_id: str) -> Session:
        return server_session(pki, server_config, session_id)[1]

    try:
        for session_id in ("old", "new"):
            session = started(session_id)
            await store.add(session)
            await store.save(session)
            if session_id == "old":
                await asyncio.sleep(0.5)
        # The secrets a replica holds live go when the record's TTL does (checked on the
        # store's own table: Redis has already forgotten "old" either way).
        assert list(store._live) == ["new"]
        with pytest.raises(SessionNotFound):
            await store.load("old", "owner")
        assert (await store.load("new", "owner")).connection is not None
    finally:
        await store.close()


def test_a_redis_that_forgot_the_scripts_still_serves_every_step(
    pki: TestPKI, redis_server: RedisServer, tmp_path: Path
) -> None:
    asyncio.run(_scripts_flushed(pki, redis_server, tmp_path))


async def _scripts_flushed(pki: TestPKI, redis: RedisServer, tmp_path: Path) -> None:
    # A restarted Redis (or SCRIPT FLUSH) has none of the store's scripts: the store's
    # EVALSHA finds none and loads each again, every step answered as before.
    server_config = ServerConfig(credential=pki.servers["ecdsa-p256"].credential())
    client, session = server_session(pki, server_config)
    a, b = (RedisSessionStore(redis.url, Sealer(tmp_path / "keys")) for _ in range(2))
    try:
        await a.add(session)
        await a.save(session)
        with redis.client() as r:
            r.script_flush()
            assert r.script_exists(a._load.sha, a._save.sha) == [False, False]
        elsewhere = await b.load("s1", "owner")
        elsewhere.connection = ServerConnection.restore(elsewhere.snapshot, server_config)
        elsewhere.connection.receive_data(client.data_to_send())
        assert isinstance(elsewhere.connection.next_event(), HandshakeComplete)
        with redis.client() as r:
            r.script_flush()
        await b.save(elsewhere)
        with redis.client() as r:
            r.script_flush()
        await a.discard("s1", "owner")
        with pytest.raises(SessionNotFound):
            await b.load("s1", "owner")
    finally:
        await a.close()
        await b.close()


def test_after_a_redis_restart_the_next_request_is_served_on_fresh_connections(
    pki: TestPKI, redis_server: RedisServer, tmp_path: Path
) -> None:
    asyncio.run(_restarted(pki, redis_server, tmp_path))


async def _restarted(pki: TestPKI, redis: RedisServer, tmp_path: Path) -> None:
    # The store retries no command (a lost reply to a save may mean it ran), so a pooled
    # connection that a restarted Redis closed must be replaced before its next use,
    # not fail a request: the sessions Redis held are gone, new ones start.
    server_config = ServerConfig(credential=pki.servers["ecdsa-p256"].credential())
    store = RedisSessionStore(redis.url, Sealer(tmp_path / "keys"))

    def started(session_id: str) -> Session:
        return server_session(pki, server_config, session_id)[1]

    try:
        # Several connections in the pool, all idle once these are saved.
        first = [started(f"before-{n}") for n in range(4)]
        for session in first:
            await store.add(session)
        await asyncio.gather(*(store.save(session) for session in first))
        redis.halt()
        redis.start()
        for n in range(8):
            with pytest.raises(SessionNotFound):
                await store.load(f"before-{n % 4}", "owner")
            session = started(f"after-{n}")
            await store.add(session)
            await store.save(session)
        assert await store.count() == 8
    finally:
        await store.close()
