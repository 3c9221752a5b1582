"""Engine client against engine server in memory: every group, suite, scheme and feature."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

import pytest
from engine_kit import (
    ALT_SERVER_NAME,
    KEY_TYPE_FOR_SCHEME,
    SERVER_IP,
    SERVER_NAME,
    EnginePKI,
    Outcome,
    Trace,
    alert_record,
    client_config,
    handshake,
    keylog_secrets,
    only_complete,
    only_failure,
    open_application_data,
    protection,
    pump,
    seeded_random,
    server_config,
    split_messages,
    split_records,
)
from handshaker.tls import (
    NEED_DATA,
    AlertDescription,
    CipherSuite,
    ClientAuth,
    ClientConnection,
    ConnectionState,
    ContentType,
    Credential,
    HandshakeResult,
    NamedGroup,
    ProtocolVersion,
    RecordProtection,
    ServerConfig,
    ServerConnection,
    SignatureScheme,
    StateError,
)
from handshaker.tls.codepoints import ExtensionType, HandshakeType
from handshaker.tls.config import DEFAULT_GROUPS
from handshaker.tls.connection import Connection
from handshaker.tls.extensions import encode_client_key_shares
from handshaker.tls.groups import KeyShare
from handshaker.tls.messages import encode_client_hello, parse_client_hello, parse_server_hello

GROUPS = tuple(NamedGroup)
# Every group the engine has: the defaults and the opt-in pure ML-KEM ones.
SERVER_GROUPS = (*DEFAULT_GROUPS, NamedGroup.MLKEM768, NamedGroup.MLKEM1024)
SUITES = tuple(CipherSuite)
SCHEMES = tuple(KEY_TYPE_FOR_SCHEME)


def assert_keys_agree(client: HandshakeResult, server: HandshakeResult) -> None:
    assert client.read == server.write
    assert client.write == server.read
    assert client.exporter_master_secret == server.exporter_master_secret
    assert client.resumption_master_secret == server.resumption_master_secret
    assert client.client_random == server.client_random
    assert client.read != client.write


def assert_application_data_flows(client: HandshakeResult, server: HandshakeResult) -> None:
    suite = client.cipher_suite
    to_server = RecordProtection.from_keys(suite, client.write).seal(
        ContentType.APPLICATION_DATA, b"ping from the client"
    )
    to_client = RecordProtection.from_keys(suite, server.write).seal(
        ContentType.APPLICATION_DATA, b"pong from the server"
    )
    server_read = RecordProtection.from_keys(suite, server.read)
    client_read = RecordProtection.from_keys(suite, client.read)
    assert open_application_data(server_read, to_server) == b"ping from the client"
    assert open_application_data(client_read, to_client) == b"pong from the server"


def client_hello_of(outcome: Outcome, index: int = 0) -> bytes:
    """The index-th ClientHello message the client sent."""
    hellos = [
        message
        for data in outcome.sent_by("client")
        for record in split_records(data)
        if record[0] == ContentType.HANDSHAKE
        for message in split_messages(record[5:])
        if message[0] == HandshakeType.CLIENT_HELLO
    ]
    return hellos[index]


def server_hellos_of(outcome: Outcome) -> list[bytes]:
    return [
        message
        for data in outcome.sent_by("server")
        for record in split_records(data)
        if record[0] == ContentType.HANDSHAKE
        for message in split_messages(record[5:])
        if message[0] == HandshakeType.SERVER_HELLO
    ]


def content_types(data: bytes) -> list[int]:
    return [record[0] for record in split_records(data)]


def assert_alert_queued(
    data: bytes, alert: int, *, suite: int | None = None, keys_from: RecordProtection | None = None
) -> None:
    """`data` ends with the fatal alert: plaintext, or protected under `keys_from`."""
    last = split_records(data)[-1]
    if keys_from is None:
        assert last == alert_record(alert)
        return
    assert keys_from.open(last) == (ContentType.ALERT, bytes((2, alert)))


# --- the matrix ---------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: CipherSuite(s).name)
@pytest.mark.parametrize("group", GROUPS, ids=lambda g: NamedGroup(g).name)
def test_every_group_and_suite_negotiates_agreeing_keys(
    engine_pki: EnginePKI, group: int, suite: int
) -> None:
    outcome = handshake(
        client_config(
            engine_pki, key_share_groups=(group,), supported_groups=(group,), cipher_suites=(suite,)
        ),
        server_config(engine_pki, supported_groups=SERVER_GROUPS),
    )
    client, server = outcome.client_result, outcome.server_result
    for result in (client, server):
        assert result.version == ProtocolVersion.TLS1_3
        assert result.cipher_suite == suite
        assert result.group == group
        assert result.hello_retry is False
    assert client.peer_signature_scheme == SignatureScheme.ECDSA_SECP256R1_SHA256
    assert server.signature_scheme == SignatureScheme.ECDSA_SECP256R1_SHA256
    assert_keys_agree(client, server)
    assert_application_data_flows(client, server)


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: SignatureScheme(s).name)
@pytest.mark.parametrize("suite", SUITES, ids=lambda s: CipherSuite(s).name)
@pytest.mark.parametrize("group", GROUPS, ids=lambda g: NamedGroup(g).name)
def test_every_group_suite_and_scheme_together_complete(
    engine_pki: EnginePKI, group: int, suite: int, scheme: int
) -> None:
    key_type = KEY_TYPE_FOR_SCHEME[scheme]
    if key_type not in engine_pki.servers:
        pytest.skip(engine_pki.rsa_pss_missing or "no leaf for this key type")
    outcome = handshake(
        client_config(
            engine_pki,
            key_share_groups=(group,),
            supported_groups=(group,),
            cipher_suites=(suite,),
            signature_schemes=(scheme,),
        ),
        server_config(engine_pki, key_type, supported_groups=SERVER_GROUPS),
    )
    client, server = outcome.client_result, outcome.server_result
    assert (client.group, client.cipher_suite, client.peer_signature_scheme) == (
        group,
        suite,
        scheme,
    )
    assert (server.group, server.cipher_suite, server.signature_scheme) == (group, suite, scheme)
    assert_keys_agree(client, server)
    assert_application_data_flows(client, server)


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: SignatureScheme(s).name)
def test_every_signature_scheme_authenticates_the_server(
    engine_pki: EnginePKI, scheme: int
) -> None:
    key_type = KEY_TYPE_FOR_SCHEME[scheme]
    if key_type not in engine_pki.servers:
        pytest.skip(engine_pki.rsa_pss_missing or "no leaf for this key type")
    leaf = engine_pki.servers[key_type]
    outcome = handshake(
        client_config(engine_pki, signature_schemes=(scheme,)),
        server_config(engine_pki, key_type),
    )
    client, server = outcome.client_result, outcome.server_result
    assert client.peer_signature_scheme == scheme
    assert server.signature_scheme == scheme
    assert client.peer_certificates == leaf.chain_der
    assert_keys_agree(client, server)
    assert_application_data_flows(client, server)


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: SignatureScheme(s).name)
def test_a_server_without_the_clients_scheme_fails_with_handshake_failure(
    engine_pki: EnginePKI, scheme: int
) -> None:
    other = "ed448" if KEY_TYPE_FOR_SCHEME[scheme] != "ed448" else "ed25519"
    outcome = handshake(
        client_config(engine_pki, signature_schemes=(scheme,)), server_config(engine_pki, other)
    )
    failure = only_failure(outcome.server_events)
    assert failure.alert == AlertDescription.HANDSHAKE_FAILURE
    assert only_failure(outcome.client_events).sent_by_peer is True


# --- groups --------------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: NamedGroup(g).name)
def test_hello_retry_request_reaches_every_group(engine_pki: EnginePKI, group: int) -> None:
    # The client's first share is for a group the server lacks, so the key share for
    # `group` is made after the HelloRetryRequest, on both sides.
    first = NamedGroup.X448 if group != NamedGroup.X448 else NamedGroup.X25519
    outcome = handshake(
        client_config(engine_pki, key_share_groups=(first,), supported_groups=(first, group)),
        server_config(engine_pki, supported_groups=(group,)),
    )
    client, server = outcome.client_result, outcome.server_result
    assert client.hello_retry and server.hello_retry
    assert client.group == server.group == group
    assert_keys_agree(client, server)
    assert_application_data_flows(client, server)


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: NamedGroup(g).name)
def test_a_client_hello_replayed_from_private_bytes_completes_for_every_group(
    engine_pki: EnginePKI, group: int
) -> None:
    config = client_config(engine_pki, key_share_groups=(group,), supported_groups=(group,))
    recorded = ClientConnection(config)
    (record,) = split_records(recorded.data_to_send())
    message = record[5:]
    hello = parse_client_hello(message[4:])
    share = KeyShare(group, seeded_random(f"replay/{group}"))
    hello = replace(
        hello,
        extensions=tuple(
            (t, encode_client_key_shares(((group, share.key_exchange),)))
            if t == ExtensionType.KEY_SHARE
            else (t, d)
            for t, d in hello.extensions
        ),
    )
    client = ClientConnection.replay(
        config, encode_client_hello(hello), {group: share.private_bytes()}
    )
    outcome = pump(client, ServerConnection(server_config(engine_pki, supported_groups=(group,))))
    assert outcome.client_result.group == outcome.server_result.group == group
    assert_keys_agree(outcome.client_result, outcome.server_result)


def test_a_default_server_takes_the_hybrid_share_over_x25519(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(
            engine_pki, key_share_groups=(NamedGroup.X25519, NamedGroup.SECP256R1MLKEM768)
        ),
        server_config(engine_pki),
    )
    assert outcome.server_result.group == NamedGroup.SECP256R1MLKEM768
    assert outcome.server_result.hello_retry is False


@pytest.mark.parametrize(
    "group",
    [NamedGroup.FFDHE2048, NamedGroup.FFDHE3072, NamedGroup.FFDHE4096],
    ids=lambda g: NamedGroup(g).name,
)
def test_a_default_server_answers_a_client_offering_only_ffdhe(
    engine_pki: EnginePKI, group: int
) -> None:
    outcome = handshake(
        client_config(engine_pki, key_share_groups=(group,), supported_groups=(group,)),
        server_config(engine_pki),
    )
    assert outcome.client_result.group == outcome.server_result.group == group
    assert_application_data_flows(outcome.client_result, outcome.server_result)


def test_a_server_preferring_its_own_order_retries_away_from_ffdhe(engine_pki: EnginePKI) -> None:
    # The client shares ffdhe2048 only but also supports X448: the server asks for X448.
    outcome = handshake(
        client_config(
            engine_pki,
            key_share_groups=(NamedGroup.FFDHE2048,),
            supported_groups=(NamedGroup.FFDHE2048, NamedGroup.X448),
        ),
        server_config(engine_pki, prefer_own_group_order=True),
    )
    assert outcome.server_result.group == NamedGroup.X448
    assert outcome.server_result.hello_retry is True


def test_a_default_server_does_not_take_pure_mlkem(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(
            engine_pki,
            key_share_groups=(NamedGroup.MLKEM768,),
            supported_groups=(NamedGroup.MLKEM768,),
        ),
        server_config(engine_pki),
    )
    assert only_failure(outcome.server_events).alert == AlertDescription.HANDSHAKE_FAILURE


# --- HelloRetryRequest --------------------------------------------------------------


@pytest.mark.parametrize("middlebox", [True, False], ids=["middlebox", "plain"])
def test_hello_retry_request_when_the_client_sent_no_usable_share(
    engine_pki: EnginePKI, middlebox: bool
) -> None:
    outcome = handshake(
        client_config(
            engine_pki,
            key_share_groups=(NamedGroup.X25519,),
            middlebox_compatibility=middlebox,
        ),
        server_config(engine_pki, supported_groups=(NamedGroup.SECP384R1,)),
    )
    client, server = outcome.client_result, outcome.server_result
    assert client.hello_retry is True
    assert server.hello_retry is True
    assert client.group == server.group == NamedGroup.SECP384R1
    hello2 = parse_client_hello(client_hello_of(outcome, 1)[4:])
    assert [group for group, _ in hello2.key_shares or ()] == [NamedGroup.SECP384R1]
    assert_keys_agree(client, server)
    assert_application_data_flows(client, server)


def test_hello_retry_cookie_is_echoed_in_the_second_client_hello(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki, key_share_groups=(NamedGroup.X25519,)),
        server_config(engine_pki, supported_groups=(NamedGroup.X448,), hello_retry_cookie=True),
    )
    assert outcome.client_result.hello_retry and outcome.server_result.hello_retry
    retry = parse_server_hello(server_hellos_of(outcome)[0][4:])
    assert retry.is_hello_retry_request
    cookie_extension = dict(retry.extensions)[ExtensionType.COOKIE]
    hello2 = parse_client_hello(client_hello_of(outcome, 1)[4:])
    assert dict(hello2.extensions)[ExtensionType.COOKIE] == cookie_extension
    assert hello2.cookie == cookie_extension[2:]
    assert_keys_agree(outcome.client_result, outcome.server_result)


def test_hello_retry_without_cookie_config_sends_no_cookie(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki, key_share_groups=(NamedGroup.X25519,)),
        server_config(engine_pki, supported_groups=(NamedGroup.X448,)),
    )
    retry = parse_server_hello(server_hellos_of(outcome)[0][4:])
    assert ExtensionType.COOKIE not in dict(retry.extensions)
    assert parse_client_hello(client_hello_of(outcome, 1)[4:]).cookie is None


def test_server_preferring_its_own_group_order_asks_for_it_by_retry(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki, key_share_groups=(NamedGroup.X25519,)),
        server_config(
            engine_pki,
            supported_groups=(NamedGroup.SECP256R1, NamedGroup.X25519),
            prefer_own_group_order=True,
        ),
    )
    assert outcome.server_result.hello_retry is True
    assert outcome.client_result.group == NamedGroup.SECP256R1


# --- middlebox compatibility ----------------------------------------------------------


def test_middlebox_compatibility_sends_ccs_and_echoes_the_session_id(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki, middlebox_compatibility=True), server_config(engine_pki)
    )
    hello = parse_client_hello(client_hello_of(outcome)[4:])
    server_hello = parse_server_hello(server_hellos_of(outcome)[0][4:])
    assert len(hello.legacy_session_id) == 32
    assert server_hello.legacy_session_id_echo == hello.legacy_session_id
    server_types = content_types(outcome.sent_by("server")[0])
    assert server_types[:2] == [ContentType.HANDSHAKE, ContentType.CHANGE_CIPHER_SPEC]
    client_final = outcome.sent_by("client")[1]
    assert client_final.startswith(b"\x14\x03\x03\x00\x01\x01")
    assert_keys_agree(outcome.client_result, outcome.server_result)


def test_without_middlebox_compatibility_no_ccs_and_empty_session_id(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki, middlebox_compatibility=False), server_config(engine_pki)
    )
    hello = parse_client_hello(client_hello_of(outcome)[4:])
    server_hello = parse_server_hello(server_hellos_of(outcome)[0][4:])
    assert hello.legacy_session_id == b""
    assert server_hello.legacy_session_id_echo == b""
    for _, data in outcome.flights:
        assert ContentType.CHANGE_CIPHER_SPEC not in content_types(data)
    assert_keys_agree(outcome.client_result, outcome.server_result)


# --- ALPN and SNI ---------------------------------------------------------------------


def test_alpn_selects_the_servers_preferred_common_protocol(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki, alpn_protocols=(b"h2", b"http/1.1")),
        server_config(engine_pki, alpn_protocols=(b"http/1.1", b"h2")),
    )
    assert outcome.client_result.alpn_protocol == b"http/1.1"
    assert outcome.server_result.alpn_protocol == b"http/1.1"


def test_alpn_without_a_common_protocol_fails_with_no_application_protocol(
    engine_pki: EnginePKI,
) -> None:
    outcome = handshake(
        client_config(engine_pki, alpn_protocols=(b"h2",)),
        server_config(engine_pki, alpn_protocols=(b"http/1.1",)),
    )
    failure = only_failure(outcome.server_events)
    assert failure.alert == AlertDescription.NO_APPLICATION_PROTOCOL
    assert failure.sent_by_peer is False
    assert outcome.sent_by("server") == [alert_record(AlertDescription.NO_APPLICATION_PROTOCOL)]


def test_alert_from_the_peer_is_reported_as_sent_by_peer(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki, alpn_protocols=(b"h2",)),
        server_config(engine_pki, alpn_protocols=(b"http/1.1",)),
    )
    failure = only_failure(outcome.client_events)
    assert failure.alert == AlertDescription.NO_APPLICATION_PROTOCOL
    assert failure.sent_by_peer is True
    assert outcome.client.state is ConnectionState.FAILED
    assert outcome.client.data_to_send() == b""


def test_alpn_is_none_when_only_one_side_configures_it(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki), server_config(engine_pki, alpn_protocols=(b"h2",))
    )
    assert outcome.client_result.alpn_protocol is None
    assert outcome.server_result.alpn_protocol is None


def test_credential_selector_picks_the_credential_by_server_name(engine_pki: EnginePKI) -> None:
    by_name = {
        SERVER_NAME: engine_pki.servers["ecdsa-p256"],
        ALT_SERVER_NAME: engine_pki.servers["ed25519"],
    }
    calls: list[tuple[str | None, tuple[int, ...]]] = []

    def selector(name: str | None, schemes: Sequence[int]) -> Credential | None:
        calls.append((name, tuple(schemes)))
        leaf = by_name.get(name or "")
        return leaf.credential() if leaf else None

    config = ServerConfig(credential_selector=selector)
    for name, leaf in by_name.items():
        outcome = handshake(client_config(engine_pki, server_name=name), config)
        assert outcome.client_result.peer_certificates == leaf.chain_der
        assert outcome.server_result.server_name == name
    assert [name for name, _ in calls] == list(by_name)
    # signature_algorithms as sent: the TLS 1.3 schemes, then the TLS 1.2-only RSASSA-PKCS1-v1_5
    # ones (the client offers TLS 1.2 too).
    config_sent = client_config(engine_pki)
    assert calls[0][1] == config_sent.signature_schemes + config_sent.tls12_signature_schemes


def test_credential_selector_without_a_match_fails_with_unrecognized_name(
    engine_pki: EnginePKI,
) -> None:
    config = ServerConfig(credential_selector=lambda name, schemes: None)
    outcome = handshake(client_config(engine_pki), config)
    assert only_failure(outcome.server_events).alert == AlertDescription.UNRECOGNIZED_NAME


def test_ip_address_server_name_sends_no_sni_and_validates_an_ip_san(
    engine_pki: EnginePKI,
) -> None:
    outcome = handshake(client_config(engine_pki, server_name=SERVER_IP), server_config(engine_pki))
    hello = parse_client_hello(client_hello_of(outcome)[4:])
    assert ExtensionType.SERVER_NAME not in dict(hello.extensions)
    assert outcome.server_result.server_name is None
    assert outcome.client_result.server_name == SERVER_IP


def test_ip_address_not_in_the_certificate_fails_with_bad_certificate(
    engine_pki: EnginePKI,
) -> None:
    outcome = handshake(
        client_config(engine_pki, server_name="127.0.0.2"), server_config(engine_pki)
    )
    assert only_failure(outcome.client_events).alert == AlertDescription.BAD_CERTIFICATE


# --- client authentication -------------------------------------------------------------


def test_no_client_auth_leaves_peer_certificates_empty(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki, credential=engine_pki.clients["ecdsa-p256"].credential()),
        server_config(engine_pki),
    )
    assert outcome.server_result.peer_certificates == ()
    assert outcome.server_result.peer_signature_scheme is None
    assert outcome.client_result.signature_scheme is None


def test_optional_client_auth_without_a_client_certificate_completes(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki),
        server_config(
            engine_pki, client_auth=ClientAuth.OPTIONAL, client_trust_anchors=(engine_pki.root,)
        ),
    )
    assert outcome.server_result.peer_certificates == ()
    assert outcome.client_result.signature_scheme is None
    assert_keys_agree(outcome.client_result, outcome.server_result)


@pytest.mark.parametrize("client_auth", [ClientAuth.OPTIONAL, ClientAuth.REQUIRED])
@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ed25519"])
def test_client_certificate_reaches_the_server(
    engine_pki: EnginePKI, client_auth: ClientAuth, key_type: str
) -> None:
    leaf = engine_pki.clients[key_type]
    outcome = handshake(
        client_config(engine_pki, credential=leaf.credential()),
        server_config(engine_pki, client_auth=client_auth, client_trust_anchors=(engine_pki.root,)),
    )
    server, client = outcome.server_result, outcome.client_result
    assert server.peer_certificates == leaf.chain_der
    assert server.peer_signature_scheme == client.signature_scheme
    assert client.signature_scheme in leaf.credential().signer.signature_schemes
    assert_keys_agree(client, server)


def test_required_client_auth_without_a_certificate_fails_with_certificate_required(
    engine_pki: EnginePKI,
) -> None:
    outcome = handshake(
        client_config(engine_pki),
        server_config(
            engine_pki, client_auth=ClientAuth.REQUIRED, client_trust_anchors=(engine_pki.root,)
        ),
    )
    client = outcome.client_result  # TLS 1.3: the client finishes before the server judges it
    failure = only_failure(outcome.server_events)
    assert failure.alert == AlertDescription.CERTIFICATE_REQUIRED
    assert failure.sent_by_peer is False
    assert_alert_queued(
        outcome.undelivered["server"],
        AlertDescription.CERTIFICATE_REQUIRED,
        keys_from=RecordProtection.from_keys(client.cipher_suite, client.read),
    )


def test_untrusted_client_certificate_fails_with_unknown_ca(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki, credential=engine_pki.untrusted_client.credential()),
        server_config(
            engine_pki, client_auth=ClientAuth.REQUIRED, client_trust_anchors=(engine_pki.root,)
        ),
    )
    client = outcome.client_result
    assert only_failure(outcome.server_events).alert == AlertDescription.UNKNOWN_CA
    assert_alert_queued(
        outcome.undelivered["server"],
        AlertDescription.UNKNOWN_CA,
        keys_from=RecordProtection.from_keys(client.cipher_suite, client.read),
    )


# --- server certificate validation -------------------------------------------------------


def _server_with(leaf_credential: Credential) -> ServerConfig:
    return ServerConfig(credential=leaf_credential)


def is_protected_alert_flight(flight: bytes) -> bool:
    """The flight is an optional dummy CCS and then one protected record."""
    if flight.startswith(b"\x14\x03\x03\x00\x01\x01"):
        flight = flight[6:]
    return flight[:3] == b"\x17\x03\x03" and len(flight) == 5 + int.from_bytes(flight[3:5])


def test_expired_server_certificate_fails_with_certificate_expired(engine_pki: EnginePKI) -> None:
    outcome = handshake(client_config(engine_pki), _server_with(engine_pki.expired.credential()))
    assert only_failure(outcome.client_events).alert == AlertDescription.CERTIFICATE_EXPIRED
    # Protected under client_handshake_traffic_secret (RFC 8446 section 6): the
    # server decrypts it and reports the alert (below).
    assert is_protected_alert_flight(outcome.sent_by("client")[-1])
    peer_view = only_failure(outcome.server_events)
    assert peer_view.sent_by_peer is True
    assert peer_view.alert == AlertDescription.CERTIFICATE_EXPIRED


def test_server_certificate_checked_at_the_injected_clock(engine_pki: EnginePKI) -> None:
    far_future = engine_pki.root.not_valid_after_utc.timestamp() + 86400
    client = ClientConnection(client_config(engine_pki), clock=lambda: far_future)
    server = ServerConnection(server_config(engine_pki))
    outcome = pump(client, server)
    assert only_failure(outcome.client_events).alert == AlertDescription.CERTIFICATE_EXPIRED


def test_untrusted_server_certificate_fails_with_unknown_ca(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki), _server_with(engine_pki.untrusted_server.credential())
    )
    assert only_failure(outcome.client_events).alert == AlertDescription.UNKNOWN_CA
    # Protected under client_handshake_traffic_secret (RFC 8446 section 6): the
    # server decrypts it and reports the alert (below).
    assert is_protected_alert_flight(outcome.sent_by("client")[-1])


def test_wrong_host_name_fails_with_bad_certificate(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki, server_name="other.example"), server_config(engine_pki)
    )
    assert only_failure(outcome.client_events).alert == AlertDescription.BAD_CERTIFICATE
    # Protected under client_handshake_traffic_secret (RFC 8446 section 6): the
    # server decrypts it and reports the alert (below).
    assert is_protected_alert_flight(outcome.sent_by("client")[-1])


def test_server_certificate_is_accepted_unchecked_when_verify_peer_is_off(
    engine_pki: EnginePKI,
) -> None:
    outcome = handshake(
        client_config(engine_pki, verify_peer=False, trust_anchors=()),
        _server_with(engine_pki.untrusted_server.credential()),
    )
    assert outcome.client_result.peer_certificates == engine_pki.untrusted_server.chain_der


# --- record_size_limit -----------------------------------------------------------------


def test_record_size_limit_bounds_protected_records_both_ways(engine_pki: EnginePKI) -> None:
    client_limit, server_limit = 100, 200
    outcome = handshake(
        client_config(
            engine_pki,
            record_size_limit=client_limit,
            credential=engine_pki.clients["ecdsa-p256"].credential(),
        ),
        server_config(
            engine_pki,
            record_size_limit=server_limit,
            client_auth=ClientAuth.REQUIRED,
            client_trust_anchors=(engine_pki.root,),
        ),
    )
    client, server = outcome.client_result, outcome.server_result
    assert client.peer_record_size_limit == server_limit - 1
    assert server.peer_record_size_limit == client_limit - 1
    for sender, limit in (("server", client_limit), ("client", server_limit)):
        protected = [
            record
            for data in outcome.sent_by(sender)
            for record in split_records(data)
            if record[0] == ContentType.APPLICATION_DATA
        ]
        # A chain of certificates does not fit one record: the limit really split it.
        assert len(protected) > 3
        # RFC 8449: the limit counts TLSInnerPlaintext (content and type byte), not the tag.
        assert all(len(record) - 5 - 16 <= limit for record in protected)
    assert_keys_agree(client, server)


def test_record_size_limit_unanswered_by_the_server_leaves_records_unlimited(
    engine_pki: EnginePKI,
) -> None:
    outcome = handshake(client_config(engine_pki, record_size_limit=100), server_config(engine_pki))
    assert outcome.client_result.peer_record_size_limit == 2**14
    # The server still honours the client's limit on what it sends.
    assert outcome.server_result.peer_record_size_limit == 99


# --- fragmentation and coalescing ---------------------------------------------------------


def _byte_at_a_time(conn: Connection, data: bytes) -> None:
    for i in range(len(data)):
        conn.receive_data(data[i : i + 1])
        if conn.state is not ConnectionState.HANDSHAKING:
            assert i == len(data) - 1
            return


def test_byte_at_a_time_delivery_completes(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki, key_share_groups=(NamedGroup.X25519,)),
        server_config(engine_pki),
        deliver=_byte_at_a_time,
    )
    assert_keys_agree(outcome.client_result, outcome.server_result)


@pytest.mark.parametrize("seed", range(5))
def test_random_splits_complete(engine_pki: EnginePKI, seed: int) -> None:
    rng = random.Random(seed)

    def random_splits(conn: Connection, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            step = rng.randint(1, 300)
            conn.receive_data(data[pos : pos + step])
            pos += step

    outcome = handshake(
        client_config(engine_pki, alpn_protocols=(b"h2",)),
        server_config(
            engine_pki,
            "rsa",
            alpn_protocols=(b"h2",),
            client_auth=ClientAuth.OPTIONAL,
            client_trust_anchors=(engine_pki.root,),
        ),
        deliver=random_splits,
    )
    assert_keys_agree(outcome.client_result, outcome.server_result)
    assert outcome.client_result.alpn_protocol == b"h2"


def test_each_handshake_message_in_its_own_record_completes(trace: Trace) -> None:
    client = trace.new_client()
    client.receive_data(trace.server_flight_with(trace.server_messages(), one_record_each=True))
    result = only_complete(list(client.events()))
    assert result.write == trace.client_result.write


def test_server_handshake_messages_coalesced_into_one_record_complete(trace: Trace) -> None:
    messages = trace.server_messages()
    flight = trace.server_flight_with(messages)
    assert len([r for r in split_records(flight) if r[0] == ContentType.APPLICATION_DATA]) == 1
    client = trace.new_client()
    client.receive_data(flight)
    assert only_complete(list(client.events())).read == trace.client_result.read


def test_whole_hello_retry_exchange_coalesced_per_flight(engine_pki: EnginePKI) -> None:
    def both_at_once(conn: Connection, data: bytes) -> None:
        conn.receive_data(data)

    outcome = handshake(
        client_config(engine_pki, key_share_groups=(NamedGroup.X25519,)),
        server_config(engine_pki, supported_groups=(NamedGroup.SECP521R1,)),
        deliver=both_at_once,
    )
    assert [sender for sender, _ in outcome.flights] == [
        "client",
        "server",
        "client",
        "server",
        "client",
    ]
    assert_keys_agree(outcome.client_result, outcome.server_result)


def test_application_data_right_behind_client_finished_is_left_unconsumed(trace: Trace) -> None:
    application = RecordProtection.from_keys(trace.suite, trace.client_result.write).seal(
        ContentType.APPLICATION_DATA, b"early bird"
    )
    server = trace.server_after_hello()
    server.receive_data(trace.client_final_flight + application)
    result = only_complete(list(server.events()))
    assert server.take_unconsumed() == application
    assert server.take_unconsumed() == b""
    read = RecordProtection.from_keys(result.cipher_suite, result.read)
    assert open_application_data(read, application) == b"early bird"


def test_partial_application_record_behind_finished_is_left_unconsumed(trace: Trace) -> None:
    application = RecordProtection.from_keys(trace.suite, trace.client_result.write).seal(
        ContentType.APPLICATION_DATA, b"half a record"
    )
    server = trace.server_after_hello()
    server.receive_data(trace.client_final_flight + application[:7])
    only_complete(list(server.events()))
    assert server.take_unconsumed() == application[:7]


def test_nothing_is_unconsumed_after_an_exact_flight(trace: Trace) -> None:
    client = trace.new_client()
    client.receive_data(trace.server_flight)
    only_complete(list(client.events()))
    assert client.take_unconsumed() == b""


# --- exporter and key log -------------------------------------------------------------------


def test_exporter_agrees_across_sides_and_depends_on_label_and_context(
    engine_pki: EnginePKI,
) -> None:
    outcome = handshake(client_config(engine_pki), server_config(engine_pki))
    client, server = outcome.client_result, outcome.server_result
    base = client.export_keying_material(b"EXPORTER-test", b"context", 32)
    assert len(base) == 32
    assert server.export_keying_material(b"EXPORTER-test", b"context", 32) == base
    assert client.export_keying_material(b"EXPORTER-other", b"context", 32) != base
    assert client.export_keying_material(b"EXPORTER-test", b"other", 32) != base
    assert client.export_keying_material(b"EXPORTER-test", b"", 32) != base
    assert len(server.export_keying_material(b"EXPORTER-test", b"context", 64)) == 64


def test_exporter_differs_between_handshakes(engine_pki: EnginePKI) -> None:
    first = handshake(client_config(engine_pki), server_config(engine_pki)).client_result
    second = handshake(client_config(engine_pki), server_config(engine_pki)).client_result
    assert first.export_keying_material(b"label", b"", 32) != second.export_keying_material(
        b"label", b"", 32
    )


def test_keylog_has_five_nss_lines_for_the_client_random(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki, keylog=True, cipher_suites=(CipherSuite.TLS_AES_256_GCM_SHA384,)),
        server_config(engine_pki, keylog=True),
    )
    client, server = outcome.client_result, outcome.server_result
    assert client.keylog == server.keylog
    labels = [line.split()[0] for line in client.keylog]
    assert labels == [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EXPORTER_SECRET",
    ]
    hello = parse_client_hello(client_hello_of(outcome)[4:])
    assert all(line.split()[1] == hello.random.hex() for line in client.keylog)
    secrets = keylog_secrets(client)
    assert all(len(secret) == 48 for secret in secrets.values())
    assert secrets["CLIENT_TRAFFIC_SECRET_0"] == client.write.secret
    assert secrets["SERVER_TRAFFIC_SECRET_0"] == client.read.secret
    assert secrets["EXPORTER_SECRET"] == client.exporter_master_secret
    # The handshake secrets really protected the server's flight.
    server_flight = outcome.sent_by("server")[0]
    protected = [r for r in split_records(server_flight) if r[0] == ContentType.APPLICATION_DATA]
    handshake_keys = protection(client.cipher_suite, secrets["SERVER_HANDSHAKE_TRAFFIC_SECRET"])
    assert handshake_keys.open(protected[0])[0] == ContentType.HANDSHAKE


def test_keylog_is_empty_unless_asked_for(engine_pki: EnginePKI) -> None:
    outcome = handshake(client_config(engine_pki), server_config(engine_pki))
    assert outcome.client_result.keylog == ()
    assert outcome.server_result.keylog == ()


# --- lifecycle ------------------------------------------------------------------------------


def test_abort_queues_user_canceled_and_fails(engine_pki: EnginePKI) -> None:
    client = ClientConnection(client_config(engine_pki))
    client.data_to_send()
    client.abort()
    assert client.state is ConnectionState.FAILED
    failure = only_failure(list(client.events()))
    assert failure.alert == AlertDescription.USER_CANCELED
    assert failure.sent_by_peer is False
    assert client.data_to_send() == alert_record(AlertDescription.USER_CANCELED, level=1)


def test_abort_with_an_alert_of_our_choice(engine_pki: EnginePKI) -> None:
    server = ServerConnection(server_config(engine_pki))
    server.abort(AlertDescription.INTERNAL_ERROR, "shutting down")
    failure = only_failure(list(server.events()))
    assert failure.alert == AlertDescription.INTERNAL_ERROR
    assert failure.reason == "shutting down"
    assert server.data_to_send() == alert_record(AlertDescription.INTERNAL_ERROR)


def test_aborted_peer_alert_reaches_the_other_side(engine_pki: EnginePKI) -> None:
    client = ClientConnection(client_config(engine_pki))
    server = ServerConnection(server_config(engine_pki))
    server.receive_data(client.data_to_send())
    client.abort()
    server.receive_data(client.data_to_send())
    failure = only_failure(list(server.events()))
    assert failure.alert == AlertDescription.USER_CANCELED
    assert failure.sent_by_peer is True


def test_abort_after_completion_changes_nothing(engine_pki: EnginePKI) -> None:
    outcome = handshake(client_config(engine_pki), server_config(engine_pki))
    outcome.client.abort()
    assert outcome.client.state is ConnectionState.COMPLETE
    assert outcome.client.data_to_send() == b""
    assert list(outcome.client.events()) == []


def test_feeding_a_completed_connection_raises_state_error(engine_pki: EnginePKI) -> None:
    outcome = handshake(client_config(engine_pki), server_config(engine_pki))
    assert outcome.client.state is ConnectionState.COMPLETE
    assert outcome.server.state is ConnectionState.COMPLETE
    with pytest.raises(StateError):
        outcome.client.receive_data(b"\x17\x03\x03\x00\x01\x00")
    with pytest.raises(StateError):
        outcome.server.receive_data(b"")


def test_feeding_a_failed_connection_raises_state_error(engine_pki: EnginePKI) -> None:
    server = ServerConnection(server_config(engine_pki))
    server.abort()
    with pytest.raises(StateError):
        server.receive_data(b"\x16\x03\x01\x00\x00")


def test_next_event_reports_need_data_while_waiting(engine_pki: EnginePKI) -> None:
    server = ServerConnection(server_config(engine_pki))
    assert server.next_event() is NEED_DATA
    server.receive_data(b"\x16\x03")
    assert server.next_event() is NEED_DATA
    assert server.state is ConnectionState.HANDSHAKING


def test_repr_of_results_and_keys_shows_no_secret(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        client_config(engine_pki, keylog=True), server_config(engine_pki, keylog=True)
    )
    for result in (outcome.client_result, outcome.server_result):
        secrets = [
            result.exporter_master_secret,
            result.resumption_master_secret,
            *keylog_secrets(result).values(),
        ]
        for keys in (result.read, result.write):
            secrets += [keys.secret, keys.key, keys.iv]
        texts = [repr(result), str(result), repr(result.read), repr(result.write)]
        texts += [repr(e) for e in outcome.client_events + outcome.server_events]
        for text in texts:
            for secret in secrets:
                assert secret.hex() not in text
                assert secret.hex().upper() not in text
                assert repr(secret) not in text
