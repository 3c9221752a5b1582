"""Option fields are bounded and checked before anything is built: each refusal names its field."""

from __future__ import annotations

import pytest
from handshaker.api import ConfigFactory, options
from handshaker.api.options import InvalidOptions, check_server_name
from handshaker.keystore import EMPTY_POLICY, LOCAL, MemoryKeyStore, Role
from handshaker.tls import (
    ClientConnection,
    ConnectionState,
    Credential,
    PrivateKeySigner,
    ServerConfig,
    ServerConnection,
)
from handshaker_wire.v1 import handshaker_pb2 as pb
from pki import SERVER_IP, TestPKI, pem


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _factory(pki: TestPKI, clock: FakeClock | None = None, **limits: int) -> ConfigFactory:
    leaf = pki.servers["ecdsa-p256"]
    keystore = MemoryKeyStore(
        {"server": Credential(leaf.chain, PrivateKeySigner(leaf.key))},
        trust_bundles={"bundle": [pki.root.certificate]},
        policy=EMPTY_POLICY.grant_trust_bundle("bundle", LOCAL).grant_credential(
            "server", LOCAL, (Role.SERVER,)
        ),
    )
    return ConfigFactory(keystore, clock=clock or FakeClock(), **limits)


@pytest.mark.parametrize(
    "name",
    [
        "a\x00b c",
        "localhost.",
        "exa_mple.com",
        "-leading.example",
        "trailing-.example",
        "a..b",
        "ünicode.example",
        "x" * 64 + ".example",
        "a." * 127 + "b",
        "1.2.3.4.5",
    ],
)
def test_a_server_name_that_is_not_a_host_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidOptions, match=r"^server_name: "):
        check_server_name(name)


@pytest.mark.parametrize("name", ["localhost", "a-b.example.com", "xn--bcher-kva.example", "A1.b"])
def test_host_names_are_accepted(name: str) -> None:
    check_server_name(name)


@pytest.mark.parametrize("name", ["127.0.0.1", "::1", "2001:db8::7", "[::1]", "::ffff:192.0.2.1"])
def test_an_ip_literal_is_not_a_server_name(name: str) -> None:
    # RFC 6066 section 3: "Literal IPv4 and IPv6 addresses are not permitted in HostName."
    with pytest.raises(InvalidOptions, match=r"^server_name: .*IP address.*expected_ip_address"):
        check_server_name(name)


def test_a_client_option_with_an_ip_server_name_is_refused_with_the_hint(pki: TestPKI) -> None:
    options = pb.ClientOptions(server_name="127.0.0.1", trust_bundle="bundle")
    with pytest.raises(InvalidOptions, match=r"^server_name: .*expected_ip_address"):
        _factory(pki).client(options, LOCAL)


@pytest.mark.parametrize(
    ("address", "checked"),
    [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("2001:DB8:0::7", "2001:db8::7")],
)
def test_expected_ip_address_is_checked_as_the_name_without_sni(
    pki: TestPKI, address: str, checked: str
) -> None:
    config = _factory(pki).client(
        pb.ClientOptions(expected_ip_address=address, trust_bundle="bundle"), LOCAL
    )
    # The engine checks an IP server_name against iPAddress SANs and never sends it as SNI.
    assert config.server_name == checked and config.check_hostname


@pytest.mark.parametrize(
    "address",
    ["localhost", "[::1]", "127.0.0.1:443", "fe80::1%eth0", "1.2.3", "x" * 100, " 127.0.0.1"],
)
def test_an_expected_ip_address_that_is_not_an_address_is_refused(
    pki: TestPKI, address: str
) -> None:
    with pytest.raises(InvalidOptions, match=r"^expected_ip_address: "):
        _factory(pki).client(
            pb.ClientOptions(expected_ip_address=address, trust_bundle="bundle"), LOCAL
        )


def test_expected_ip_address_and_server_name_do_not_go_together(pki: TestPKI) -> None:
    options = pb.ClientOptions(
        server_name="localhost", expected_ip_address="127.0.0.1", trust_bundle="bundle"
    )
    with pytest.raises(InvalidOptions, match=r"^expected_ip_address: .*not both"):
        _factory(pki).client(options, LOCAL)


def _complete(client: ClientConnection, server: ServerConnection) -> None:
    client_bytes = client.data_to_send()
    for _ in range(4):
        server.receive_data(client_bytes)
        client.receive_data(server.data_to_send())
        client_bytes = client.data_to_send()
        if client.state is not ConnectionState.HANDSHAKING:
            break
    server.receive_data(client_bytes)


