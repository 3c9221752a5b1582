"""Fairness under attack (issue 9, item 5): hostile peers do not crowd out legitimate ones.

1000 connections trickle a ClientHello into one `terminate`, one byte every 2 s, while
10 legitimate TLS clients connect through the same `terminate`: at least 9 of them
complete. The attack is bounded (1000 sockets, 8 s), targets 127.0.0.1 only and stops
by itself. It would fail without terminate's rule of taking no service session
before a whole first record: the tricklers would hold the 1000 sessions a caller may
have (`--max-sessions-per-caller`) and every legitimate handshake would get
RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from clients_kit import Service, client_context, terminate

pytestmark = pytest.mark.interop

HOSTILE = 1000
LEGITIMATE = 10
ATTACK_SECONDS = 8.0
TRICKLE_SECONDS = 2.0


async def _trickle(port: int, opened: list[int], stop: threading.Event) -> None:
    # A ClientHello record header claiming 512 bytes: sent one byte at a time.
    hello = bytes([22, 3, 1, 2, 0]) + bytes(512)
    writers: list[asyncio.StreamWriter] = []
    try:
        for _batch in range(0, HOSTILE, 100):
            for _ in range(100):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writers.append(writer)
            opened[0] = len(writers)
            await asyncio.sleep(0.05)  # let terminate accept the batch
        began = time.monotonic()
        position = 0
        while time.monotonic() - began < ATTACK_SECONDS and not stop.is_set():
            for writer in writers:
                writer.write(hello[position : position + 1])
            position += 1
            await asyncio.sleep(TRICKLE_SECONDS)
    finally:
        for writer in writers:
            writer.close()


def test_legitimate_handshakes_complete_while_1000_peers_trickle(service: Service) -> None:
    with terminate(service, "--key", "localhost", "--http-hello") as (_, port):
        opened = [0]
        stop = threading.Event()
        attack = threading.Thread(
            target=lambda: asyncio.run(_trickle(port, opened, stop)), daemon=True
        )
        attack.start()
        try:
            deadline = time.monotonic() + 30
            while opened[0] < HOSTILE:
                assert attack.is_alive() and time.monotonic() < deadline, "the attack did not start"
                time.sleep(0.05)
            time.sleep(TRICKLE_SECONDS)  # every hostile peer has sent bytes
            completed = 0
            for _ in range(LEGITIMATE):
                try:
                    with (
                        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                        client_context(service.ca_file).wrap_socket(
                            raw, server_hostname="localhost"
                        ) as tls,
                    ):
                        tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
                        if b"200 OK" in tls.recv(4096):
                            completed += 1
                except OSError:
                    pass
            assert attack.is_alive(), "the attack ended before the legitimate clients did"
        finally:
            stop.set()
            attack.join(ATTACK_SECONDS + 10)
        assert completed >= LEGITIMATE - 1, f"only {completed} of {LEGITIMATE} completed"
