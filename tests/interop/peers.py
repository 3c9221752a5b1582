"""External peer processes for the interop tests: start, talk over stdio, always stop.

A PeerProcess collects the peer's output lines on a thread so a test can wait
for a line without blocking on a pipe, and it kills the process on exit from its
`with` block whatever happened in the test.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

DEFAULT_TIMEOUT = 15.0


class PeerProcess:
    """A peer started as a subprocess; stdout and stderr are collected line by line."""

    def __init__(
        self,
        args: Sequence[str | Path],
        *,
        env: Mapping[str, str] | None = None,
        merge_stderr: bool = False,
    ) -> None:
        self.args = [str(a) for a in args]
        self._process = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            env=dict(env) if env is not None else None,
        )
        self._lock = threading.Condition()
        self._stdout: list[bytes] = []
        self._stderr: list[bytes] = []
        self._closed = 0
        self._streams = 1 if merge_stderr else 2
        assert self._process.stdout is not None
        self._threads = [
            threading.Thread(target=self._collect, args=(self._process.stdout, self._stdout))
        ]
        if not merge_stderr:
            assert self._process.stderr is not None
            self._threads.append(
                threading.Thread(target=self._collect, args=(self._process.stderr, self._stderr))
            )
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def _collect(self, stream: Any, lines: list[bytes]) -> None:
        for line in iter(stream.readline, b""):
            with self._lock:
                lines.append(line)
                self._lock.notify_all()
        with self._lock:
            self._closed += 1
            self._lock.notify_all()

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- output ---------------------------------------------------------------------

    @property
    def stdout(self) -> str:
        with self._lock:
            return b"".join(self._stdout).decode(errors="replace")

    @property
    def stderr(self) -> str:
        with self._lock:
            return b"".join(self._stderr).decode(errors="replace")

    def _wait_until(self, found: Any, what: str, timeout: float) -> Any:
        """Wait until `found(stdout_text)` returns something other than None."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = found(b"".join(self._stdout).decode(errors="replace"))
                if value is not None:
                    return value
                if self._closed >= self._streams:
                    raise AssertionError(
                        f"peer exited without printing {what}:\n{self._describe()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"peer did not print {what} in time:\n{self._describe()}")
                self._lock.wait(remaining)

    def wait_for(self, pattern: str, timeout: float = DEFAULT_TIMEOUT) -> re.Match[str]:
        """Wait until stdout matches the regular expression `pattern`; return the match."""
        regex = re.compile(pattern, re.MULTILINE)
        match: re.Match[str] = self._wait_until(regex.search, repr(pattern), timeout)
        return match

    def wait_for_json(self, key: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The first JSON line on stdout with `key`; a JSON line with "error" fails the test."""

        def found(text: str) -> dict[str, Any] | None:
            for obj in _json_objects(text):
                if key in obj:
                    return obj
                if "error" in obj:
                    raise AssertionError(f"peer failed: {obj['error']}\n{self._describe()}")
            return None

        obj: dict[str, Any] = self._wait_until(found, f"a JSON line with {key!r}", timeout)
        return obj

    def _describe(self) -> str:
        stdout = b"".join(self._stdout).decode(errors="replace")
        stderr = b"".join(self._stderr).decode(errors="replace")
        return f"$ {' '.join(self.args)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"

    # --- input and lifetime -----------------------------------------------------------

    def write(self, data: bytes) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(data)
        self._process.stdin.flush()

    def close_stdin(self) -> None:
        assert self._process.stdin is not None
        if not self._process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Wait for the peer to exit on its own; its exit status."""
        returncode = self._process.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)
        return returncode

    def stop(self) -> None:
        """End the peer: terminate, then kill if it lingers."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        with contextlib.suppress(BrokenPipeError, ValueError):
            self.close_stdin()
        for thread in self._threads:
            thread.join(5)

    def describe(self) -> str:
        with self._lock:
            return self._describe()


def _json_objects(text: str) -> list[dict[str, Any]]:
    objects = []
    for line in text.splitlines():
        if line.startswith("{") and line.endswith("}"):
            objects.append(json.loads(line))
    return objects
