"""Helpers for the client tests: subprocesses with their output, TLS and TCP peers on 127.0.0.1.

Every process and server started here is stopped by its context manager or
by the fixture that owns it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HANDSHAKER = Path(sys.executable).parent / "handshaker"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {package})")
    return path


class Process:
    """A subprocess whose stdout and stderr are read into lists of lines by threads."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> None:
        self.command = list(command)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        self.popen = subprocess.Popen(
            self.command,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self.popen.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.popen.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: object, lines: list[str]) -> None:
        assert stream is not None
        for raw in stream:  # type: ignore[attr-defined]
            with self._changed:
                lines.append(raw.decode("utf-8", "replace"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)

    def wait_for(self, pattern: str, *, stream: str = "any", timeout: float = START_TIMEOUT) -> (
        re.Match[str]
    ):
        """The first match of `pattern` in the output so far or to come."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                texts = {"stdout": self.stdout, "stderr": self.stderr}
                for name, lines in texts.items():
                    if stream in ("any", name):
                        for line in lines:
                            if match := regex.search(line):
                                return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.popen.poll() is not None and all(
                    not r.is_alive() for r in self._readers
                )):
                    raise AssertionError(
                        f"{pattern!r} never appeared from {self.command[:2]}:\n{self.output()}"
                    )
                self._changed.wait(min(remaining, 0.2))

    def write(self, data: bytes) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(data)
        self.popen.stdin.flush()

    def stop(self, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        for reader in self._readers:
            reader.join(5)
        return self.popen.returncode


@contextlib.contextmanager
def running(
    command: Sequence[str], *, env: dict[str, str] | None = None, stdin: int | None = None
) -> Iterator[Process]:
    process = Process(command, env=env, stdin=subprocess.DEVNULL if stdin is None else stdin)
    try:
        yield process
    finally:
        process.stop()


@dataclass
class Service:
    """A `handshaker serve` process and its keystore."""

    address: str
    keystore: Path
    process: Process

    @property
    def env(self) -> dict[str, str]:
        return {"HANDSHAKER_ADDR": self.address}

    @property
    def ca_file(self) -> Path:
        return self.keystore / "dev-ca" / "ca.crt"

    @property
    def ca_pem(self) -> str:
        return self.ca_file.read_text()

    def cert_file(self, name: str) -> Path:
        return self.keystore / name / "tls.crt"

    def key_file(self, name: str) -> Path:
        return self.keystore / name / "tls.key"

    def generate(self, name: str, *sans: str) -> None:
        """`handshaker keys generate NAME --san ... --allow local`: a credential issued by the
        development CA, usable by the tests (callers on loopback are `local`)."""
        san_args = [arg for san in sans for arg in ("--san", san)]
        subprocess.run(
            [
                HANDSHAKER, "keys", "generate", name, *san_args,
                "--allow", "local", "--keystore", self.keystore,
            ],
            check=True,
            capture_output=True,
        )


def start_service(keystore: Path, env: dict[str, str] | None = None) -> Service:
    port = free_port()
    address = f"127.0.0.1:{port}"
    process = Process(
        [str(HANDSHAKER), "serve", "--listen", address, "--keystore", str(keystore)], env=env
    )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if process.popen.poll() is not None or time.monotonic() > deadline:
                process.stop()
                raise RuntimeError(f"handshaker serve did not start:\n{process.output()}") from None
            time.sleep(0.05)
    return Service(address, keystore, process)


@contextlib.contextmanager
def terminate(service: Service, *args: str) -> Iterator[tuple[Process, int]]:
    """`handshaker terminate --listen 127.0.0.1:0 ...`; yields the process and its port."""
    command = [str(HANDSHAKER), "terminate", "--listen", "127.0.0.1:0", *args]
    with running(command, env=service.env) as process:
        match = process.wait_for(r"listening on 127\.0\.0\.1:(\d+)", stream="stderr")
        yield process, int(match.group(1))


@contextlib.contextmanager
def s_server(openssl: str, *args: str) -> Iterator[tuple[Process, int]]:
    """`openssl s_server -tls1_3` on a free port; its stdin is a pipe (for the K and k commands)."""
    port = free_port()
    command = [openssl, "s_server", "-tls1_3", "-accept", f"127.0.0.1:{port}", *args]
    with running(command, stdin=subprocess.PIPE) as process:
        process.wait_for(r"^ACCEPT", stream="stdout")
        yield process, port


def connect_command(service: Service, *args: str, stdin: bytes = b"", timeout: float = 30) -> (
    subprocess.CompletedProcess[bytes]
):
    return subprocess.run(
        [str(HANDSHAKER), "connect", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **service.env},
    )


# TCP and TLS peers in threads


@dataclass
class ThreadedServer:
    port: int
    errors: list[BaseException] = field(default_factory=list)
    accepted: list[object] = field(default_factory=list)


@contextlib.contextmanager
def tcp_server(
    handle: Callable[[socket.socket], None],
    *,
    wrap: Callable[[socket.socket], socket.socket] | None = None,
) -> Iterator[ThreadedServer]:
    """A server on 127.0.0.1:0 that runs `handle` per connection in a thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = ThreadedServer(listener.getsockname()[1])
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        wrapped = conn
        try:
            conn.settimeout(20)
            wrapped = wrap(conn) if wrap is not None else conn
            server.accepted.append(wrapped)
            handle(wrapped)
        except BaseException as error:  # reported to the test through server.errors
            server.errors.append(error)
        finally:
            # A wrapped socket owns the file descriptor from here on.
            wrapped.close()
            conn.close()

    def accept_loop() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def echo_upper(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data.upper())


def server_context(
    service: Service,
    *,
    alpn: Sequence[str] = (),
    client_ca: Path | None = None,
    credential: str = "localhost",
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(service.cert_file(credential), service.key_file(credential))
    if alpn:
        context.set_alpn_protocols(list(alpn))
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


def client_context(
    ca_file: Path, *, alpn: Sequence[str] = (), cert: tuple[Path, Path] | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    if alpn:
        context.set_alpn_protocols(list(alpn))
    if cert is not None:
        context.load_cert_chain(*cert)
    return context
