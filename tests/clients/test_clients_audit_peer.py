"""The Python client reports its TLS peer's address to the service's audit trail.

A server-role handshake through tls_over_streams sends the accepted socket's peer
address (stream: in the start request and as `x-handshaker-peer`; unary: as that
metadata; multiplex: in the connection's first frame, HandshakeRequest.peer_address),
and so does wrap_server_socket; the service's audit line for the signature names it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import handshaker_client as hc
import pytest
from clients_kit import Service, client_context


def _audit_peers(service: Service) -> list[object]:
    peers = []
    for line in list(service.process.stderr):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("logger") == "handshaker.audit":
            peers.append(entry.get("peer"))
    return peers


@pytest.mark.parametrize("api", ["stream", "unary", "multiplex"])
def test_the_tls_peer_address_reaches_the_audit_line(service: Service, api: str) -> None:
    async def run() -> str:
        client_address: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            host, port = writer.get_extra_info("peername")[:2]
            client_address.set_result(f"{host}:{port}")
            async with hc.AsyncHandshakerClient(service.address) as client:
                options = hc.server_options(credential="localhost")
                _, tls_writer = await hc.tls_over_streams(
                    reader,
                    writer,
                    client,
                    options,
                    api=api,  # type: ignore[arg-type]
                )
                tls_writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:

            def connect() -> None:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                    client_context(service.ca_file).wrap_socket(raw, server_hostname="localhost"),
                ):
                    pass

            await asyncio.to_thread(connect)
            return await asyncio.wait_for(client_address, 10)

    expected = asyncio.run(run())
    deadline = time.monotonic() + 10
    while expected not in _audit_peers(service):
        assert time.monotonic() < deadline, _audit_peers(service)
        time.sleep(0.1)


def _wait_for_audit_peer(service: Service, expected: str) -> None:
    deadline = time.monotonic() + 10
    while expected not in _audit_peers(service):
        assert time.monotonic() < deadline, _audit_peers(service)
        time.sleep(0.1)


def test_wrap_server_socket_reports_the_accepted_sockets_peer(service: Service) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def connect() -> None:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context(service.ca_file).wrap_socket(raw, server_hostname="localhost"),
        ):
            pass

    thread = threading.Thread(target=connect)
    thread.start()
    try:
        accepted, (host, peer_port) = listener.accept()
        with accepted, hc.HandshakerClient(service.address) as client:
            hc.wrap_server_socket(accepted, credential="localhost", handshaker=client).close()
    finally:
        thread.join(10)
        listener.close()
    _wait_for_audit_peer(service, f"{host}:{peer_port}")
