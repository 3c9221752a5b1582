"""Handshakes that move between processes: each flight is taken by a connection restored from
the last snapshot, alternately in a worker subprocess and in the test process.

A connection's config is described by a small JSON spec (PEM file paths, code
points) so both processes build their own from the same description; the RNG is
a seeded counter whose position travels with the request, so an interrupted run
can be compared byte for byte with an uninterrupted one. `RemoteConnection`
has the engine connection's driving interface (receive_data, data_to_send,
events, take_unconsumed), so the interop drivers run it unchanged.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from handshaker.tls import (
    ClientAuth,
    ClientConfig,
    ClientConnection,
    ConnectionState,
    Credential,
    Event,
    HandshakeComplete,
    HandshakeFailed,
    HandshakeResult,
    PrivateKeySigner,
    ServerConfig,
    ServerConnection,
    TrafficKeys,
)

WORKER = Path(__file__).with_name("snapshot_worker.py")
Spec = dict[str, Any]
Connection = ClientConnection | ServerConnection


class SeededRandom:
    """A deterministic RNG whose position (draws so far) can be carried to another process."""

    def __init__(self, seed: str, position: int = 0) -> None:
        self.seed = seed
        self.position = position

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{self.seed}/{self.position}".encode()).digest()
            self.position += 1
        return out[:n]


# --- configs from specs --------------------------------------------------------------------


def _certificates(path: str) -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_pem_x509_certificates(Path(path).read_bytes()))


def _credential(files: dict[str, str]) -> Credential:
    key = load_pem_private_key(Path(files["key"]).read_bytes(), password=None)
    return Credential(_certificates(files["chain"]), PrivateKeySigner(key))  # type: ignore[arg-type]


def build_config(spec: Spec) -> ClientConfig | ServerConfig:
    settings: dict[str, Any] = {}
    for name in (
        "supported_groups",
        "key_share_groups",
        "cipher_suites",
        "tls12_cipher_suites",
        "signature_schemes",
    ):
        if name in spec:
            settings[name] = tuple(spec[name])
    if "alpn" in spec:
        settings["alpn_protocols"] = tuple(p.encode() for p in spec["alpn"])
    for name in ("min_version", "max_version"):
        if name in spec:
            settings[name] = spec[name]
    if spec["role"] == "client":
        return ClientConfig(
            server_name=spec.get("server_name", "localhost"),
            trust_anchors=_certificates(spec["trust"]),
            credential=_credential(spec["credential"]) if "credential" in spec else None,
            middlebox_compatibility=spec.get("middlebox_compatibility", True),
            keylog=True,
            **settings,
        )
    client_auth = ClientAuth(spec.get("client_auth", "none"))
    return ServerConfig(
        credential=_credential(spec["credential"]),
        client_auth=client_auth,
        client_trust_anchors=_certificates(spec["client_trust"]) if "client_trust" in spec else (),
        hello_retry_cookie=spec.get("cookie", False),
        prefer_own_group_order=spec.get("prefer_own", False),
        keylog=True,
        **settings,
    )


def new_connection(spec: Spec, random: SeededRandom | None = None) -> Connection:
    config = build_config(spec)
    kwargs: dict[str, Any] = {} if random is None else {"random": random}
    if isinstance(config, ClientConfig):
        return ClientConnection(config, **kwargs)
    return ServerConnection(config, **kwargs)


def restore(spec: Spec, snapshot: bytes, random: SeededRandom | None = None) -> Connection:
    config = build_config(spec)
    kwargs: dict[str, Any] = {} if random is None else {"random": random}
    if isinstance(config, ClientConfig):
        return ClientConnection.restore(snapshot, config, **kwargs)
    return ServerConnection.restore(snapshot, config, **kwargs)


# --- events across processes ----------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b": base64.b64encode(value).decode()}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b"}:
        return base64.b64decode(value["b"])
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


def encode_event(event: Event) -> dict[str, Any]:
    if isinstance(event, HandshakeComplete):
        fields = {f.name: getattr(event.result, f.name) for f in dataclasses.fields(event.result)}
        fields["read"] = dataclasses.asdict(event.result.read)
        fields["write"] = dataclasses.asdict(event.result.write)
        return {"complete": _encode(fields)}
    return {"failed": dataclasses.asdict(event)}


def decode_event(data: dict[str, Any]) -> Event:
    if "failed" in data:
        return HandshakeFailed(**data["failed"])
    fields = _decode(data["complete"])
    fields["read"] = TrafficKeys(**fields["read"])
    fields["write"] = TrafficKeys(**fields["write"])
    return HandshakeComplete(HandshakeResult(**fields))


def step(connection: Connection, data: bytes, random: SeededRandom | None) -> dict[str, Any]:
    """Feed a restored connection; what came out, as JSON-able fields."""
    connection.receive_data(data)
    answer: dict[str, Any] = {
        "out": base64.b64encode(connection.data_to_send()).decode(),
        "events": [encode_event(e) for e in connection.events()],
        "unconsumed": base64.b64encode(connection.take_unconsumed()).decode(),
        "position": random.position if random is not None else None,
        "snapshot": None,
    }
    if connection.state is ConnectionState.HANDSHAKING:
        answer["snapshot"] = base64.b64encode(connection.snapshot()).decode()
    return answer


# --- the worker process ---------------------------------------------------------------------


class Worker:
    """A fresh Python process that restores snapshots and advances them (snapshot_worker.py)."""

    def __init__(self) -> None:
        tests = str(Path(__file__).parent)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]),
        }
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.pid = self.process.pid

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the snapshot worker exited ({self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the snapshot worker failed: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=10)


class RemoteConnection:
    """A handshake that is restored from its snapshot for every flight it receives.

    Odd steps run in the worker process, even steps in this one (from bytes only:
    the object that took the snapshot is dropped). `sizes` records each snapshot's
    length and `hops` where each step ran.
    """

    def __init__(self, worker: Worker, spec: Spec, random: SeededRandom | None = None) -> None:
        self.worker = worker
        self.spec = spec
        self.random = random
        first = new_connection(spec, random)
        self._out = first.data_to_send()
        self._snapshot: bytes | None = first.snapshot()
        self.sizes = [len(self._snapshot)]
        self.hops: list[str] = []
        self._events: deque[Event] = deque()
        self._unconsumed = b""
        self.state = ConnectionState.HANDSHAKING

    def receive_data(self, data: bytes) -> None:
        assert self._snapshot is not None, "the handshake is over"
        if len(self.hops) % 2 == 0:
            answer = self.worker.call(
                {
                    "spec": self.spec,
                    "snapshot": base64.b64encode(self._snapshot).decode(),
                    "input": base64.b64encode(data).decode(),
                    "random": [self.random.seed, self.random.position] if self.random else None,
                }
            )
            self.hops.append("worker")
            if self.random is not None:
                self.random.position = answer["position"]
        else:
            connection = restore(self.spec, self._snapshot, self.random)
            answer = step(connection, data, self.random)
            self.hops.append("local")
        self._out += base64.b64decode(answer["out"])
        self._unconsumed += base64.b64decode(answer["unconsumed"])
        for event in answer["events"]:
            decoded = decode_event(event)
            self._events.append(decoded)
            self.state = (
                ConnectionState.COMPLETE
                if isinstance(decoded, HandshakeComplete)
                else ConnectionState.FAILED
            )
        snapshot = answer["snapshot"]
        self._snapshot = base64.b64decode(snapshot) if snapshot is not None else None
        if self._snapshot is not None:
            self.sizes.append(len(self._snapshot))

    def data_to_send(self) -> bytes:
        out, self._out = self._out, b""
        return out

    def events(self) -> Iterator[Event]:
        while self._events:
            yield self._events.popleft()

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def take_unconsumed(self) -> bytes:
        rest, self._unconsumed = self._unconsumed, b""
        return rest
