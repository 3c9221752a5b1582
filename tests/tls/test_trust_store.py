"""The verified-chain cache of TrustStore: what it remembers, and when it forgets."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from handshaker.tls import ClientConfig, ServerConfig
from handshaker.tls.certificates import TrustStore
from handshaker.tls.errors import BadCertificate, CertificateExpired, UnknownCA
from pki import Leaf, TestPKI


def _der(leaf: Leaf) -> tuple[bytes, ...]:
    return tuple(c.public_bytes(Encoding.DER) for c in leaf.chain)


def test_a_verified_chain_is_remembered_and_returns_the_same_leaf(pki: TestPKI) -> None:
    store = TrustStore((pki.root.certificate,))
    leaf = pki.servers["ecdsa-p256"]
    now = time.time()
    first = store.verify_server(_der(leaf), "localhost", now)
    assert first == leaf.certificate
    assert store.verify_server(_der(leaf), "localhost", now) is first


def test_a_remembered_chain_is_checked_again_once_it_has_expired(pki: TestPKI) -> None:
    store = TrustStore((pki.root.certificate,))
    leaf = pki.servers["ecdsa-p256"]
    store.verify_server(_der(leaf), "localhost", time.time())
    after_expiry = leaf.certificate.not_valid_after_utc.timestamp() + 1
    with pytest.raises(CertificateExpired):
        store.verify_server(_der(leaf), "localhost", after_expiry)


def test_a_verdict_is_bounded_by_max_age(pki: TestPKI) -> None:
    store = TrustStore((pki.root.certificate,), max_age=10.0)
    leaf = pki.servers["ecdsa-p256"]
    now = time.time()
    store.verify_server(_der(leaf), "localhost", now)
    assert store._cache_hit_for_tests(_der(leaf), "localhost", now + 5)
    assert not store._cache_hit_for_tests(_der(leaf), "localhost", now + 11)


def test_the_name_is_part_of_the_verdict(pki: TestPKI) -> None:
    store = TrustStore((pki.root.certificate,))
    leaf = pki.servers["ecdsa-p256"]
    store.verify_server(_der(leaf), "localhost", time.time())
    with pytest.raises(BadCertificate):
        store.verify_server(_der(leaf), "other.example", time.time())


def test_failures_are_not_remembered(pki: TestPKI) -> None:
    store = TrustStore((pki.root.certificate,))
    for _ in range(2):
        with pytest.raises(UnknownCA):
            store.verify_server(_der(pki.untrusted), "localhost", time.time())
    assert len(store) == 0


def test_the_cache_holds_at_most_size_chains(pki: TestPKI) -> None:
    store = TrustStore((pki.root.certificate,), size=2)
    for key_type in ("ecdsa-p256", "ecdsa-p384", "ed25519"):
        store.verify_server(_der(pki.servers[key_type]), "localhost", time.time())
    assert len(store) == 2


def test_size_zero_verifies_every_chain_in_full(pki: TestPKI) -> None:
    store = TrustStore((pki.root.certificate,), size=0)
    leaf = pki.servers["ecdsa-p256"]
    store.verify_server(_der(leaf), "localhost", time.time())
    assert len(store) == 0


def test_client_chains_are_verified_and_remembered_apart_from_server_chains(
    pki: TestPKI,
) -> None:
    store = TrustStore((pki.root.certificate,))
    client = pki.clients["ecdsa-p256"]
    assert store.verify_client(_der(client), time.time()) == client.certificate
    assert len(store) == 1


def test_a_server_certificate_is_refused_as_a_client_certificate(pki: TestPKI) -> None:
    # Its extendedKeyUsage says serverAuth only (RFC 5280 section 4.2.1.12).
    store = TrustStore((pki.root.certificate,))
    with pytest.raises(BadCertificate):
        store.verify_client(_der(pki.servers["ecdsa-p256"]), time.time())


def test_a_config_uses_a_shared_trust_store_over_its_anchors(pki: TestPKI) -> None:
    shared = TrustStore((pki.root.certificate,))
    config = ClientConfig(
        server_name="localhost", trust_anchors=(pki.root.certificate,), shared_trust_store=shared
    )
    assert config.trust_store is shared
    server = ServerConfig(
        credential=pki.servers["ecdsa-p256"].credential(),
        client_trust_anchors=(pki.root.certificate,),
        shared_client_trust_store=shared,
    )
    assert server.client_trust_store is shared


def test_a_config_refuses_a_shared_trust_store_over_other_anchors(pki: TestPKI) -> None:
    other = TrustStore((pki.unrelated_root.certificate,))
    with pytest.raises(ValueError, match="anchors differ"):
        ClientConfig(
            server_name="localhost", trust_anchors=(pki.root.certificate,), shared_trust_store=other
        )
    with pytest.raises(ValueError, match="anchors differ"):
        ServerConfig(
            credential=pki.servers["ecdsa-p256"].credential(),
            client_trust_anchors=(pki.root.certificate,),
            shared_client_trust_store=other,
        )
