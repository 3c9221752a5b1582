"""`handshaker terminate` against curl, openssl s_client and Python's ssl, in both modes."""

from __future__ import annotations

import http.client
import http.server
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator

import pytest
from clients_kit import Service, client_context, echo, tcp_server, terminate
from conftest import CLIENT_CREDENTIAL

pytestmark = pytest.mark.interop


def test_curl_gets_200_twice_on_one_connection(service: Service, curl: str) -> None:
    with terminate(service, "--key", "localhost", "--http-hello") as (process, port):
        url = f"https://localhost:{port}/"
        result = subprocess.run(
            [curl, "-sS", "-v", "--cacert", str(service.ca_file), url, url + "again"],
            capture_output=True, timeout=30, check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout == b"hello from handshaker\n" * 2
        log = result.stderr.decode()
        assert "TLSv1.3" in log
        assert "Re-using existing connection" in log or "Reusing existing connection" in log
        line = process.wait_for(r"127\.0\.0\.1:\d+: TLSv1\.3 \S+ group=\S+ alpn=http/1\.1")
        assert "secret" not in line.string


def test_python_ssl_keeps_the_connection_alive(service: Service) -> None:
    with terminate(service, "--key", "localhost", "--http-hello") as (_, port):
        context = client_context(service.ca_file, alpn=["http/1.1"])
        connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=20)
        try:
            for path in ("/one", "/two"):
                connection.request("GET", path)
                response = connection.getresponse()
                assert response.status == 200
                assert response.read() == b"hello from handshaker\n"
            connection.request("POST", "/with-body", body=b"x" * 5000)
            response = connection.getresponse()
            assert response.status == 200
            assert response.read() == b"hello from handshaker\n"
            assert connection.sock is not None
            assert connection.sock.version() == "TLSv1.3"  # type: ignore[attr-defined]
        finally:
            connection.close()


def test_openssl_s_client_gets_200(service: Service, openssl: str) -> None:
    with terminate(service, "--key", "localhost", "--http-hello") as (_, port):
        request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        result = subprocess.run(
            [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
             "-CAfile", str(service.ca_file), "-verify_return_error", "-quiet", "-tls1_3"],
            input=request, capture_output=True, timeout=30, check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Connection: close\r\n" in result.stdout
        assert result.stdout.endswith(b"\r\n\r\nhello from handshaker\n")


def test_upstream_mode_proxies_a_python_ssl_client_to_an_echo_server(service: Service) -> None:
    with tcp_server(echo) as upstream, terminate(
        service, "--key", "localhost", "--upstream", f"127.0.0.1:{upstream.port}"
    ) as (_, port):
        context = client_context(service.ca_file)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=20) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            payload = bytes(range(256)) * 300
            tls.sendall(payload)
            received = b""
            while len(received) < len(payload):
                received += tls.recv(65536)
            assert received == payload


@pytest.fixture
def http_upstream() -> Iterator[int]:
    class Hello(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = f"upstream saw {self.path}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_curl_through_upstream_mode_reaches_an_http_server(
    service: Service, curl: str, http_upstream: int
) -> None:
    with terminate(
        service, "--key", "localhost", "--upstream", f"127.0.0.1:{http_upstream}",
        "--alpn", "http/1.1",
    ) as (_, port):
        result = subprocess.run(
            [curl, "-sS", "--cacert", str(service.ca_file), f"https://localhost:{port}/path"],
            capture_output=True, timeout=30, check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout == b"upstream saw /path\n"


def test_s_client_key_update_reaches_terminate(service: Service, openssl: str) -> None:
    """s_client's `K` sends KeyUpdate(update_requested): terminate must answer and keep going."""
    with tcp_server(echo) as upstream, terminate(
        service, "--key", "localhost", "--upstream", f"127.0.0.1:{upstream.port}"
    ) as (_, port):
        client = subprocess.Popen(
            [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
             "-CAfile", str(service.ca_file), "-verify_return_error", "-tls1_3"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        try:
            assert client.stdin is not None and client.stdout is not None
            output = b""
            while b"Verify return code: 0" not in output:
                line = client.stdout.readline()
                assert line, output.decode()
                output += line
            client.stdin.write(b"before\n")
            client.stdin.flush()
            _read_line_containing(client, b"before")
            client.stdin.write(b"K\n")
            client.stdin.flush()
            _read_line_containing(client, b"KEYUPDATE")
            client.stdin.write(b"after the key update\n")
            client.stdin.flush()
            _read_line_containing(client, b"after the key update")
        finally:
            client.kill()
            client.wait()


def _read_line_containing(process: subprocess.Popen[bytes], needle: bytes) -> None:
    assert process.stdout is not None
    seen = b""
    while True:
        line = process.stdout.readline()
        assert line, f"{needle!r} never came back; output: {seen.decode()}"
        seen += line
        if needle in line:
            return


def test_mutual_tls_required_admits_a_client_certificate(service: Service) -> None:
    with terminate(
        service, "--key", "localhost", "--http-hello", "--client-auth", "required",
        "--client-ca", str(service.ca_file),
    ) as (process, port):
        cert = (service.cert_file(CLIENT_CREDENTIAL), service.key_file(CLIENT_CREDENTIAL))
        context = client_context(service.ca_file, cert=cert)
        connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=20)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            assert response.status == 200
            assert response.read() == b"hello from handshaker\n"
        finally:
            connection.close()
        process.wait_for(r"TLSv1\.3 .* client=CN=client1\.test")


def test_mutual_tls_required_refuses_a_client_without_certificate(service: Service) -> None:
    with terminate(
        service, "--key", "localhost", "--http-hello", "--client-auth", "required",
        "--client-ca", str(service.ca_file),
    ) as (process, port):
        context = client_context(service.ca_file)
        with (
            pytest.raises((ssl.SSLError, ConnectionError)) as raised,
            socket.create_connection(("127.0.0.1", port), timeout=20) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            # TLS 1.3: the client learns of the refusal on its first read.
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            tls.recv(100)
        assert "CERTIFICATE_REQUIRED" in str(raised.value).upper()
        process.wait_for(r"handshake failed: certificate_required \(116\)")


def test_client_auth_without_a_client_ca_is_a_usage_error(service: Service) -> None:
    from clients_kit import HANDSHAKER

    result = subprocess.run(
        [str(HANDSHAKER), "terminate", "--listen", "127.0.0.1:0", "--key", "localhost",
         "--http-hello", "--client-auth", "required"],
        capture_output=True, timeout=30, check=False,
    )
    assert result.returncode == 2
    assert b"--client-ca" in result.stderr


def test_a_tcp_probe_is_not_logged_but_a_failed_handshake_is(service: Service) -> None:
    # Health checks (a load balancer's, the kubelet's tcpSocket probe) connect and close.
    with terminate(service, "--key", "localhost", "--http-hello") as (process, port):
        for _ in range(3):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as half:
            half.sendall(b"\x16\x03\x01\x00\x40")  # a record header, then nothing
        context = client_context(service.ca_file, alpn=["http/1.1"])
        connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=20)
        try:
            connection.request("GET", "/")
            assert connection.getresponse().status == 200
        finally:
            connection.close()
        process.wait_for(r"127\.0\.0\.1:\d+: TLSv1\.3 ")
        # The half-sent ClientHello is reported; the probes are not.
        process.wait_for(r"connection closed during the handshake")
        assert "before its ClientHello" not in process.output()
