"""Who may use which key: typed principals and the keystore's policy, through `handshaker serve`.

Every test runs a real service process. Loopback callers are all the principal
`local` (a process running as nobody on this host is `local` too); mutual-TLS
callers are their certificate's SPIFFE ID or DNS name, read with its type.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from service_kit import (
    COMPLETE,
    FAILED,
    HANDSHAKER,
    NEED_INPUT,
    ChannelPki,
    MultiplexStream,
    ServiceProcess,
    StartService,
    StreamHandshake,
    UnaryHandshake,
    client_options,
    development_keystore,
    handshaker_stub,
    make_channel_pki,
    relay,
    short_socket_dir,
    start_frame,
)

# Long enough for the service's one-second reload interval, on a busy machine.
RELOAD_WITHIN = 10.0


def keys(keystore: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(HANDSHAKER), "keys", *args, "--keystore", str(keystore)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def eventually(check: Callable[[], bool], what: str) -> None:
    """Waits for the service to reload what the test just wrote."""
    deadline = time.monotonic() + RELOAD_WITHIN
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {RELOAD_WITHIN} s: {what}")
        time.sleep(0.1)


def start_server(stub: pb_grpc.HandshakerStub, **options: object) -> grpc.StatusCode:
    """StartServer with these options: OK, or the status code it failed with."""
    try:
        stub.StartServer(pb.StartServerRequest(options=pb.ServerOptions(**options)))  # type: ignore[arg-type]
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


def complete_handshake(
    stub: pb_grpc.HandshakerStub, server: pb.ServerOptions, client: pb.ClientOptions
) -> tuple[pb.HandshakeSummary, pb.HandshakeSummary]:
    """A handshake between two sessions of the service; the client's and server's summaries."""
    with UnaryHandshake(stub, client) as c, UnaryHandshake(stub, server) as s:
        client_step, server_step = relay(c, s)
        if client_step.state == NEED_INPUT:
            client_step = c.step(server_step.out_bytes)
        assert server_step.state == COMPLETE, server_step.failure
        assert client_step.state == COMPLETE, client_step.failure
        return client_step.result, server_step.result


def dev_client(**fields: object) -> pb.ClientOptions:
    return client_options(trust_bundle="dev-ca", **fields)


# --- loopback callers are `local` ---------------------------------------------------------


@pytest.fixture
def local_service(start_service: StartService) -> ServiceProcess:
    return start_service()


def test_a_credential_generated_without_allow_is_denied_to_loopback_callers(
    local_service: ServiceProcess,
) -> None:
    keys(local_service.keystore, "generate", "web", "--san", "DNS:web.test")
    with local_service.channel() as channel:
        stub = handshaker_stub(channel)
        eventually(
            lambda: start_server(stub, credential="web") != grpc.StatusCode.NOT_FOUND,
            "the service loads the new credential",
        )

        denied = rpc_error(
            lambda: stub.StartServer(
                pb.StartServerRequest(options=pb.ServerOptions(credential="web"))
            )
        )
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'web'" in denied.details() and "local" in denied.details()
        client_denied = rpc_error(
            lambda: stub.StartClient(pb.StartClientRequest(options=dev_client(credential="web")))
        )
        assert client_denied.code() == grpc.StatusCode.PERMISSION_DENIED

        # The development credential made on first start stays usable by `local`.
        _, server = complete_handshake(stub, pb.ServerOptions(credential="localhost"), dev_client())
        assert server.version == 0x0304


def test_sni_selection_only_picks_credentials_the_caller_may_use(
    local_service: ServiceProcess,
) -> None:
    keys(local_service.keystore, "generate", "web", "--san", "DNS:web.test")
    with local_service.channel() as channel:
        stub = handshaker_stub(channel)
        eventually(
            lambda: start_server(stub, credential="web") == grpc.StatusCode.PERMISSION_DENIED,
            "the service loads the new credential",
        )
        client = dev_client(server_name="web.test", skip_hostname_check=True)

        # web.test's own credential is not ours: the selection falls back to the default.
        summary, _ = complete_handshake(stub, pb.ServerOptions(), client)
        assert list(summary.peer.dns_sans) == ["localhost"]

        keys(local_service.keystore, "allow", "web", "local", "--role", "server")

        def serves_web() -> bool:
            summary, _ = complete_handshake(stub, pb.ServerOptions(), client)
            return list(summary.peer.dns_sans) == ["web.test"]

        eventually(serves_web, "the grant lets SNI select web")


def test_on_multiplex_a_denied_credential_ends_only_its_own_connection(
    local_service: ServiceProcess,
) -> None:
    keys(local_service.keystore, "generate", "web", "--san", "DNS:web.test")
    with local_service.channel() as channel:
        stub = handshaker_stub(channel)
        eventually(
            lambda: start_server(stub, credential="web") == grpc.StatusCode.PERMISSION_DENIED,
            "the service loads the new credential",
        )
        with MultiplexStream(stub) as mux:
            denied, allowed = mux.exchange(
                start_frame(1, pb.ServerOptions(credential="web")),
                start_frame(2, dev_client()),
            )
        assert denied.error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
        assert "'web'" in denied.error.message
        assert allowed.response.step.state == NEED_INPUT  # a ClientHello: the stream went on


def test_a_grant_and_its_revocation_are_picked_up_without_a_restart(
    local_service: ServiceProcess,
) -> None:
    keystore = local_service.keystore
    keys(keystore, "generate", "web", "--san", "DNS:web.test")
    with local_service.channel() as channel:
        stub = handshaker_stub(channel)
        eventually(
            lambda: start_server(stub, credential="web") == grpc.StatusCode.PERMISSION_DENIED,
            "the service loads the new credential",
        )

        keys(keystore, "allow", "web", "local")
        eventually(lambda: start_server(stub, credential="web") == grpc.StatusCode.OK, "the grant")

        keys(keystore, "deny", "web", "local")
        eventually(
            lambda: start_server(stub, credential="web") == grpc.StatusCode.PERMISSION_DENIED,
            "the revocation",
        )


@contextlib.contextmanager
def started_then_revoked(service: ServiceProcess) -> Iterator[tuple[UnaryHandshake, bytes]]:
    """A server session on a new credential `web`, started with its ClientHello still to
    come, and then `local`'s grant to `web` revoked: the session and that ClientHello."""
    keystore = service.keystore
    keys(keystore, "generate", "web", "--san", "DNS:web.test", "--allow", "local")
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        eventually(lambda: start_server(stub, credential="web") == grpc.StatusCode.OK, "web")
        with UnaryHandshake(stub, dev_client(server_name="web.test")) as client, UnaryHandshake(
            stub, pb.ServerOptions(credential="web")
        ) as server:
            hello = client.step().out_bytes
            assert server.step().state == NEED_INPUT  # started, the ClientHello still to come
            keys(keystore, "deny", "web", "local")
            eventually(
                lambda: start_server(stub, credential="web") == grpc.StatusCode.PERMISSION_DENIED,
                "the revocation",
            )
            yield server, hello


