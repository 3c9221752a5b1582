"""One clear line for every failure a user can cause, and handshakes that cannot hang forever.

terminate and the Python client close a socket whose handshake has not completed
within --handshake-timeout, with a user_canceled alert where the peer can read it;
terminate refuses to start with a --key it cannot use or with no service; connect
names a service that is down; Ctrl-C is status 130 without a traceback. Every
peer is on 127.0.0.1 and every process is stopped by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import handshaker_client as hc
import pytest
from clients_kit import (
    HANDSHAKER,
    Service,
    client_context,
    free_port,
    running,
    terminate,
)

USER_CANCELED = bytes([21, 3, 3, 0, 2, 1, 90])


def _read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    sock.settimeout(limit)
    began = time.monotonic()
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data, time.monotonic() - began


def _one_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_terminate_closes_silent_and_trickling_sockets_at_the_deadline(
    service: Service,
) -> None:
    with terminate(service, "--key", "localhost", "--http-hello", "--handshake-timeout", "1") as (
        process,
        port,
    ):
        silent = socket.create_connection(("127.0.0.1", port))
        trickler = socket.create_connection(("127.0.0.1", port))
        # One whole record with the start of a ClientHello (claiming 100 bytes), then nothing.
        trickler.sendall(bytes([22, 3, 1, 0, 4, 1, 0, 0, 100]))
        with silent, trickler:
            for sock in (silent, trickler):
                data, waited = _read_until_closed(sock, 10)
                assert data == USER_CANCELED
                assert waited < 5
        process.wait_for(r"no ClientHello within 1 s; the connection was closed")
        process.wait_for(r"did not complete within 1 s; the connection was closed")
        # Legitimate work still completes.
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context(service.ca_file).wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert b"200 OK" in tls.recv(4096)


def test_the_python_client_gives_up_on_a_silent_server_with_an_alert(service: Service) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    received = b""

    with listener:
        port = listener.getsockname()[1]
        began = time.monotonic()
        with pytest.raises(hc.HandshakeTimeoutError):
            # The server accepts (in the backlog) and never answers.
            hc.connect(
                "127.0.0.1",
                port,
                server_name="localhost",
                ca_pem=service.ca_pem,
                handshaker=service.address,
                handshake_timeout=1,
            )
        assert time.monotonic() - began < 5
        conn, _ = listener.accept()
        with conn:
            received, _ = _read_until_closed(conn, 5)
    assert received.startswith(b"\x16\x03")  # the ClientHello
    assert received.endswith(USER_CANCELED)  # nothing came back: plaintext still reaches it


def test_the_asyncio_client_gives_up_on_a_silent_tls_client(service: Service) -> None:
    async def run() -> None:
        outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            async with hc.AsyncHandshakerClient(service.address) as client:
                try:
                    options = hc.server_options(credential="localhost")
                    await hc.tls_over_streams(reader, writer, client, options, handshake_timeout=1)
                except BaseException as error:
                    outcome.set_result(error)
                else:
                    outcome.set_result(None)
                finally:
                    writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            error = await asyncio.wait_for(outcome, 10)
            assert isinstance(error, hc.HandshakeTimeoutError)
            assert await asyncio.wait_for(reader.read(), 5) == USER_CANCELED
            writer.close()

    asyncio.run(run())


def _terminate_once(
    service: Service, *args: str, address: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            str(HANDSHAKER),
            "terminate",
            "--listen",
            "127.0.0.1:0",
            "--http-hello",
            *args,
            "--handshaker",
            address or service.address,
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )


def test_terminate_refuses_a_key_that_does_not_exist_at_start(service: Service) -> None:
    result = _terminate_once(service, "--key", "no-such-credential")
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert "--key no-such-credential" in line
    assert "keys list" in line


def test_terminate_refuses_a_key_the_caller_may_not_use_at_start(service: Service) -> None:
    subprocess.run(
        [
            str(HANDSHAKER),
            "keys",
            "generate",
            "not-for-local",
            "--san",
            "DNS:x.test",
            "--keystore",
            str(service.keystore),
        ],
        check=True,
        capture_output=True,
    )
    deadline = time.monotonic() + 10
    while True:
        result = _terminate_once(service, "--key", "not-for-local")
        if b"keys list" not in result.stderr or time.monotonic() > deadline:
            break  # the service has read the new credential (a second at most)
        time.sleep(0.2)
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert "--key not-for-local" in line
    assert "may not use" in line or "PERMISSION" in line.upper()
    assert "keys allow" in line


def test_terminate_and_connect_name_a_service_that_is_down(service: Service) -> None:
    down = f"127.0.0.1:{free_port()}"
    result = _terminate_once(service, "--key", "localhost", address=down)
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert "UNAVAILABLE" in line and "handshaker serve" in line and down in line

    with socket.create_server(("127.0.0.1", 0)) as peer:
        port = peer.getsockname()[1]
        result = subprocess.run(
            [
                str(HANDSHAKER),
                "connect",
                f"127.0.0.1:{port}",
                "--server-name",
                "localhost",
                "--handshaker",
                down,
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert "UNAVAILABLE" in line and "handshaker serve" in line


def test_ctrl_c_ends_terminate_and_connect_with_status_130_and_no_traceback(
    service: Service,
) -> None:
    with terminate(service, "--key", "localhost", "--http-hello") as (process, port):
        process.popen.send_signal(signal.SIGINT)
        assert process.popen.wait(10) == 130
        assert "Traceback" not in process.output()
        # connect, relaying stdin to a TLS server (terminate itself, started again).
    with terminate(service, "--key", "localhost", "--http-hello") as (_, port):
        command = [
            str(HANDSHAKER),
            "connect",
            f"127.0.0.1:{port}",
            "--server-name",
            "localhost",
            "--ca-file",
            str(service.ca_file),
        ]
        with running(command, env=service.env, stdin=subprocess.PIPE) as connect:
            connect.wait_for(r"protocol: TLS", stream="stderr")
            connect.popen.send_signal(signal.SIGINT)
            assert connect.popen.wait(10) == 130
            assert "Traceback" not in connect.output()


def test_a_taken_port_is_one_line_from_serve(service: Service) -> None:
    result = subprocess.run(
        [
            str(HANDSHAKER),
            "serve",
            "--listen",
            service.address,
            "--keystore",
            str(service.keystore),
            "--audit-log",
            "off",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    text = result.stderr.decode()
    assert "Traceback" not in text
    # Piped stderr (no terminal) carries only JSON lines; the refusal is one of them.
    entries = [json.loads(line) for line in text.splitlines()]
    refusals = [e for e in entries if e["level"] == "error"]
    assert len(refusals) == 1, text
    assert "in use" in refusals[0]["message"] and service.address in refusals[0]["message"]


def test_keys_ca_on_a_keystore_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "keystore"
    result = subprocess.run(
        [str(HANDSHAKER), "keys", "ca", "--keystore", str(missing)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "no keystore at" in _one_line(result.stderr)
    assert not missing.exists()


def test_a_credential_folder_that_cannot_be_read_is_unavailable(service: Service) -> None:
    # Made in a staging keystore and moved in whole with its key already unreadable: the
    # service (which rereads the folder every second) never sees a good version of it, which
    # it would rightly keep serving.
    staging = service.keystore.parent / "staging-broken"
    subprocess.run(
        [str(HANDSHAKER), "keys", "generate", "broken", "--san", "DNS:broken.test",
         "--keystore", str(staging)],
        check=True, capture_output=True,
    )  # fmt: skip
    (staging / "broken" / "tls.key").unlink()
    (staging / "broken" / "tls.key").mkdir()  # unreadable as a file, for root too
    # The grant first (`keys allow` wants a credential that loads, which this one never does).
    policy = service.keystore / "policy.toml"
    policy.write_text(policy.read_text() + '\n[credentials."broken"]\nserver = ["local"]\n')
    (staging / "broken").rename(service.keystore / "broken")
    key = service.key_file("broken")
    try:
        deadline = time.monotonic() + 10
        with hc.HandshakerClient(service.address) as client:
            while True:
                with pytest.raises(hc.HandshakerRpcError) as raised:
                    client.start_server(hc.server_options(credential="broken"))
                if raised.value.code.name == "UNAVAILABLE" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert raised.value.code.name == "UNAVAILABLE"
        assert "broken" in raised.value.details and "cannot be read" in raised.value.details
    finally:
        key.rmdir()


def test_an_upstream_that_refuses_is_logged(service: Service) -> None:
    closed = free_port()
    with terminate(service, "--key", "localhost", "--upstream", f"127.0.0.1:{closed}") as (
        process,
        port,
    ):
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context(service.ca_file).wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"hello")
            with contextlib.suppress(OSError):
                assert tls.recv(100) == b""
        process.wait_for(
            rf"the upstream 127\.0\.0\.1:{closed} cannot be reached: connection refused"
        )


def test_a_tls_peer_gets_an_alert_when_the_service_refuses(service: Service) -> None:
    def keys(*args: str) -> None:
        subprocess.run(
            [str(HANDSHAKER), "keys", *args, "--keystore", str(service.keystore)],
            check=True,
            capture_output=True,
        )

    keys("generate", "revocable", "--san", "DNS:localhost", "--allow", "local")
    deadline = time.monotonic() + 10
    with hc.HandshakerClient(service.address) as client:
        while True:  # the service reads the new credential within a second
            try:
                client.abort(
                    client.start_server(hc.server_options(credential="revocable")).session_id
                )
                break
            except hc.HandshakerRpcError:
                assert time.monotonic() < deadline, "the new credential never became usable"
                time.sleep(0.2)
    with terminate(service, "--key", "revocable", "--http-hello") as (_, port):
        keys("deny", "revocable", "local")
        deadline = time.monotonic() + 10
        while True:
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                    client_context(service.ca_file).wrap_socket(
                        raw, server_hostname="localhost"
                    ) as tls,
                ):
                    tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    tls.recv(100)
            except ssl.SSLError as error:
                assert "INTERNAL_ERROR" in str(error).upper(), error
                break
            assert time.monotonic() < deadline, "the revocation never took effect"
            time.sleep(0.2)


def test_wrap_server_socket_gives_up_on_a_silent_client_with_an_alert(service: Service) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as silent:
            accepted, _ = listener.accept()
            with accepted:
                began = time.monotonic()
                with pytest.raises(hc.HandshakeTimeoutError):
                    hc.wrap_server_socket(
                        accepted,
                        credential="localhost",
                        handshaker=service.address,
                        handshake_timeout=1,
                    )
                assert time.monotonic() - began < 5
                assert accepted.gettimeout() is None  # the caller's setting is back
            data, _ = _read_until_closed(silent, 5)
    # Nothing was exchanged, so the peer could read a plaintext user_canceled.
    assert data == USER_CANCELED
