"""`serve --event-loop`: uvloop by default where it is installed, asyncio's loop on request,
and the same handshakes on both; the listening line says which loop runs."""

from __future__ import annotations

import importlib.util

import pytest
from handshaker_wire.v1 import handshaker_pb2 as pb
from service_kit import ServiceProcess, StartService, handshaker_stub
from test_service_authorization import complete_handshake, dev_client


def listening_loop(service: ServiceProcess) -> str:
    entries = service.log_entries()
    (line,) = [e for e in entries if e.get("message") == "listening"]
    return str(line["event_loop"])


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ((), "uvloop"),
        (("--event-loop", "uvloop"), "uvloop"),
        (("--event-loop", "asyncio"), "asyncio"),
    ],
)
def test_each_event_loop_serves_handshakes(
    start_service: StartService, flag: tuple[str, ...], expected: str
) -> None:
    if expected == "uvloop" and importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed on this platform")
    service = start_service(*flag)
    assert listening_loop(service) == expected
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        client, server = complete_handshake(
            stub, pb.ServerOptions(credential="localhost"), dev_client()
        )
    assert client.cipher_suite == server.cipher_suite != 0


def test_serve_freezes_its_startup_heap_and_names_the_engine(start_service: StartService) -> None:
    # A full collection of the startup heap (modules, descriptors, gRPC) holds the loop for
    # 10-15 ms; frozen, it is out of the collector's reach (server._freeze_heap).
    service = start_service()
    (line,) = [e for e in service.log_entries() if e.get("message") == "listening"]
    assert int(line["gc_frozen_objects"]) > 10_000
    assert str(line["engine"]).split()[0] in ("compiled", "python")