def test_a_grant_revoked_after_the_start_fails_the_handshake_with_internal_error(
    local_service: ServiceProcess,
) -> None:
    with started_then_revoked(local_service) as (server, hello):
        step = server.step(hello)
    # Not unrecognized_name: the name matched; the service refused its caller.
    assert step.state == FAILED
    assert step.failure.alert == 80, step.failure
    assert "may no longer use the credential 'web'" in step.failure.reason


def test_a_malformed_policy_keeps_the_last_good_one_and_logs_why(
    local_service: ServiceProcess,
) -> None:
    keystore = local_service.keystore
    keys(keystore, "generate", "web", "--san", "DNS:web.test", "--allow", "local")
    with local_service.channel() as channel:
        stub = handshaker_stub(channel)
        eventually(lambda: start_server(stub, credential="web") == grpc.StatusCode.OK, "the grant")

        # A revocation written with a typo: the whole file is refused, nothing is half-applied.
        policy = keystore / "policy.toml"
        text = policy.read_text()
        assert "server = " in text
        policy.write_text(text.replace("server = ", "servre = "))

        def logged() -> bool:
            start_server(stub, credential="web")  # the keystore reloads when it is used
            return any(
                "policy" in str(e.get("message")) and "servre" in str(e.get("message"))
                for e in local_service.log_entries()
                if e.get("level") == "warning"
            )

        eventually(logged, "a warning naming the bad key")
        assert start_server(stub, credential="web") == grpc.StatusCode.OK
        assert start_server(stub, credential="localhost") == grpc.StatusCode.OK


