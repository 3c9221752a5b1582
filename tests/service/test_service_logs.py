"""The service's logs are JSON lines and never carry the key material of its sessions."""

from __future__ import annotations

import base64
import re
import time

import pytest
from handshaker_wire.v1 import handshaker_pb2 as pb
from service_kit import (
    COMPLETE,
    FAILED,
    ServiceProcess,
    StartService,
    StreamHandshake,
    UnaryHandshake,
    client_options,
    encodings,
    handshaker_stub,
    parse_json_line,
    relay,
    session_secrets,
)

# The one line `serve` prints for people rather than log collectors: where the CA is.
BANNER = re.compile(r"^handshaker: keystore .* development CA certificate at ")


def _pem_bodies(pem: str) -> list[str]:
    """The base64 body of each PEM block, joined, and each of its lines."""
    bodies = []
    for block in re.findall(r"-----BEGIN [A-Z ]+-----\n(.*?)\n-----END", pem, re.S):
        lines = block.split()
        bodies.append("".join(lines))
        bodies.extend(line for line in lines if len(line) >= 16)
    return bodies


@pytest.fixture
def exercised_service(start_service: StartService) -> tuple[ServiceProcess, list[bytes]]:
    """A service that ran handshakes of every kind, then stopped; the secrets it handed out.

    At debug level, so that every completed handshake has its own line to search.
    """
    service = start_service("--log-level", "debug")
    secrets: list[bytes] = []
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        for keys_in_response in (False, True):
            client = UnaryHandshake(
                stub, client_options(keylog=True), keys_in_response=keys_in_response
            )
            server = UnaryHandshake(
                stub, pb.ServerOptions(keylog=True), keys_in_response=keys_in_response
            )
            c, s = relay(client, server)
            assert (c.state, s.state) == (COMPLETE, COMPLETE)
            for side in (client, server):
                keys = side.keys()
                assert keys.keylog, "keylog lines were asked for"
                secrets += session_secrets(keys)
                for length in (32, 48):
                    secrets.append(
                        stub.ExportKeyingMaterial(
                            pb.ExportKeyingMaterialRequest(
                                session_id=side.session_id, label=b"EXPORTER-logs", length=length
                            )
                        ).keying_material
                    )
            if c.keys is not None:
                secrets += session_secrets(c.keys)
        with (
            StreamHandshake(stub, client_options(keylog=True)) as stream_client,
            StreamHandshake(stub, pb.ServerOptions(keylog=True)) as stream_server,
        ):
            c, s = relay(stream_client, stream_server)
            assert (c.state, s.state) == (COMPLETE, COMPLETE)
            secrets += session_secrets(stream_client.keys(c))
            secrets += session_secrets(stream_server.keys(s))
        failing = UnaryHandshake(stub, pb.ServerOptions())
        assert failing.step(b"GET / HTTP/1.1\r\n\r\n").state == FAILED
    assert service.stop() == 0
    return service, secrets


def test_logs_never_contain_session_key_material(
    exercised_service: tuple[ServiceProcess, list[bytes]],
) -> None:
    service, secrets = exercised_service
    logs = service.logs()
    completed = [e for e in service.log_entries() if e.get("message") == "handshake complete"]
    assert len(completed) >= 6, "the service logged the handshakes it ran"
    assert len(secrets) > 50
    for secret in secrets:
        assert len(secret) >= 12
        for text in encodings(secret):
            assert text not in logs, "key material in the service's logs"
        # Any 8-byte window of a secret, in hex, would already be a leak.
        assert secret[:8].hex() not in logs.lower()


def test_logs_never_contain_the_private_keys_of_the_keystore(
    exercised_service: tuple[ServiceProcess, list[bytes]],
) -> None:
    service, _ = exercised_service
    logs = service.logs()
    key_files = [service.keystore / "localhost" / "tls.key", service.keystore / "dev-ca" / "ca.key"]
    for key_file in key_files:
        bodies = _pem_bodies(key_file.read_text())
        assert bodies, f"{key_file} holds a PEM key"
        for body in bodies:
            assert body not in logs
        der = base64.b64decode(bodies[0])
        assert der.hex() not in logs


def test_every_log_line_is_a_json_object(
    exercised_service: tuple[ServiceProcess, list[bytes]],
) -> None:
    service, _ = exercised_service
    assert service.lines
    for line in service.lines:
        if BANNER.match(line):
            continue
        entry = parse_json_line(line)
        assert entry is not None, f"not a JSON log line: {line!r}"
        assert {"time", "level", "logger", "message"} <= entry.keys()


def _server_handshakes(service: ServiceProcess, count: int) -> None:
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        for _ in range(count):
            with (
                StreamHandshake(stub, client_options()) as client,
                StreamHandshake(stub, pb.ServerOptions()) as server,
            ):
                c, s = relay(client, server)
                assert (c.state, s.state) == (COMPLETE, COMPLETE)
        failing = UnaryHandshake(stub, pb.ServerOptions())
        assert failing.step(b"GET / HTTP/1.1\r\n\r\n").state == FAILED


def test_default_level_counts_handshakes_in_a_stats_line(start_service: StartService) -> None:
    # Per-handshake lines would cost more than the handshakes at production rates: at the
    # default level a completed handshake is counted, a failed one still gets its own line.
    service = start_service("--stats-interval", "0.2")
    _server_handshakes(service, 3)
    deadline = time.monotonic() + 10
    stats: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        stats = [e for e in service.log_entries() if e.get("message") == "handshakes"]
        if sum(int(str(e.get("server_completed", 0))) for e in stats) >= 3:
            break
        time.sleep(0.1)
    assert service.stop() == 0
    entries = service.log_entries()
    stats = [e for e in entries if e.get("message") == "handshakes"]
    assert sum(int(str(e.get("server_completed", 0))) for e in stats) == 3
    assert sum(int(str(e.get("client_completed", 0))) for e in stats) == 3
    assert sum(int(str(e.get("server_failed", 0))) for e in stats) == 1
    assert all(e["level"] == "info" for e in stats)
    assert not [e for e in entries if e.get("message") == "handshake complete"]
    failed = [e for e in entries if e.get("message") == "handshake failed"]
    # unexpected_message: "G" is no record type.
    assert len(failed) == 1 and failed[0]["alert"] == 10


def test_debug_level_logs_each_completed_handshake(start_service: StartService) -> None:
    service = start_service("--log-level", "debug")
    _server_handshakes(service, 2)
    assert service.stop() == 0
    completed = [e for e in service.log_entries() if e.get("message") == "handshake complete"]
    assert sorted(str(e["role"]) for e in completed) == ["client", "client", "server", "server"]
    assert all(e["level"] == "debug" and float(str(e["ms"])) > 0 for e in completed)
    # The counts the stats line had not reported yet are logged at shutdown.
    stats = [e for e in service.log_entries() if e.get("message") == "handshakes"]
    assert sum(int(str(e.get("server_completed", 0))) for e in stats) == 2
