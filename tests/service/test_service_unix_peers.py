"""Unix-socket callers are named by their own uid (SO_PEERCRED), through the service's relay.

The "other user" is a forked child that drops to nobody (uid and gid 65534) and only
connect()s to the service's socket; it hands the connected socket back over SCM_RIGHTS
and exits. SO_PEERCRED is fixed at connect(), so the service sees nobody on that
connection, and this process speaks gRPC over it through a small local pipe (a child
that dropped its uid could not run grpc itself: the interpreter lives under /root,
which nobody may not read, and gRPC does not survive a fork).
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from handshaker.keystore import DirectoryKeyStore, Principal, Role
from handshaker_wire.v1 import handshaker_pb2 as pb
from service_kit import (
    ServiceProcess,
    StartService,
    client_options,
    handshaker_stub,
    short_socket_dir,
)

NOBODY = 65534

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="connecting as another uid (setuid to nobody) needs root"
)


def connect_as(uid: int, gid: int, path: Path) -> socket.socket:
    """A socket connected to `path` by a process running as uid:gid (no other groups)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # the child: no grpc, no allocation-heavy work, then _exit
        status = 1
        try:
            ours.close()
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            connected = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connected.connect(str(path))
            socket.send_fds(theirs, [b"s"], [connected.fileno()])
            status = 0
        finally:
            os._exit(status)
    theirs.close()
    try:
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    finally:
        ours.close()
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and fds, "the child could not connect"
    return socket.socket(fileno=fds[0])


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def channel_over(connected: socket.socket) -> Iterator[grpc.Channel]:
    """A grpc channel whose (one) connection is `connected`, through a local socket."""
    directory = short_socket_dir()
    local = directory / "pipe.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(local))
    listener.listen(1)

    def serve_one() -> None:
        try:
            accepted, _ = listener.accept()
        except OSError:
            return
        back = threading.Thread(target=_pump, args=(connected, accepted), daemon=True)
        back.start()
        _pump(accepted, connected)
        back.join(5)
        accepted.close()

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        with grpc.insecure_channel(f"unix:{local}") as channel:
            yield channel
    finally:
        listener.close()
        connected.close()
        thread.join(5)
        local.unlink(missing_ok=True)
        directory.rmdir()


def start_server_code(channel: grpc.Channel, credential: str) -> tuple[grpc.StatusCode, str]:
    stub = handshaker_stub(channel)
    try:
        stub.StartServer(pb.StartServerRequest(options=pb.ServerOptions(credential=credential)))
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def start_client_code(channel: grpc.Channel, bundle: str) -> grpc.StatusCode:
    stub = handshaker_stub(channel)
    try:
        stub.StartClient(
            pb.StartClientRequest(options=client_options(trust_bundle=bundle))
        )
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


def listening(service: ServiceProcess) -> dict[str, object]:
    return next(e for e in service.log_entries() if e.get("message") == "listening")


@pytest.fixture
def shared_socket(start_service: StartService, tmp_path: Path) -> tuple[ServiceProcess, Path]:
    """A service on a socket nobody may connect to (group nogroup, 0660), whose policy
    grants `localhost` to our uid only and the `dev-ca` bundle to nobody's gid."""
    keystore = tmp_path / "keystore"
    store = DirectoryKeyStore(keystore)
    store.ensure_development_ca()  # grants localhost and dev-ca to our uid and `local`
    store.edit_policy(lambda p: p.grant_trust_bundle("dev-ca", Principal.unix_gid(NOBODY)))
    policy = store.policy()
    assert not policy.allows_credential(Principal.unix_uid(NOBODY), "localhost", Role.SERVER)
    directory = short_socket_dir()
    directory.chmod(0o711)  # nobody may reach the socket inside
    path = directory / "hs.sock"
    service = start_service(
        "--unix-socket-group", str(NOBODY), listen=f"unix:{path}", keystore=keystore
    )
    return service, path


@needs_root
def test_each_unix_caller_is_its_own_uid_with_its_gids_grants(
    shared_socket: tuple[ServiceProcess, Path],
) -> None:
    _, path = shared_socket
    assert stat.S_IMODE(path.stat().st_mode) == 0o660 and path.stat().st_gid == NOBODY

    # We (root, uid 0) are granted localhost: OK.
    with grpc.insecure_channel(f"unix:{path}") as channel:
        assert start_server_code(channel, "localhost") == (grpc.StatusCode.OK, "")

    # nobody is not: the refusal names nobody's own uid, not the socket's owner or group.
    with channel_over(connect_as(NOBODY, NOBODY, path)) as channel:
        code, details = start_server_code(channel, "localhost")
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert f"unix:uid={NOBODY}" in details
        # The bundle granted to nobody's gid applies to it.
        assert start_client_code(channel, "dev-ca") == grpc.StatusCode.OK


