"""Session fixtures for the engine's own tests: a small in-memory PKI, built once."""

from __future__ import annotations

import pytest
from engine_kit import EnginePKI, Trace, build_engine_pki, record_trace
from handshaker.tls import ClientAuth


@pytest.fixture(scope="session")
def engine_pki() -> EnginePKI:
    """Root -> intermediate -> server leaves of every key type, client leaves, broken leaves."""
    return build_engine_pki()


@pytest.fixture(scope="session")
def trace(engine_pki: EnginePKI) -> Trace:
    """A reproducible X25519 / Ed25519 handshake without client authentication."""
    return record_trace(engine_pki)


@pytest.fixture(scope="session")
def trace_client_auth(engine_pki: EnginePKI) -> Trace:
    """A reproducible handshake in which the server requires, and gets, a client certificate."""
    return record_trace(
        engine_pki,
        "trace-client-auth",
        client_overrides={"credential": engine_pki.clients["ed25519"].credential()},
        server_overrides={
            "client_auth": ClientAuth.REQUIRED,
            "client_trust_anchors": (engine_pki.root,),
        },
    )
