"""handshaker_client against a real service: sync and asyncio adapters, errors, KeyUpdate."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable

import grpc
import handshaker_client as hc
import pytest
from clients_kit import (
    Service,
    client_context,
    echo_upper,
    s_server,
    server_context,
    tcp_server,
)
from conftest import CLIENT_CREDENTIAL

APIS = ["stream", "unary"]


@pytest.mark.parametrize("api", APIS)
def test_connect_to_a_python_ssl_server(service: Service, api: hc.sockets.Api) -> None:
    context = server_context(service, alpn=["h2", "http/1.1"])
    with tcp_server(echo_upper, wrap=lambda s: context.wrap_socket(s, server_side=True)) as server:
        tls = hc.connect(
            "localhost", server.port, ca_pem=service.ca_pem, alpn=["http/1.1"],
            handshaker=service.address, api=api,
        )
        with tls:
            tls.sendall(b"hello through the service")
            assert tls.recv(1024) == b"HELLO THROUGH THE SERVICE"
            assert tls.alpn_protocol == "http/1.1"
            assert tls.version == 0x0304
            assert tls.peer.dns_sans == ("localhost",)
            assert tls.peer_certificates[0] == ssl.PEM_cert_to_DER_cert(
                service.cert_file("localhost").read_text()
            )
    assert server.errors == []


def test_large_writes_are_fragmented_and_reassembled(service: Service) -> None:
    context = server_context(service)
    payload = bytes(range(256)) * 1000
    with tcp_server(echo_upper, wrap=lambda s: context.wrap_socket(s, server_side=True)) as server:
        tls = hc.connect(
            "localhost", server.port, ca_pem=service.ca_pem, handshaker=service.address
        )
        with tls:
            tls.sendall(payload)
            received = b""
            while len(received) < len(payload):
                received += tls.recv(65536)
    assert received == payload.upper()


def test_makefile_reads_lines(service: Service) -> None:
    context = server_context(service)

    def greet(conn: socket.socket) -> None:
        conn.sendall(b"line one\nline two\n")
        conn.recv(1)

    with tcp_server(greet, wrap=lambda s: context.wrap_socket(s, server_side=True)) as server:
        tls = hc.connect(
            "localhost", server.port, ca_pem=service.ca_pem, handshaker=service.address
        )
        with tls:
            reader = tls.makefile("rb")
            assert reader.readline() == b"line one\n"
            assert reader.readline() == b"line two\n"


@pytest.mark.parametrize("api", APIS)
def test_wrap_server_socket_serves_a_python_ssl_client(
    service: Service, api: hc.sockets.Api
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    replies: list[bytes] = []

    def client() -> None:
        context = client_context(service.ca_file, alpn=["http/1.1"])
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"ping")
            replies.append(tls.recv(100))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        conn, _ = listener.accept()
        conn.settimeout(20)
        with hc.wrap_server_socket(
            conn, credential="localhost", alpn=["http/1.1"], handshaker=service.address, api=api
        ) as tls:
            assert tls.recv(100) == b"ping"
            tls.sendall(b"pong")
            assert tls.alpn_protocol == "http/1.1"
    finally:
        thread.join(20)
        listener.close()
    assert replies == [b"pong"]


def test_a_failed_validation_raises_after_the_alert_reached_the_peer(service: Service) -> None:
    context = server_context(service)
    other_ca = ssl.DER_cert_to_PEM_cert(_unrelated_ca_der())
    with tcp_server(echo_upper, wrap=lambda s: context.wrap_socket(s, server_side=True)) as server:
        with pytest.raises(hc.HandshakeError) as raised:
            hc.connect("localhost", server.port, ca_pem=other_ca, handshaker=service.address)
        for _ in range(100):
            if server.errors:
                break
            threading.Event().wait(0.05)
    assert raised.value.alert == hc.AlertDescription.UNKNOWN_CA
    assert raised.value.alert_name == "unknown_ca"
    assert not raised.value.sent_by_peer
    assert len(server.errors) == 1
    assert "UNKNOWN_CA" in str(server.errors[0]).upper()


def _unrelated_ca_der() -> bytes:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unrelated test CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def test_rpc_errors_carry_the_status_code(service: Service) -> None:
    with hc.HandshakerClient(service.address) as client, pytest.raises(
        hc.HandshakerRpcError
    ) as raised:
        client.feed("no-such-session", b"\x16\x03\x01\x00\x00")
    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def test_the_address_comes_from_handshaker_addr(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANDSHAKER_ADDR", service.address)
    with hc.HandshakerClient() as client:
        step = client.start_client(hc.client_options("localhost", ca_pem=service.ca_pem))
        assert client.address == service.address
        assert step.out_bytes[:1] == b"\x16"  # the ClientHello record
        client.abort(step.session_id)


def test_asyncio_open_connection_and_start_server(service: Service) -> None:
    async def scenario() -> tuple[bytes, str | None]:
        async def uppercase(reader: hc.TLSStreamReader, writer: hc.TLSStreamWriter) -> None:
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()

        async with hc.AsyncHandshakerClient(service.address) as handshaker:
            server = await hc.start_server(
                uppercase, "127.0.0.1", 0, credential="localhost", alpn=["h2"],
                handshaker=handshaker,
            )
            port = server.sockets[0].getsockname()[1]
            try:
                reader, writer = await hc.open_connection(
                    "localhost", port, ca_pem=service.ca_pem, alpn=["h2"], handshaker=handshaker,
                    api="unary",
                )
                writer.write(b"asyncio line\n")
                await writer.drain()
                reply = await reader.readline()
                alpn = writer.alpn_protocol
                assert await reader.read() == b""  # the server closed with close_notify
                writer.close()
                await writer.wait_closed()
            finally:
                server.close()
                await server.wait_closed()
        return reply, alpn

    reply, alpn = asyncio.run(scenario())
    assert reply == b"ASYNCIO LINE\n"
    assert alpn == "h2"


def test_asyncio_server_and_clients_share_multiplex_streams(service: Service) -> None:
    """30 Python ssl clients and 10 handshaker clients at once, every handshake (both roles)
    on one AsyncHandshakerClient's Multiplex streams."""
    context = client_context(service.ca_file)

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        async def uppercase(reader: hc.TLSStreamReader, writer: hc.TLSStreamWriter) -> None:
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()

        async def ssl_client(number: int) -> bytes:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=context, server_hostname="localhost"
            )
            writer.write(f"ssl client {number}\n".encode())
            reply = await reader.readline()
            writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await writer.wait_closed()
            return reply

        async def service_client(number: int) -> bytes:
            reader, writer = await hc.open_connection(
                "localhost", port, ca_pem=service.ca_pem, handshaker=handshaker, api="multiplex"
            )
            writer.write(f"service client {number}\n".encode())
            reply = await reader.readline()
            writer.close()
            await writer.wait_closed()
            return reply

        async with hc.AsyncHandshakerClient(service.address) as handshaker:
            server = await hc.start_server(
                uppercase, "127.0.0.1", 0, credential="localhost", handshaker=handshaker,
                api="multiplex",
            )
            port = server.sockets[0].getsockname()[1]
            try:
                replies = await asyncio.gather(
                    asyncio.gather(*(ssl_client(n) for n in range(30))),
                    asyncio.gather(*(service_client(n) for n in range(10))),
                )
            finally:
                server.close()
                await server.wait_closed()
        return replies[0], replies[1]

    ssl_replies, service_replies = asyncio.run(scenario())
    assert ssl_replies == [f"SSL CLIENT {n}\n".encode() for n in range(30)]
    assert service_replies == [f"SERVICE CLIENT {n}\n".encode() for n in range(10)]


