"""A real redis-server for the session-store tests: a Unix socket in a fresh directory, no disk.

Started and stopped by the tests (never mocked); a machine without redis-server
skips them with a reason that says what to install.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest
import redis
from service_kit import short_socket_dir

REDIS_SERVER = shutil.which("redis-server")


def require_redis() -> str:
    if REDIS_SERVER is None:
        pytest.skip(
            "redis-server is not installed (apt-get install redis-server, or scripts/setup --test)"
        )
    return REDIS_SERVER


class RedisServer:
    """redis-server on a Unix socket; `url` is what `--session-store` takes."""

    def __init__(self) -> None:
        self.directory = short_socket_dir()
        self.socket = self.directory / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = require_redis()
        self._process = subprocess.Popen(
            [
                binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start (exit {self._process.returncode})")
            time.sleep(0.02)
        return self

    def client(self) -> redis.Redis:
        """A redis-py client, for the tests that look at or change Redis directly."""
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)

    def ping(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            with self.client() as client:
                return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.directory, ignore_errors=True)

    def halt(self) -> None:
        """Stop redis-server but keep its directory, so start() can bring it back there."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def redis_args(redis: RedisServer, *extra: str) -> list[str]:
    return ["--session-store", redis.url, *extra]
