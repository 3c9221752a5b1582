"""Fixtures for the service tests: `handshaker serve` processes on 127.0.0.1 and stubs for them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from service_kit import (
    HANDSHAKER,
    ChannelPki,
    ServiceProcess,
    StartService,
    handshaker_stub,
    make_channel_pki,
)


@pytest.fixture(scope="session", autouse=True)
def _handshaker_installed() -> None:
    if not HANDSHAKER.exists():
        pytest.skip(f"the handshaker console script is missing at {HANDSHAKER} (pip install -e .)")


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One service with the default settings, shared by the tests that do not look at caps."""
    process = ServiceProcess(tmp_path_factory.mktemp("service") / "keystore").start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def channel(service: ServiceProcess) -> Iterator[grpc.Channel]:
    with service.channel() as opened:
        yield opened


@pytest.fixture(scope="session")
def stub(channel: grpc.Channel) -> pb_grpc.HandshakerStub:
    return handshaker_stub(channel)


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[StartService]:
    """Starts services with extra `serve` options; each one is stopped after the test."""
    started: list[ServiceProcess] = []

    def start(
        *args: str, listen: str = "127.0.0.1:0", keystore: Path | None = None
    ) -> ServiceProcess:
        process = ServiceProcess(
            keystore or tmp_path / f"keystore-{len(started)}", listen=listen, args=args
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def channel_pki(tmp_path_factory: pytest.TempPathFactory) -> ChannelPki:
    """Certificates for mutual TLS on the gRPC channel: two callers, alice and bob."""
    return make_channel_pki(tmp_path_factory.mktemp("channel-pki"), CALLERS)


CALLERS: Sequence[str] = ("alice.test", "bob.test")
