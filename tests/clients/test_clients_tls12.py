"""TLS 1.2 through the service end to end: `connect`, `terminate` and the Python client's
record layer against OpenSSL and Python's ssl pinned to TLS 1.2, application data both ways."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator

import handshaker_client as hc
import pytest
from clients_kit import (
    HANDSHAKER,
    Service,
    connect_command,
    echo_upper,
    free_port,
    running,
    tcp_server,
)
from clients_kit import terminate as terminate_process
from conftest import CLIENT_CREDENTIAL
from handshaker_client import Tls12RecordLayer, connect, server_options, wrap_server_socket

pytestmark = pytest.mark.interop

TLS1_2, TLS1_3 = 0x0303, 0x0304
RSA_AES_128_GCM = 0x009C  # TLS_RSA_WITH_AES_128_GCM_SHA256, opt-in
# More than one record each way, so fragmenting and sequence numbers are exercised.
BIG = bytes(range(256)) * 200


@contextlib.contextmanager
def s_server_tls12(openssl: str, service: Service, *args: str) -> Iterator[int]:
    port = free_port()
    command = [
        openssl, "s_server", "-tls1_2", "-accept", f"127.0.0.1:{port}",
        "-cert", str(service.cert_file("localhost")), "-key", str(service.key_file("localhost")),
        *args,
    ]
    with running(command, stdin=subprocess.PIPE) as process:
        process.wait_for(r"^ACCEPT", stream="stdout")
        yield port


def tls12_server_context(service: Service, *, ciphers: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(service.cert_file("localhost"), service.key_file("localhost"))
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


def test_connect_to_a_tls12_only_openssl_server(service: Service, openssl: str) -> None:
    with s_server_tls12(openssl, service, "-rev") as port:
        result = connect_command(
            service, f"127.0.0.1:{port}", "--server-name", "localhost",
            "--ca-file", str(service.ca_file), stdin=b"reverse me over TLS 1.2\n",
        )
    assert result.returncode == 0, result.stderr.decode()
    assert b"2.1 SLT revo em esrever" in result.stdout
    stderr = result.stderr.decode()
    assert "protocol: TLSv1.2" in stderr
    assert "cipher: TLS_ECDHE_ECDSA_WITH_" in stderr


def test_connect_max_version_1_2_against_a_tls13_capable_server(
    service: Service, openssl: str
) -> None:
    port = free_port()
    command = [
        openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-www",
        "-cert", str(service.cert_file("localhost")), "-key", str(service.key_file("localhost")),
    ]
    with running(command, stdin=subprocess.PIPE) as process:
        process.wait_for(r"^ACCEPT", stream="stdout")
        result = connect_command(
            service, f"localhost:{port}", "--ca-file", str(service.ca_file),
            "--max-version", "1.2", stdin=b"GET / HTTP/1.0\r\n\r\n",
        )
    assert result.returncode == 0, result.stderr.decode()
    assert b"Protocol  : TLSv1.2" in result.stdout  # s_server -www reports what it saw
    assert "protocol: TLSv1.2" in result.stderr.decode()


def test_connect_min_version_1_3_refuses_a_tls12_server(service: Service, openssl: str) -> None:
    with s_server_tls12(openssl, service, "-rev") as port:
        result = connect_command(
            service, f"localhost:{port}", "--ca-file", str(service.ca_file),
            "--min-version", "1.3",
        )
    assert result.returncode == 1
    assert "protocol_version" in result.stderr.decode()


def test_connect_rejects_an_unknown_version_flag(service: Service) -> None:
    result = connect_command(service, "localhost:1", "--max-version", "1.1")
    assert result.returncode == 2
    assert "1.2 or 1.3" in result.stderr.decode()


@pytest.mark.parametrize(
    "ciphers",
    ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
     "ECDHE-ECDSA-CHACHA20-POLY1305"],
)
def test_python_client_and_python_ssl_server_exchange_data(service: Service, ciphers: str) -> None:
    context = tls12_server_context(service, ciphers=ciphers)
    with tcp_server(echo_upper, wrap=lambda s: context.wrap_socket(s, server_side=True)) as server:
        tls = connect(
            "localhost", server.port, ca_pem=service.ca_pem, handshaker=service.address,
            timeout=20,
        )
        try:
            assert tls.version == TLS1_2
            assert isinstance(tls.record_layer, Tls12RecordLayer)
            assert tls.keys.read.secret == b""
            assert tls.keys.tls12 is not None and tls.keys.tls12.extended_master_secret
            assert tls.keys.exporter_master_secret == b""
            tls.sendall(BIG[:100] + b"\n")
            received = b""
            while not received.endswith(b"\n"):
                received += tls.recv(65536)
            assert received == BIG[:100].upper() + b"\n"
        finally:
            tls.close()


def _tls12_client_exchange(port: int, ca_file: str, payload: bytes) -> tuple[str | None, bytes]:
    context = ssl.create_default_context(cafile=ca_file)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw, context.wrap_socket(
        raw, server_hostname="localhost"
    ) as tls:
        tls.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = tls.recv(65536)
            if not chunk:
                break
            received += chunk
        return tls.version(), received


def test_python_server_wrap_serves_a_tls12_client(service: Service) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    outcome: dict[str, object] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        tls = wrap_server_socket(conn, credential="localhost", handshaker=service.address)
        try:
            outcome["version"] = tls.version
            data = b""
            while len(data) < len(BIG):
                data += tls.recv(65536)
            tls.sendall(data[::-1])
        finally:
            tls.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        version, received = _tls12_client_exchange(port, str(service.ca_file), BIG)
    finally:
        thread.join(timeout=30)
        listener.close()
    assert version == "TLSv1.2"
    assert outcome["version"] == TLS1_2
    assert received == BIG[::-1]


def test_terminate_serves_openssl_s_client_over_tls12_with_a_client_certificate(
    service: Service, openssl: str
) -> None:
    with terminate_process(
        service, "--key", "localhost", "--http-hello", "--client-auth", "required",
        "--client-ca", str(service.ca_file),
    ) as (process, port):
        request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        result = subprocess.run(
            [openssl, "s_client", "-tls1_2", "-connect", f"127.0.0.1:{port}",
             "-servername", "localhost", "-CAfile", str(service.ca_file), "-verify_return_error",
             "-cert", str(service.cert_file(CLIENT_CREDENTIAL)),
             "-key", str(service.key_file(CLIENT_CREDENTIAL)), "-ign_eof", "-quiet"],
            input=request, capture_output=True, timeout=30, check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert b"200 OK" in result.stdout
        assert b"hello from handshaker" in result.stdout
        process.wait_for(r"127\.0\.0\.1:\d+: TLSv1\.2 ")


def test_terminate_max_version_1_2_serves_a_tls13_capable_client(service: Service) -> None:
    with tcp_server(echo_upper) as upstream, terminate_process(
        service, "--key", "localhost", "--upstream", f"127.0.0.1:{upstream.port}",
        "--max-version", "1.2",
    ) as (_, port):
        context = ssl.create_default_context(cafile=str(service.ca_file))
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw, context.wrap_socket(
            raw, server_hostname="localhost"
        ) as tls:
            assert tls.version() == "TLSv1.2"
            tls.sendall(b"upper me\n")
            received = b""
            while not received.endswith(b"\n"):
                received += tls.recv(4096)
    assert received == b"UPPER ME\n"


def test_curl_tls_max_1_2_through_terminate(service: Service, curl: str) -> None:
    with terminate_process(service, "--key", "localhost", "--http-hello") as (process, port):
        url = f"https://localhost:{port}/"
        result = subprocess.run(
            [curl, "-sS", "-v", "--tls-max", "1.2", "--cacert", str(service.ca_file), url],
            capture_output=True, timeout=30, check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout == b"hello from handshaker\n"
        assert "TLSv1.2" in result.stderr.decode()
        process.wait_for(r"127\.0\.0\.1:\d+: TLSv1\.2 TLS_ECDHE_ECDSA_\S+ group=\S+ alpn=http/1\.1")


def test_the_opt_in_rsa_key_exchange_through_the_service_is_audited(service: Service) -> None:
    """Server role with TLS_RSA_WITH_AES_128_GCM_SHA256 named in the options: the keystore's
    RSA key decrypts the premaster secret, and the audit log says so."""
    subprocess.run(
        [str(HANDSHAKER), "keys", "generate", "rsa-kex", "--key-type", "rsa-2048",
         "--san", "DNS:localhost", "--allow", "local", "--keystore", str(service.keystore)],
        check=True, capture_output=True,
    )  # fmt: skip
    options = server_options(credential="rsa-kex", cipher_suites=[RSA_AES_128_GCM])
    deadline = time.monotonic() + 10
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    outcome: dict[str, object] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        tls = wrap_server_socket(conn, options=options, handshaker=service.address)
        try:
            outcome["suite"] = tls.cipher_suite
            tls.sendall(tls.recv(1024).upper())
        finally:
            tls.close()

    while True:  # the keystore is re-read at most once a second
        with hc.HandshakerClient(service.address) as client:
            try:
                client.abort(client.start_server(options).session_id)
                break
            except hc.HandshakerRpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    context = ssl.create_default_context(cafile=str(service.ca_file))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-GCM-SHA256")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw, context.wrap_socket(
            raw, server_hostname="localhost"
        ) as tls:
            assert tls.cipher()[0] == "AES128-GCM-SHA256"
            tls.sendall(b"no forward secrecy\n")
            assert tls.recv(1024) == b"NO FORWARD SECRECY\n"
    finally:
        thread.join(timeout=30)
        listener.close()
    assert outcome["suite"] == RSA_AES_128_GCM
    service.process.wait_for(r'"operation": "decrypt".*"credential": "rsa-kex"|'
                             r'"credential": "rsa-kex".*"operation": "decrypt"')  # fmt: skip