def test_the_default_trust_bundle_is_open_and_others_follow_the_policy(
    local_service: ServiceProcess,
) -> None:
    keystore = local_service.keystore
    (keystore / "trust").mkdir()
    (keystore / "trust" / "partners.pem").write_text(local_service.dev_ca_pem)
    with local_service.channel() as channel:
        stub = handshaker_stub(channel)

        def start_client(**fields: object) -> grpc.StatusCode:
            try:
                stub.StartClient(pb.StartClientRequest(options=client_options(**fields)))
            except grpc.RpcError as error:
                code: grpc.StatusCode = error.code()
                return code
            return grpc.StatusCode.OK

        eventually(
            lambda: start_client(trust_bundle="partners") == grpc.StatusCode.PERMISSION_DENIED,
            "the service loads the new bundle",
        )
        assert start_client() == grpc.StatusCode.OK  # "default"
        assert start_client(trust_bundle="dev-ca") == grpc.StatusCode.OK  # the first-start grant
        keys(keystore, "allow", "partners", "local", "--trust-bundle")
        eventually(lambda: start_client(trust_bundle="partners") == grpc.StatusCode.OK, "grant")


# --- mutual-TLS callers: typed SANs ----------------------------------------------------------

CRAFTED: dict[str, list[x509.GeneralName]] = {
    # A SPIFFE ID, and a DNS SAN spelling the same string (not a DNS name: refused).
    "spiffe-alice": [x509.UniformResourceIdentifier("spiffe://test/alice")],
    "posing-alice": [x509.DNSName("spiffe://test/alice")],
    # Two certificates whose first SAN is "alice.test", once as a DNS name, once as a URI.
    "dns-alice": [x509.DNSName("alice.test")],
    "uri-alice": [x509.UniformResourceIdentifier("alice.test"), x509.DNSName("mallory.test")],
    "no-san": [],
}


@pytest.fixture(scope="module")
def crafted_pki(tmp_path_factory: pytest.TempPathFactory) -> ChannelPki:
    return make_channel_pki(tmp_path_factory.mktemp("crafted-pki"), (), CRAFTED)


@pytest.fixture
def mtls(
    start_service: StartService, crafted_pki: ChannelPki, tmp_path: Path
) -> Iterator[dict[str, pb_grpc.HandshakerStub]]:
    # Only the two alices are granted `localhost`; mallory (uri-alice) is not.
    keystore = development_keystore(tmp_path / "ks", "spiffe://test/alice", "dns:alice.test")
    service = start_service(*crafted_pki.serve_args(), keystore=keystore)
    channels = {name: service.channel(crafted_pki.credentials(name)) for name in CRAFTED}
    yield {name: handshaker_stub(channel) for name, channel in channels.items()}
    for channel in channels.values():
        channel.close()


def test_a_client_certificate_without_a_san_is_unauthenticated(
    mtls: dict[str, pb_grpc.HandshakerStub],
) -> None:
    stub = mtls["no-san"]
    error = rpc_error(lambda: stub.StartClient(pb.StartClientRequest(options=client_options())))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "subjectAltName" in error.details()
    with StreamHandshake(stub, client_options()) as stream:
        error = rpc_error(stream.step)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_dns_san_spelling_a_spiffe_id_is_not_a_dns_name_and_is_refused(
    mtls: dict[str, pb_grpc.HandshakerStub],
) -> None:
    stub = mtls["posing-alice"]
    error = rpc_error(lambda: stub.StartClient(pb.StartClientRequest(options=client_options())))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not a DNS name" in error.details()