@needs_root
def test_a_group_grant_does_not_reach_callers_of_another_gid(
    start_service: StartService, tmp_path: Path
) -> None:
    keystore = tmp_path / "keystore"
    store = DirectoryKeyStore(keystore)
    store.ensure_development_ca()
    # localhost: only nobody's gid; our own uid's first-start grant taken back.
    store.edit_policy(
        lambda p: p.revoke_credential("localhost", Principal.unix_uid(os.getuid()), tuple(Role))
        .grant_credential("localhost", Principal.unix_gid(NOBODY), (Role.SERVER,))
    )
    directory = short_socket_dir()
    directory.chmod(0o711)
    path = directory / "hs.sock"
    start_service("--unix-socket-group", str(NOBODY), listen=f"unix:{path}", keystore=keystore)
    with grpc.insecure_channel(f"unix:{path}") as channel:
        code, details = start_server_code(channel, "localhost")
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert f"unix:uid={os.getuid()}" in details
    # A caller whose gid is nobody's (uid 0 kept) gets the group's grant.
    with channel_over(connect_as(0, NOBODY, path)) as channel:
        assert start_server_code(channel, "localhost") == (grpc.StatusCode.OK, "")


def test_a_connection_that_bypasses_the_relay_is_unauthenticated(
    start_service: StartService,
) -> None:
    path = short_socket_dir() / "hs.sock"
    service = start_service(listen=f"unix:{path}")
    private = Path(str(listening(service)["grpc_socket"]))
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    assert private.parent.stat().st_uid == os.getuid()
    # Only the service user (and root) can reach the private socket; even then, a
    # connection that did not come through the relay names nobody.
    with grpc.insecure_channel(f"unix:{private}") as channel:
        code, details = start_server_code(channel, "localhost")
    assert code == grpc.StatusCode.UNAUTHENTICATED, details
    assert "relay" in details


def test_stopping_removes_the_socket_and_the_private_directory(
    start_service: StartService,
) -> None:
    path = short_socket_dir() / "hs.sock"
    service = start_service(listen=f"unix:{path}")
    private = Path(str(listening(service)["grpc_socket"])).parent
    with grpc.insecure_channel(f"unix:{path}") as channel:
        assert start_server_code(channel, "localhost")[0] == grpc.StatusCode.OK
    assert service.stop() == 0
    assert not path.exists() and not private.exists()


def test_a_live_socket_is_not_taken_over_and_a_stale_one_is(
    start_service: StartService, tmp_path: Path
) -> None:
    path = short_socket_dir() / "hs.sock"
    start_service(listen=f"unix:{path}")
    second = ServiceProcess(tmp_path / "keystore-2", listen=f"unix:{path}")
    with pytest.raises(RuntimeError, match="in use"):
        second.start()
    # A socket file nobody listens on any more is replaced.
    stale_path = short_socket_dir() / "hs.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(stale_path))
    stale.close()
    service = start_service(listen=f"unix:{stale_path}")
    with grpc.insecure_channel(f"unix:{stale_path}") as channel:
        assert start_server_code(channel, "localhost")[0] == grpc.StatusCode.OK
    assert service.stop() == 0


def test_many_relayed_connections_in_parallel_all_complete(
    start_service: StartService,
) -> None:
    path = short_socket_dir() / "hs.sock"
    service = start_service(listen=f"unix:{path}")
    results: list[grpc.StatusCode] = []

    def one() -> None:
        # Each its own channel (its own connection through the relay).
        with grpc.insecure_channel(
            f"unix:{path}", options=[("grpc.use_local_subchannel_pool", 1)]
        ) as channel:
            results.append(start_server_code(channel, "localhost")[0])

    threads = [threading.Thread(target=one) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [grpc.StatusCode.OK] * 16
    deadline = time.monotonic() + 10
    private = Path(str(listening(service)["grpc_socket"])).parent
    # The relay's bound client paths are unlinked once connected: only gRPC's socket stays.
    while sorted(p.name for p in private.iterdir()) != ["grpc.sock"]:
        assert time.monotonic() < deadline, sorted(p.name for p in private.iterdir())
        time.sleep(0.1)


def refusals(service: ServiceProcess) -> list[dict[str, object]]:
    return [
        e
        for e in service.log_entries()
        if e.get("message") == "unix connection refused: too many connections"
    ]


def test_relayed_connections_are_capped_per_uid(start_service: StartService) -> None:
    path = short_socket_dir() / "hs.sock"
    service = start_service("--max-sessions-per-caller", "2", listen=f"unix:{path}")
    held = []
    try:
        for _ in range(2):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(path))
            held.append(sock)
        time.sleep(0.5)  # the relay has accepted both
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.settimeout(10)
        extra.connect(str(path))
        with extra:
            assert extra.recv(1) == b""  # closed at once: over the cap for our uid
        deadline = time.monotonic() + 10
        while not (refused := refusals(service)):
            assert time.monotonic() < deadline, service.logs()
            time.sleep(0.1)
        assert refused[0]["uid"] == os.getuid()
    finally:
        for sock in held:
            sock.close()
    # Once they are gone, a new caller gets through again.
    deadline = time.monotonic() + 10
    while True:
        with grpc.insecure_channel(f"unix:{path}") as channel:
            if start_server_code(channel, "localhost")[0] == grpc.StatusCode.OK:
                break
        assert time.monotonic() < deadline
        time.sleep(0.2)
