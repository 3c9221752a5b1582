"""`handshaker connect` against openssl s_server and a Python ssl server."""

from __future__ import annotations

import socket

import pytest
from clients_kit import (
    Service,
    connect_command,
    echo_upper,
    s_server,
    server_context,
    tcp_server,
)
from conftest import CLIENT_CREDENTIAL

pytestmark = pytest.mark.interop


def _server_files(service: Service) -> list[str]:
    return [
        "-cert", str(service.cert_file("localhost")), "-key", str(service.key_file("localhost"))
    ]


def test_connect_to_openssl_s_server_www(service: Service, openssl: str) -> None:
    with s_server(openssl, *_server_files(service), "-www") as (_, port):
        result = connect_command(
            service, f"localhost:{port}", "--ca-file", str(service.ca_file),
            stdin=b"GET / HTTP/1.0\r\n\r\n",
        )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(b"HTTP/1.0 200 ok\r\n")
    assert b"TLSv1.3" in result.stdout  # s_server -www reports the session it saw
    stderr = result.stderr.decode()
    assert "protocol: TLSv1.3" in stderr
    assert "cipher: TLS_" in stderr
    assert "peer: CN=localhost" in stderr


def test_connect_to_openssl_s_server_rev(service: Service, openssl: str) -> None:
    with s_server(openssl, *_server_files(service), "-rev") as (_, port):
        result = connect_command(
            service, f"127.0.0.1:{port}", "--server-name", "localhost",
            "--ca-file", str(service.ca_file), stdin=b"reverse me\n",
        )
    assert result.returncode == 0, result.stderr.decode()
    assert b"em esrever" in result.stdout


def test_connect_to_a_python_ssl_server_with_alpn(service: Service) -> None:
    context = server_context(service, alpn=["h2", "http/1.1"])
    with tcp_server(echo_upper, wrap=lambda s: context.wrap_socket(s, server_side=True)) as server:
        result = connect_command(
            service, f"localhost:{server.port}", "--ca-file", str(service.ca_file),
            "--alpn", "http/1.1,h2", stdin=b"shout this\n",
        )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"SHOUT THIS\n"
    # The server's preference wins (OpenSSL under Python's ssl picks from its own list).
    assert "alpn: h2" in result.stderr.decode()


def test_connect_finds_the_service_with_the_handshaker_option(service: Service) -> None:
    context = server_context(service)
    with tcp_server(echo_upper, wrap=lambda s: context.wrap_socket(s, server_side=True)) as server:
        result = connect_command(
            Service("127.0.0.1:1", service.keystore, service.process),  # HANDSHAKER_ADDR is wrong
            f"localhost:{server.port}", "--ca-file", str(service.ca_file),
            "--handshaker", service.address, stdin=b"via the option\n",
        )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"VIA THE OPTION\n"


def test_failed_validation_exits_non_zero_with_the_alert(service: Service) -> None:
    context = server_context(service)
    with tcp_server(echo_upper, wrap=lambda s: context.wrap_socket(s, server_side=True)) as server:
        # Without --ca-file the service's default trust bundle decides; pin a wrong CA instead.
        wrong_ca = service.cert_file(CLIENT_CREDENTIAL)  # a leaf, not the issuing CA
        result = connect_command(
            service, f"localhost:{server.port}", "--ca-file", str(wrong_ca), stdin=b"never sent\n"
        )
    assert result.returncode != 0
    stderr = result.stderr.decode()
    assert "handshake failed: unknown_ca (48)" in stderr
    assert result.stdout == b""


def test_wrong_server_name_fails_validation(service: Service) -> None:
    context = server_context(service)
    with tcp_server(echo_upper, wrap=lambda s: context.wrap_socket(s, server_side=True)) as server:
        result = connect_command(
            service, f"127.0.0.1:{server.port}", "--server-name", "not-localhost.test",
            "--ca-file", str(service.ca_file),
        )
    assert result.returncode != 0
    assert "handshake failed: " in result.stderr.decode()


