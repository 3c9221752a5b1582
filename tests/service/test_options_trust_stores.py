"""ConfigFactory keeps one TrustStore per trust-bundle content, across config rebuilds."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from handshaker.api import ConfigFactory, options
from handshaker.keystore import EMPTY_POLICY, LOCAL, MemoryKeyStore, Role
from handshaker.tls import Credential, PrivateKeySigner
from handshaker_wire.v1 import handshaker_pb2 as pb
from pki import Leaf, TestPKI


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _der(leaf: Leaf) -> tuple[bytes, ...]:
    return tuple(c.public_bytes(Encoding.DER) for c in leaf.chain)


def _factory(pki: TestPKI) -> tuple[ConfigFactory, MemoryKeyStore, FakeClock]:
    leaf = pki.servers["ecdsa-p256"]
    keystore = MemoryKeyStore(
        {"server": Credential(leaf.chain, PrivateKeySigner(leaf.key))},
        trust_bundles={"bundle": [pki.root.certificate]},
        policy=EMPTY_POLICY.grant_trust_bundle("bundle", LOCAL).grant_credential(
            "server", LOCAL, (Role.SERVER,)
        ),
    )
    clock = FakeClock()
    return ConfigFactory(keystore, clock=clock), keystore, clock


CLIENT_OPTIONS = pb.ClientOptions(server_name="localhost", trust_bundle="bundle")


def test_configs_rebuilt_from_one_bundle_share_its_trust_store_and_verdicts(
    pki: TestPKI,
) -> None:
    factory, _, clock = _factory(pki)
    first = factory.client(CLIENT_OPTIONS, LOCAL)
    leaf = pki.servers["ecdsa-p256"]
    now = time.time()
    verified = first.trust_store.verify_server(_der(leaf), "localhost", now)
    clock.now += options.CONFIG_CACHE_SECONDS + 0.5
    second = factory.client(CLIENT_OPTIONS, LOCAL)
    assert second is not first  # the config itself was rebuilt
    assert second.trust_store is first.trust_store
    assert second.trust_store._cache_hit_for_tests(_der(leaf), "localhost", now)
    assert second.trust_store.verify_server(_der(leaf), "localhost", now) is verified


def test_a_server_config_for_the_same_bundle_shares_the_same_trust_store(pki: TestPKI) -> None:
    factory, _, _ = _factory(pki)
    client = factory.client(CLIENT_OPTIONS, LOCAL)
    server = factory.server(
        pb.ServerOptions(client_auth=pb.CLIENT_AUTH_REQUIRED, client_trust_bundle="bundle"), LOCAL
    )
    assert server.client_trust_store is client.trust_store


def test_a_changed_bundle_gets_a_new_trust_store(pki: TestPKI) -> None:
    factory, keystore, clock = _factory(pki)
    before = factory.client(CLIENT_OPTIONS, LOCAL)
    keystore.add_trust_bundle("bundle", [pki.unrelated_root.certificate])
    clock.now += options.CONFIG_CACHE_SECONDS + 0.5
    after = factory.client(CLIENT_OPTIONS, LOCAL)
    assert after.trust_store is not before.trust_store
    assert after.trust_store.anchors == (pki.unrelated_root.certificate,)
    assert before.trust_store.anchors == (pki.root.certificate,)


def test_the_same_anchors_given_as_pem_share_the_bundle_trust_store(pki: TestPKI) -> None:
    factory, _, _ = _factory(pki)
    from_bundle = factory.client(CLIENT_OPTIONS, LOCAL)
    pem = pki.root.certificate.public_bytes(Encoding.PEM).decode()
    from_pem = factory.client(
        pb.ClientOptions(server_name="localhost", trust_anchors_pem=pem), LOCAL
    )
    assert from_pem is not from_bundle
    assert from_pem.trust_store is from_bundle.trust_store


def test_the_trust_store_cache_is_bounded_and_drops_the_least_recently_used(
    pki: TestPKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(options, "TRUST_STORE_CACHE_SIZE", 2)
    factory, _, _ = _factory(pki)
    root = (pki.root.certificate,)
    unrelated = (pki.unrelated_root.certificate,)
    intermediate = (pki.intermediate.certificate,)
    root_store = factory.trust_store(root)
    unrelated_store = factory.trust_store(unrelated)
    assert factory.trust_store(root) is root_store  # root is now the most recently used
    factory.trust_store(intermediate)
    assert len(factory._trust_stores) == 2
    assert factory.trust_store(root) is root_store
    assert factory.trust_store(unrelated) is not unrelated_store


def test_no_anchors_share_no_trust_store(pki: TestPKI) -> None:
    factory, _, _ = _factory(pki)
    config = factory.client(
        pb.ClientOptions(server_name="localhost", insecure_skip_verify=True), LOCAL
    )
    assert factory.trust_store(()) is None
    assert config.trust_store.anchors == ()
    assert len(factory._trust_stores) == 0
