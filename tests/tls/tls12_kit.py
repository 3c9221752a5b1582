"""Helpers for the engine's TLS 1.2 tests: configs that speak TLS 1.2 and record checks."""

from __future__ import annotations

from engine_kit import EnginePKI, client_config, server_config
from handshaker.tls import ClientConfig, ContentType, HandshakeResult, ProtocolVersion, ServerConfig
from handshaker.tls.tls12.record import Tls12RecordProtection

TLS12 = ProtocolVersion.TLS1_2


def tls12_client(pki: EnginePKI, **overrides: object) -> ClientConfig:
    """A client that offers TLS 1.2 alone."""
    settings: dict[str, object] = {"max_version": TLS12}
    settings.update(overrides)
    return client_config(pki, **settings)


def tls12_server(pki: EnginePKI, key_type: str = "ecdsa-p256", **overrides: object) -> ServerConfig:
    """A server that speaks TLS 1.2 alone (no downgrade sentinel)."""
    settings: dict[str, object] = {"max_version": TLS12}
    settings.update(overrides)
    return server_config(pki, key_type, **settings)


def assert_application_data_flows(client: HandshakeResult, server: HandshakeResult) -> None:
    """Records sealed with one side's write keys open with the other's read keys, both ways."""
    for sender, receiver in ((client, server), (server, client)):
        seal = Tls12RecordProtection.from_keys(sender.cipher_suite, sender.write)
        opener = Tls12RecordProtection.from_keys(receiver.cipher_suite, receiver.read)
        for payload in (b"hello", b"x" * 2**14):
            record = seal.seal(ContentType.APPLICATION_DATA, payload)
            assert opener.open(record) == (ContentType.APPLICATION_DATA, payload)