def test_a_multiplexed_sessions_misuse_fails_only_that_session(service: Service) -> None:
    async def scenario() -> tuple[hc.HandshakerRpcError, hc.Step, hc.Step]:
        async with hc.AsyncHandshakerClient(service.address) as handshaker:
            mux = handshaker.multiplexer()
            client = mux.session(hc.client_options("localhost", ca_pem=service.ca_pem))
            server = mux.session(hc.server_options())
            bad = mux.session(hc.server_options(credential="no-such-credential"))
            hello = await client.start()
            started, refused = await asyncio.gather(
                server.start(hello.out_bytes), bad.start(b"\x16"), return_exceptions=True
            )
            assert isinstance(refused, hc.HandshakerRpcError)
            assert isinstance(started, hc.Step)
            finished = await client.feed(started.out_bytes)
            done = await server.feed(finished.out_bytes)
            with pytest.raises(RuntimeError, match="ended"):
                await bad.feed(b"")
            return refused, finished, done

    refused, finished, done = asyncio.run(scenario())
    assert refused.code == grpc.StatusCode.NOT_FOUND
    assert finished.complete and done.complete
    assert finished.keys is not None and done.keys is not None
    assert finished.keys.write.key == done.keys.read.key


def test_asyncio_open_connection_against_python_ssl(service: Service) -> None:
    context = server_context(service)

    async def scenario(port: int) -> bytes:
        reader, writer = await hc.open_connection(
            "localhost", port, ca_pem=service.ca_pem, handshaker=service.address
        )
        writer.write(b"over asyncio")
        await writer.drain()
        reply = await reader.readexactly(len(b"over asyncio"))
        writer.close()
        await writer.wait_closed()
        return reply

    with tcp_server(echo_upper, wrap=lambda s: context.wrap_socket(s, server_side=True)) as server:
        assert asyncio.run(scenario(server.port)) == b"OVER ASYNCIO"