@pytest.mark.parametrize(
    ("owner", "intruder"),
    [("dns-alice", "uri-alice"), ("spiffe-alice", "dns-alice"), ("dns-alice", "spiffe-alice")],
)
def test_callers_of_different_principals_cannot_reach_each_others_sessions(
    mtls: dict[str, pb_grpc.HandshakerStub], owner: str, intruder: str
) -> None:
    hello = mtls[owner].StartClient(pb.StartClientRequest(options=client_options()))
    session_id = hello.step.session_id
    other = mtls[intruder]
    for call in (
        lambda: other.Feed(pb.FeedRequest(session_id=session_id, in_bytes=b"\x16")),
        lambda: other.GetKeys(pb.GetKeysRequest(session_id=session_id)),
        lambda: other.Abort(pb.AbortRequest(session_id=session_id)),
    ):
        assert rpc_error(call).code() == grpc.StatusCode.NOT_FOUND
    mtls[owner].Abort(pb.AbortRequest(session_id=session_id))  # still the owner's


def test_credentials_follow_the_typed_principal_not_the_first_san_string(
    mtls: dict[str, pb_grpc.HandshakerStub],
) -> None:
    for granted in ("dns-alice", "spiffe-alice"):
        _, server = complete_handshake(
            mtls[granted], pb.ServerOptions(credential="localhost"), dev_client()
        )
        assert server.version == 0x0304

    # Its first SAN is the URI "alice.test": it is dns:mallory.test, granted nothing.
    mallory = mtls["uri-alice"]
    error = rpc_error(
        lambda: mallory.StartServer(
            pb.StartServerRequest(options=pb.ServerOptions(credential="localhost"))
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "dns:mallory.test" in error.details() and "'localhost'" in error.details()
    assert start_server(mallory) == grpc.StatusCode.PERMISSION_DENIED  # by SNI: nothing to pick
    error = rpc_error(lambda: mallory.StartClient(pb.StartClientRequest(options=dev_client())))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'dev-ca'" in error.details()


# --- Unix-socket callers --------------------------------------------------------------------


def test_a_unix_socket_is_owner_only_and_its_callers_are_their_uid(
    start_service: StartService,
) -> None:
    socket_path = short_socket_dir() / "hs.sock"
    service = start_service(listen=f"unix:{socket_path}")
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
    entry = next(e for e in service.log_entries() if e.get("message") == "listening")
    assert entry["unix_principal"] == "peer uid (SO_PEERCRED)"
    with service.channel() as channel:
        # The first-start policy grants our own uid the development credential.
        stub = handshaker_stub(channel)
        _, server = complete_handshake(stub, pb.ServerOptions(credential="localhost"), dev_client())
        assert server.version == 0x0304
    uses = service.entries_with("private key used")
    assert uses and {e["principal"] for e in uses} == {f"unix:uid={os.getuid()}"}


def test_a_unix_socket_shared_with_a_group_still_names_each_caller_by_its_uid(
    start_service: StartService,
) -> None:
    socket_path = short_socket_dir() / "hs.sock"
    gid = os.getgid()
    service = start_service("--unix-socket-group", str(gid), listen=f"unix:{socket_path}")
    mode = socket_path.stat()
    assert stat.S_IMODE(mode.st_mode) == 0o660 and mode.st_gid == gid
    with service.channel() as channel:
        # Anyone in the group can connect, but each caller is still its own uid, which
        # the first-start policy grants the development credential.
        stub = handshaker_stub(channel)
        assert start_server(stub, credential="localhost") == grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("listen", "group", "message"),
    [
        ("127.0.0.1:0", "0", "--unix-socket-group needs --listen unix:PATH"),
        ("unix:/tmp/hs-never.sock", "no-such-group-here", "no group named 'no-such-group-here'"),
    ],
)
def test_a_unix_socket_group_that_cannot_apply_is_refused_at_start(
    tmp_path: Path, listen: str, group: str, message: str
) -> None:
    result = subprocess.run(
        [str(HANDSHAKER), "serve", "--listen", listen, "--unix-socket-group", group,
         "--keystore", str(tmp_path / "ks")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