@pytest.mark.parametrize(("address", "completes"), [(SERVER_IP, True), ("192.0.2.9", False)])
def test_an_expected_ip_address_is_matched_against_the_certificates_ip_san(
    pki: TestPKI, address: str, completes: bool
) -> None:
    leaf = pki.servers["ecdsa-p256"]
    seen: list[str | None] = []

    def select(name: str | None, schemes: object) -> Credential:
        seen.append(name)
        return Credential(leaf.chain, PrivateKeySigner(leaf.key))

    server = ServerConnection(ServerConfig(credential_selector=select))
    config = _factory(pki).client(
        pb.ClientOptions(expected_ip_address=address, trust_bundle="bundle"), LOCAL
    )
    client = ClientConnection(config)
    _complete(client, server)
    assert seen == [None]  # no SNI went out
    assert (client.state is ConnectionState.COMPLETE) is completes


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"server_name": "x" * 65_000}, "server_name"),
        ({"alpn_protocols": [f"p{i}" for i in range(30_000)]}, "alpn_protocols"),
        ({"alpn_protocols": ["h2", ""]}, "alpn_protocols"),
        ({"alpn_protocols": ["x" * 256]}, "alpn_protocols"),
        ({"cipher_suites": [0x1301] * 65}, "cipher_suites"),
        ({"groups": [0x1D] * 65}, "groups"),
        ({"key_share_groups": [0x1D] * 5}, "key_share_groups"),
        ({"signature_schemes": [0x0403] * 65}, "signature_schemes"),
        ({"credential": "c" * 256}, "credential"),
        ({"trust_bundle": "b" * 256}, "trust_bundle"),
    ],
)
def test_oversized_client_fields_are_refused_by_name(
    pki: TestPKI, fields: dict[str, object], field: str
) -> None:
    fields.setdefault("server_name", "localhost")
    with pytest.raises(InvalidOptions, match=rf"^{field}: "):
        _factory(pki).client(pb.ClientOptions(**fields), LOCAL)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"alpn_protocols": [f"p{i}" for i in range(30_000)]}, "alpn_protocols"),
        ({"credential": "c" * 256}, "credential"),
        ({"client_trust_bundle": "b" * 256}, "client_trust_bundle"),
        ({"cipher_suites": [0x1301] * 65}, "cipher_suites"),
    ],
)
def test_oversized_server_fields_are_refused_by_name(
    pki: TestPKI, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidOptions, match=rf"^{field}: "):
        _factory(pki).server(pb.ServerOptions(**fields), LOCAL)  # type: ignore[arg-type]


def test_inline_trust_anchors_are_bounded_in_count_and_size(pki: TestPKI) -> None:
    root = pem(pki.root.certificate).decode()
    factory = _factory(pki, max_trust_anchors=2, max_trust_anchors_bytes=3 * len(root))
    ok = pb.ClientOptions(server_name="localhost", trust_anchors_pem=root * 2)
    factory.client(ok, LOCAL)
    with pytest.raises(InvalidOptions, match=r"^trust_anchors_pem: at most 2 certificates"):
        factory.client(pb.ClientOptions(server_name="localhost", trust_anchors_pem=root * 3), LOCAL)
    with pytest.raises(InvalidOptions, match=r"^trust_anchors_pem: at most .* bytes"):
        factory.client(pb.ClientOptions(server_name="localhost", trust_anchors_pem=root * 4), LOCAL)
    server = pb.ServerOptions(
        client_auth=pb.CLIENT_AUTH_REQUIRED, client_trust_anchors_pem=root * 3
    )
    with pytest.raises(InvalidOptions, match=r"^client_trust_anchors_pem: at most 2"):
        factory.server(server, LOCAL)


def test_the_config_cache_is_bounded_by_bytes_not_entries(pki: TestPKI) -> None:
    root = pem(pki.root.certificate).decode()
    budget = 256 << 10
    factory = _factory(pki, cache_bytes=budget)
    # Distinct options (ALPN differs) that each carry inline anchors: under an entry
    # cap of 256 these would all stay, whatever their size.
    for i in range(200):
        factory.client(
            pb.ClientOptions(
                server_name="localhost", trust_anchors_pem=root * 3, alpn_protocols=[f"p{i}"]
            ),
            LOCAL,
        )
        assert factory.cached_bytes <= budget
    assert factory.cached_bytes > budget // 2
    # Plain options still get cached (a hit returns the same config).
    plain = pb.ClientOptions(server_name="localhost", trust_bundle="bundle")
    assert factory.client(plain, LOCAL) is factory.client(plain, LOCAL)


def test_stale_cache_entries_are_dropped_not_kept(pki: TestPKI) -> None:
    clock = FakeClock()
    factory = _factory(pki, clock)
    for i in range(50):
        factory.client(pb.ClientOptions(server_name=f"h{i}.example", trust_bundle="bundle"), LOCAL)
    full = factory.cached_bytes
    clock.now += options.CONFIG_CACHE_SECONDS + 1
    factory.client(pb.ClientOptions(server_name="last.example", trust_bundle="bundle"), LOCAL)
    assert factory.cached_bytes < full // 10


def test_an_anchor_with_an_invalid_x509_version_is_invalid_options(pki: TestPKI) -> None:
    # Found by the options fuzz target: cryptography's InvalidVersion is no ValueError.
    from pathlib import Path

    seed = Path(__file__).parents[1] / "fuzz" / "corpus" / "options"
    data = (seed / "regression-invalid-x509-version").read_bytes()
    options = pb.ClientOptions()
    options.ParseFromString(data[1:])
    assert options.trust_anchors_pem
    # The seed names its server by address, which is expected_ip_address now.
    if options.server_name == SERVER_IP:
        options.server_name, options.expected_ip_address = "", SERVER_IP
    with pytest.raises(InvalidOptions, match=r"^trust_anchors_pem: "):
        _factory(pki).client(options, LOCAL)


def test_a_keystore_bundle_with_an_invalid_x509_version_is_a_keystore_error() -> None:
    from pathlib import Path

    from handshaker.keystore import KeystoreError
    from handshaker.keystore.pem import load_certificates

    seed = Path(__file__).parents[1] / "fuzz" / "corpus" / "options"
    options = pb.ClientOptions()
    options.ParseFromString((seed / "regression-invalid-x509-version").read_bytes()[1:])
    with pytest.raises(KeystoreError):
        load_certificates(options.trust_anchors_pem.encode(), source="bundle.pem")