def _receive_until(tls: hc.TLSSocket, condition: Callable[[], bool]) -> None:
    """Process records (expecting no application data) until `condition` holds."""
    tls.settimeout(0.2)
    try:
        for _ in range(100):
            if condition():
                return
            with contextlib.suppress(TimeoutError):
                assert tls.recv() == b"", "unexpected application data"
        raise AssertionError("the condition never held")
    finally:
        tls.settimeout(20)


@pytest.mark.interop
def test_key_update_both_ways_with_openssl_s_server(service: Service, openssl: str) -> None:
    """s_server's `K` command sends KeyUpdate(update_requested); we answer and initiate one."""
    with s_server(
        openssl, "-cert", str(service.cert_file("localhost")),
        "-key", str(service.key_file("localhost")),
    ) as (server, port), hc.connect(
        "localhost", port, ca_pem=service.ca_pem, handshaker=service.address, timeout=20
    ) as tls:
        server.wait_for("CIPHER is", stream="stdout")
        server.write(b"K\n")
        # s_server takes a command only when it arrives alone on its stdin: wait
        # until the KeyUpdate has reached us before sending it data.
        _receive_until(tls, lambda: tls.record_layer.key_updates_received == 1)
        server.write(b"from s_server after its KeyUpdate\n")
        received = b""
        while b"\n" not in received:
            received += tls.recv()
        assert received == b"from s_server after its KeyUpdate\n"
        assert tls.record_layer.key_updates_received == 1
        # Our update_not_requested answer is owed: it goes out ahead of our next record.
        assert tls.record_layer.key_updates_sent == 0
        tls.sendall(b"client data under the answered key\n")
        assert tls.record_layer.key_updates_sent == 1
        server.wait_for("client data under the answered key", stream="stdout")
        tls.key_update(request_peer_update=True)
        tls.sendall(b"client data after its own KeyUpdate\n")
        server.wait_for("client data after its own KeyUpdate", stream="stdout")
        server.write(b"reply under s_server's next key\n")
        received = b""
        while b"\n" not in received:
            received += tls.recv()
        assert received == b"reply under s_server's next key\n"
        assert tls.record_layer.key_updates_received == 2


@pytest.mark.interop
def test_mutual_tls_with_a_keystore_credential(service: Service, openssl: str) -> None:
    with s_server(
        openssl, "-cert", str(service.cert_file("localhost")),
        "-key", str(service.key_file("localhost")), "-Verify", "1",
        "-CAfile", str(service.ca_file),
    ) as (server, port):
        with hc.connect(
            "localhost", port, ca_pem=service.ca_pem, credential=CLIENT_CREDENTIAL,
            handshaker=service.address, timeout=20,
        ) as tls:
            tls.sendall(b"from the client credential\n")
            server.wait_for("from the client credential", stream="stdout")
        server.wait_for(r"subject=CN ?= ?client1\.test", stream="stdout")


def test_the_client_names_every_group_the_engine_has() -> None:
    from handshaker.tls import NamedGroup as EngineNamedGroup

    assert {g.name: int(g) for g in hc.NamedGroup} == {g.name: int(g) for g in EngineNamedGroup}
    assert hc.constants.group_name(0x11EB) == "secp256r1mlkem768"
    assert hc.constants.group_name(0x0100) == "ffdhe2048"


@pytest.mark.parametrize(
    ("name", "server_name", "address"),
    [
        ("localhost", "localhost", ""),
        ("127.0.0.1", "", "127.0.0.1"),
        ("::1", "", "::1"),
        ("[2001:DB8::7]", "", "2001:db8::7"),
    ],
)
def test_client_options_put_an_ip_literal_in_expected_ip_address(
    name: str, server_name: str, address: str
) -> None:
    options = hc.client_options(name)
    assert (options.server_name, options.expected_ip_address) == (server_name, address)


def test_client_options_refuse_an_ip_name_and_an_expected_address_together() -> None:
    with pytest.raises(ValueError, match="not both"):
        hc.client_options("127.0.0.1", expected_ip_address="127.0.0.2")