def test_connect_with_a_key_against_s_server_verify(service: Service, openssl: str) -> None:
    with s_server(
        openssl, *_server_files(service), "-Verify", "1", "-CAfile", str(service.ca_file), "-www"
    ) as (server, port):
        result = connect_command(
            service, f"localhost:{port}", "--ca-file", str(service.ca_file),
            "--key", CLIENT_CREDENTIAL, stdin=b"GET / HTTP/1.0\r\n\r\n",
        )
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.startswith(b"HTTP/1.0 200 ok\r\n")
        server.wait_for(r"depth=0 CN ?= ?client1\.test")


def test_connect_without_a_key_is_refused_by_s_server_verify(
    service: Service, openssl: str
) -> None:
    with s_server(
        openssl, *_server_files(service), "-Verify", "1", "-CAfile", str(service.ca_file), "-www"
    ) as (_, port):
        result = connect_command(
            service, f"localhost:{port}", "--ca-file", str(service.ca_file),
            stdin=b"GET / HTTP/1.0\r\n\r\n",
        )
    assert result.returncode != 0
    assert b"HTTP/1.0 200" not in result.stdout
    assert "certificate_required (116)" in result.stderr.decode()


def test_a_closed_port_is_reported(service: Service) -> None:
    result = connect_command(service, "127.0.0.1:1", "--ca-file", str(service.ca_file))
    assert result.returncode == 1
    assert "cannot connect to 127.0.0.1:1" in result.stderr.decode()


@pytest.mark.parametrize("server_name", [None, "127.0.0.1"])
def test_connect_to_an_ip_address_sends_no_sni_and_checks_the_ip_san(
    service: Service, server_name: str | None
) -> None:
    """A host given as an IP literal is ClientOptions.expected_ip_address: the
    certificate's iPAddress SAN (the development credential has IP:127.0.0.1) is
    checked, and no SNI goes out (RFC 6066 permits no IP literal in HostName)."""
    context = server_context(service)
    sni: list[str | None] = []
    context.sni_callback = lambda _sock, name, _context: sni.append(name)  # type: ignore[assignment,func-returns-value]
    with tcp_server(echo_upper, wrap=lambda s: context.wrap_socket(s, server_side=True)) as server:
        extra = ["--server-name", server_name] if server_name else []
        result = connect_command(
            service, f"127.0.0.1:{server.port}", *extra, "--ca-file", str(service.ca_file),
            stdin=b"by address\n",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"BY ADDRESS\n"
    assert sni == [None]


def _answers_unless_closed_first(conn: socket.socket) -> None:
    """An HTTP-like server that, as many do, drops a connection at its close_notify
    without answering the request that came before it."""
    request = b""
    while b"\r\n\r\n" not in request:
        data = conn.recv(4096)
        if not data:
            return
        request += data
    conn.settimeout(2)
    try:
        if not conn.recv(4096):
            return  # close_notify: gone without an answer
    except TimeoutError:
        pass
    conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nanswered\n")


@pytest.mark.parametrize("ign_eof", [False, True])
def test_ign_eof_keeps_reading_from_a_server_that_drops_at_close_notify(
    service: Service, ign_eof: bool
) -> None:
    context = server_context(service)
    with tcp_server(
        _answers_unless_closed_first, wrap=lambda s: context.wrap_socket(s, server_side=True)
    ) as server:
        result = connect_command(
            service, f"localhost:{server.port}", "--ca-file", str(service.ca_file),
            *(["--ign-eof"] if ign_eof else []),
            stdin=b"GET / HTTP/1.0\r\n\r\n",
        )
    assert result.returncode == 0, result.stderr.decode()
    if ign_eof:
        assert result.stdout == b"HTTP/1.0 200 OK\r\n\r\nanswered\n"
    else:
        assert result.stdout == b""
