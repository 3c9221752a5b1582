"""Fixtures for the client tests: one real `handshaker serve` process on 127.0.0.1 per session."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import handshaker_client as hc
import pytest
from clients_kit import HANDSHAKER, Service, require_tool, start_service

CLIENT_CREDENTIAL = "client1"


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`handshaker serve` on a free 127.0.0.1 port with a fresh keystore, stopped after the session.

    On first start the keystore gets a development CA and a `localhost` credential;
    `client1` (DNS:client1.test) is issued from the same CA for mutual TLS.
    """
    if not HANDSHAKER.exists():
        pytest.skip(f"the handshaker console script is missing at {HANDSHAKER} (pip install -e .)")
    started = start_service(tmp_path_factory.mktemp("clients") / "keystore")
    try:
        started.generate(CLIENT_CREDENTIAL, "DNS:client1.test")
        _wait_until_the_service_knows(started, CLIENT_CREDENTIAL)
        yield started
    finally:
        started.process.stop()


def _wait_until_the_service_knows(service: Service, credential: str) -> None:
    """The keystore is re-read at most once a second; poll until the new credential is there."""
    options = hc.client_options("localhost", ca_pem=service.ca_pem, credential=credential)
    deadline = time.monotonic() + 10
    with hc.HandshakerClient(service.address) as client:
        while True:
            try:
                client.abort(client.start_client(options).session_id)
                return
            except hc.HandshakerRpcError as error:
                if error.code != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@pytest.fixture(scope="session")
def openssl() -> str:
    return require_tool("openssl", "openssl")


@pytest.fixture(scope="session")
def curl() -> str:
    return require_tool("curl", "curl")
