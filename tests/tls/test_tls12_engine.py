"""TLS 1.2 engine against engine: every suite over every group, each key type, version
negotiation (RFC 8446 section 4.1.3 sentinels, RFC 7507 fallback), the extended master
secret, renegotiation_info, ALPN, SNI, client authentication and waiting key operations.
"""

from __future__ import annotations

import dataclasses

import pytest
from engine_kit import (
    EnginePKI,
    client_config,
    handshake,
    only_failure,
    plaintext_record,
    pump,
    server_config,
    split_records,
)
from handshaker.tls import (
    AlertDescription,
    ClientAuth,
    ClientConfig,
    ClientConnection,
    ContentType,
    Credential,
    DeferredKey,
    NamedGroup,
    OperationKind,
    PrivateKeySigner,
    ProtocolVersion,
    ServerConnection,
    SignatureScheme,
)
from handshaker.tls.codepoints import TLS_FALLBACK_SCSV, Tls12CipherSuite, Tls12ExtensionType
from handshaker.tls.messages import (
    ClientHello,
    encode_client_hello,
    encode_server_hello,
    parse_client_hello,
    parse_server_hello,
)
from handshaker.tls.tls12.common import DOWNGRADE_TLS12
from handshaker.tls.tls12.suites import TLS12_SUITES, Authentication, KeyExchange
from tls12_kit import TLS12, assert_application_data_flows, tls12_client, tls12_server

GROUPS = (
    NamedGroup.X25519,
    NamedGroup.X448,
    NamedGroup.SECP256R1,
    NamedGroup.SECP384R1,
    NamedGroup.SECP521R1,
)
KEY_FOR = {Authentication.ECDSA: "ecdsa-p256", Authentication.RSA: "rsa"}


ECDHE_SUITES = tuple(
    s for s in Tls12CipherSuite if TLS12_SUITES[s].key_exchange is KeyExchange.ECDHE
)


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: NamedGroup(g).name.lower())
@pytest.mark.parametrize("suite", ECDHE_SUITES, ids=lambda s: s.name)
def test_every_suite_completes_over_every_group(
    engine_pki: EnginePKI, suite: Tls12CipherSuite, group: int
) -> None:
    key_type = KEY_FOR[TLS12_SUITES[suite].authentication]
    # The P-256 certificate's curve must be in the client's supported_groups too (RFC 8422
    # section 5.1); the server offers `group` alone, so ECDHE runs over it.
    client_groups = tuple(dict.fromkeys((group, NamedGroup.SECP256R1)))
    outcome = handshake(
        tls12_client(
            engine_pki,
            tls12_cipher_suites=(suite,),
            supported_groups=client_groups,
            key_share_groups=(group,),
        ),
        tls12_server(engine_pki, key_type, supported_groups=(group,)),
    )
    client, server = outcome.client_result, outcome.server_result
    for result in (client, server):
        assert result.version == ProtocolVersion.TLS1_2
        assert result.cipher_suite == suite
        assert result.group == group
        assert result.extended_master_secret
        assert result.read.secret == result.write.secret == b""
        assert (result.read.sequence_number, result.write.sequence_number) == (1, 1)
        assert len(result.write.iv) == TLS12_SUITES[suite].fixed_iv_len
    assert client.write == server.read and client.read == server.write
    assert client.master_secret == server.master_secret and len(client.master_secret) == 48
    assert_application_data_flows(client, server)


@pytest.mark.parametrize(
    ("key_type", "scheme"),
    [
        ("ecdsa-p256", SignatureScheme.ECDSA_SECP256R1_SHA256),
        ("ecdsa-p384", SignatureScheme.ECDSA_SECP384R1_SHA384),
        ("ecdsa-p521", SignatureScheme.ECDSA_SECP521R1_SHA512),
        ("rsa", SignatureScheme.RSA_PSS_RSAE_SHA256),
        ("rsa-pss", SignatureScheme.RSA_PSS_PSS_SHA256),
        ("ed25519", SignatureScheme.ED25519),
        ("ed448", SignatureScheme.ED448),
    ],
)
def test_server_key_exchange_is_signed_with_each_key_type(
    engine_pki: EnginePKI, key_type: str, scheme: int
) -> None:
    if key_type not in engine_pki.servers:
        pytest.skip(engine_pki.rsa_pss_missing or key_type)
    outcome = handshake(tls12_client(engine_pki), tls12_server(engine_pki, key_type))
    assert outcome.client_result.peer_signature_scheme == scheme
    assert outcome.server_result.signature_scheme == scheme
    assert_application_data_flows(outcome.client_result, outcome.server_result)


def test_rsa_pkcs1_signs_when_the_client_allows_no_pss(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        tls12_client(engine_pki, signature_schemes=(SignatureScheme.ECDSA_SECP256R1_SHA256,)),
        tls12_server(engine_pki, "rsa"),
    )
    assert outcome.client_result.peer_signature_scheme == SignatureScheme.RSA_PKCS1_SHA256


def test_an_ecdsa_certificate_on_a_curve_the_client_lacks_is_refused(
    engine_pki: EnginePKI,
) -> None:
    # RFC 8422 section 5.1: supported_groups also bounds the server certificate's curve.
    outcome = handshake(
        tls12_client(
            engine_pki,
            supported_groups=(NamedGroup.X25519, NamedGroup.SECP256R1),
            key_share_groups=(NamedGroup.X25519,),
        ),
        tls12_server(engine_pki, "ecdsa-p384"),
    )
    assert only_failure(outcome.server_events).alert == AlertDescription.HANDSHAKE_FAILURE


# --- version negotiation -------------------------------------------------------------------


def test_both_versions_enabled_negotiates_tls_1_3(engine_pki: EnginePKI) -> None:
    outcome = handshake(client_config(engine_pki), server_config(engine_pki))
    assert outcome.client_result.version == ProtocolVersion.TLS1_3


def test_a_tls_1_2_server_meets_a_default_client_in_tls_1_2(engine_pki: EnginePKI) -> None:
    outcome = handshake(client_config(engine_pki), tls12_server(engine_pki, "rsa"))
    assert outcome.client_result.version == outcome.server_result.version == TLS12
    assert_application_data_flows(outcome.client_result, outcome.server_result)


def test_a_tls_1_2_client_meets_a_default_server_in_tls_1_2(engine_pki: EnginePKI) -> None:
    outcome = handshake(tls12_client(engine_pki), server_config(engine_pki))
    assert outcome.client_result.version == TLS12
    (server_hello,) = [m for m in _messages(outcome.sent_by("server")[0]) if m[0] == 2]
    # RFC 8446 section 4.1.3: a TLS 1.3-capable server marks a TLS 1.2 ServerHello.
    assert parse_server_hello(server_hello[4:]).random[-8:] == DOWNGRADE_TLS12


def test_a_tls_1_2_only_server_writes_no_downgrade_sentinel(engine_pki: EnginePKI) -> None:
    outcome = handshake(tls12_client(engine_pki), tls12_server(engine_pki))
    (server_hello,) = [m for m in _messages(outcome.sent_by("server")[0]) if m[0] == 2]
    assert parse_server_hello(server_hello[4:]).random[-8:] != DOWNGRADE_TLS12


def test_a_downgrade_sentinel_is_an_illegal_parameter_to_a_tls_1_3_client(
    engine_pki: EnginePKI,
) -> None:
    server = ServerConnection(tls12_server(engine_pki))
    client = ClientConnection(client_config(engine_pki))
    server.receive_data(client.data_to_send())
    records = split_records(server.data_to_send())
    messages = _messages(b"".join(records))
    hello = parse_server_hello(messages[0][4:])
    forged = dataclasses.replace(hello, random=hello.random[:24] + DOWNGRADE_TLS12)
    client.receive_data(plaintext_record(ContentType.HANDSHAKE, encode_server_hello(forged)))
    assert only_failure(list(client.events())).alert == AlertDescription.ILLEGAL_PARAMETER


def test_tls_1_3_only_client_and_tls_1_2_only_server_fail_with_protocol_version(
    engine_pki: EnginePKI,
) -> None:
    outcome = handshake(
        client_config(engine_pki, min_version=ProtocolVersion.TLS1_3), tls12_server(engine_pki)
    )
    assert only_failure(outcome.server_events).alert == AlertDescription.PROTOCOL_VERSION


def test_fallback_scsv_below_our_highest_version_is_an_inappropriate_fallback(
    engine_pki: EnginePKI,
) -> None:
    hello = _first_hello(tls12_client(engine_pki))
    hello = dataclasses.replace(hello, cipher_suites=(*hello.cipher_suites, TLS_FALLBACK_SCSV))
    server = ServerConnection(server_config(engine_pki))
    server.receive_data(plaintext_record(ContentType.HANDSHAKE, encode_client_hello(hello)))
    assert only_failure(list(server.events())).alert == AlertDescription.INAPPROPRIATE_FALLBACK


def test_fallback_scsv_at_our_highest_version_is_accepted(engine_pki: EnginePKI) -> None:
    hello = _first_hello(tls12_client(engine_pki))
    hello = dataclasses.replace(hello, cipher_suites=(*hello.cipher_suites, TLS_FALLBACK_SCSV))
    server = ServerConnection(tls12_server(engine_pki))
    server.receive_data(plaintext_record(ContentType.HANDSHAKE, encode_client_hello(hello)))
    assert list(server.events()) == []
    assert server.data_to_send()


# --- extensions ----------------------------------------------------------------------------


def _first_hello(config: ClientConfig) -> ClientHello:
    """The ClientHello a fresh client sends."""
    client = ClientConnection(config)
    return parse_client_hello(_messages(client.data_to_send())[0][4:])


def _messages(flight: bytes) -> list[bytes]:
    data = b"".join(r[5:] for r in split_records(flight) if r[0] == ContentType.HANDSHAKE)
    out = []
    pos = 0
    while pos + 4 <= len(data):
        end = pos + 4 + int.from_bytes(data[pos + 1 : pos + 4], "big")
        out.append(data[pos:end])
        pos = end
    return out


def _without(hello: ClientHello, ext_type: int) -> bytes:
    stripped = dataclasses.replace(
        hello,
        extensions=tuple((t, d) for t, d in hello.extensions if t != ext_type),
    )
    return plaintext_record(ContentType.HANDSHAKE, encode_client_hello(stripped))


def test_the_client_hello_offers_both_versions_and_the_tls_1_2_extensions(
    engine_pki: EnginePKI,
) -> None:
    hello = _first_hello(client_config(engine_pki))
    assert hello.supported_versions == (ProtocolVersion.TLS1_3, ProtocolVersion.TLS1_2)
    suites = hello.cipher_suites
    # The RSA and DHE_RSA key exchanges are opt-in: not offered by default.
    assert suites[:3] == (0x1301, 0x1302, 0x1303) and set(suites[3:]) == set(ECDHE_SUITES)
    types = {t for t, _ in hello.extensions}
    assert {
        Tls12ExtensionType.EC_POINT_FORMATS,
        Tls12ExtensionType.EXTENDED_MASTER_SECRET,
        Tls12ExtensionType.RENEGOTIATION_INFO,
    } <= types


def test_a_client_without_extended_master_secret_is_refused_by_default(
    engine_pki: EnginePKI,
) -> None:
    hello = _first_hello(tls12_client(engine_pki))
    server = ServerConnection(tls12_server(engine_pki))
    server.receive_data(_without(hello, Tls12ExtensionType.EXTENDED_MASTER_SECRET))
    assert only_failure(list(server.events())).alert == AlertDescription.HANDSHAKE_FAILURE


def test_a_server_allowing_the_legacy_master_secret_answers_without_the_extension(
    engine_pki: EnginePKI,
) -> None:
    client = ClientConnection(tls12_client(engine_pki))
    server = ServerConnection(tls12_server(engine_pki, require_extended_master_secret=False))
    hello = parse_client_hello(_messages(client.data_to_send())[0][4:])
    server.receive_data(_without(hello, Tls12ExtensionType.EXTENDED_MASTER_SECRET))
    assert list(server.events()) == []
    (server_hello,) = [m for m in _messages(server.data_to_send()) if m[0] == 2]
    extensions = {t for t, _ in parse_server_hello(server_hello[4:]).extensions}
    assert Tls12ExtensionType.EXTENDED_MASTER_SECRET not in extensions


def test_a_server_without_extended_master_secret_is_refused_by_the_client(
    engine_pki: EnginePKI,
) -> None:
    client = ClientConnection(tls12_client(engine_pki))
    server = ServerConnection(tls12_server(engine_pki, require_extended_master_secret=False))
    hello = parse_client_hello(_messages(client.data_to_send())[0][4:])
    server.receive_data(_without(hello, Tls12ExtensionType.EXTENDED_MASTER_SECRET))
    client.receive_data(server.data_to_send())
    assert only_failure(list(client.events())).alert == AlertDescription.HANDSHAKE_FAILURE


def test_a_non_empty_renegotiation_info_is_a_handshake_failure(engine_pki: EnginePKI) -> None:
    hello = _first_hello(tls12_client(engine_pki))
    forged = dataclasses.replace(
        hello,
        extensions=tuple(
            (t, b"\x01\x00" if t == Tls12ExtensionType.RENEGOTIATION_INFO else d)
            for t, d in hello.extensions
        ),
    )
    server = ServerConnection(tls12_server(engine_pki))
    server.receive_data(plaintext_record(ContentType.HANDSHAKE, encode_client_hello(forged)))
    assert only_failure(list(server.events())).alert == AlertDescription.HANDSHAKE_FAILURE


def test_the_renegotiation_scsv_stands_for_the_extension(engine_pki: EnginePKI) -> None:
    hello = _first_hello(tls12_client(engine_pki))
    hello = dataclasses.replace(hello, cipher_suites=(*hello.cipher_suites, 0x00FF))
    server = ServerConnection(tls12_server(engine_pki))
    server.receive_data(_without(hello, Tls12ExtensionType.RENEGOTIATION_INFO))
    (server_hello,) = [m for m in _messages(server.data_to_send()) if m[0] == 2]
    extensions = dict(parse_server_hello(server_hello[4:]).extensions)
    assert extensions[Tls12ExtensionType.RENEGOTIATION_INFO] == b"\x00"


def test_alpn_and_sni_are_negotiated(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        tls12_client(engine_pki, alpn_protocols=(b"h2", b"http/1.1")),
        tls12_server(engine_pki, alpn_protocols=(b"http/1.1",)),
    )
    assert outcome.client_result.alpn_protocol == outcome.server_result.alpn_protocol == b"http/1.1"
    assert outcome.server_result.server_name == "localhost"


def test_no_common_alpn_protocol_is_a_no_application_protocol(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        tls12_client(engine_pki, alpn_protocols=(b"h2",)),
        tls12_server(engine_pki, alpn_protocols=(b"http/1.1",)),
    )
    assert only_failure(outcome.server_events).alert == AlertDescription.NO_APPLICATION_PROTOCOL


def test_exporter_and_keylog_agree_on_both_sides(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        tls12_client(engine_pki, keylog=True), tls12_server(engine_pki, keylog=True)
    )
    client, server = outcome.client_result, outcome.server_result
    for context in (None, b"", b"ctx"):
        assert client.export_keying_material(b"EXPORTER-x", context, 32) == (
            server.export_keying_material(b"EXPORTER-x", context, 32)
        )
    assert client.export_keying_material(b"EXPORTER-x", None, 32) != (
        client.export_keying_material(b"EXPORTER-x", b"", 32)
    )
    line = f"CLIENT_RANDOM {client.client_random.hex()} {client.master_secret.hex()}"
    assert client.keylog == server.keylog == (line,)
    assert client.master_secret.hex() not in repr(client)


# --- client authentication ----------------------------------------------------------------


@pytest.mark.parametrize("client_key", ["ecdsa-p256", "ed25519"])
def test_a_requested_client_certificate_is_verified(engine_pki: EnginePKI, client_key: str) -> None:
    leaf = engine_pki.clients[client_key]
    outcome = handshake(
        tls12_client(engine_pki, credential=leaf.credential()),
        tls12_server(
            engine_pki,
            "rsa",
            client_auth=ClientAuth.REQUIRED,
            client_trust_anchors=(engine_pki.root,),
        ),
    )
    assert outcome.server_result.peer_certificates == leaf.chain_der
    assert outcome.server_result.peer_signature_scheme == outcome.client_result.signature_scheme
    assert_application_data_flows(outcome.client_result, outcome.server_result)


def test_optional_client_auth_completes_without_a_certificate(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        tls12_client(engine_pki),
        tls12_server(
            engine_pki, client_auth=ClientAuth.OPTIONAL, client_trust_anchors=(engine_pki.root,)
        ),
    )
    assert outcome.server_result.peer_certificates == ()


def test_required_client_auth_without_a_certificate_is_a_handshake_failure(
    engine_pki: EnginePKI,
) -> None:
    outcome = handshake(
        tls12_client(engine_pki),
        tls12_server(
            engine_pki, client_auth=ClientAuth.REQUIRED, client_trust_anchors=(engine_pki.root,)
        ),
    )
    assert only_failure(outcome.server_events).alert == AlertDescription.HANDSHAKE_FAILURE


def test_an_untrusted_client_certificate_is_refused(engine_pki: EnginePKI) -> None:
    outcome = handshake(
        tls12_client(engine_pki, credential=engine_pki.untrusted_client.credential()),
        tls12_server(
            engine_pki, client_auth=ClientAuth.REQUIRED, client_trust_anchors=(engine_pki.root,)
        ),
    )
    assert only_failure(outcome.server_events).alert in (
        AlertDescription.UNKNOWN_CA,
        AlertDescription.BAD_CERTIFICATE,
    )


# --- waiting private-key operations -------------------------------------------------------


def test_server_key_exchange_waits_for_a_deferred_signature(engine_pki: EnginePKI) -> None:
    leaf = engine_pki.servers["ecdsa-p256"]
    signer = PrivateKeySigner(leaf.key)
    credential = Credential(leaf.chain, DeferredKey("hsm-1", signer.signature_schemes))
    client = ClientConnection(tls12_client(engine_pki))
    server = ServerConnection(tls12_server(engine_pki, credential=credential))
    server.receive_data(client.data_to_send())
    operation = server.pending_operation
    assert operation is not None and operation.kind is OperationKind.SIGN
    assert operation.scheme == SignatureScheme.ECDSA_SECP256R1_SHA256
    assert server.data_to_send() == b""
    server.complete_private_key_operation(signer.sign(operation.scheme, operation.data))
    outcome = pump(client, server)
    assert_application_data_flows(outcome.client_result, outcome.server_result)


def test_client_certificate_verify_waits_for_a_deferred_signature(engine_pki: EnginePKI) -> None:
    leaf = engine_pki.clients["ecdsa-p256"]
    signer = PrivateKeySigner(leaf.key)
    credential = Credential(leaf.chain, DeferredKey("hsm-2", signer.signature_schemes))
    client = ClientConnection(tls12_client(engine_pki, credential=credential))
    server = ServerConnection(
        tls12_server(
            engine_pki, client_auth=ClientAuth.REQUIRED, client_trust_anchors=(engine_pki.root,)
        )
    )
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    operation = client.pending_operation
    assert operation is not None
    client.complete_private_key_operation(signer.sign(operation.scheme, operation.data))
    outcome = pump(client, server)
    assert outcome.server_result.peer_certificates == leaf.chain_der


def test_record_size_limit_is_negotiated_in_tls_1_2(engine_pki: EnginePKI) -> None:
    # RFC 8449 section 4: in TLS 1.2 the limit counts the plaintext alone, at most 2^14.
    outcome = handshake(
        tls12_client(engine_pki, record_size_limit=512),
        tls12_server(engine_pki, record_size_limit=2**14 + 1),
    )
    assert outcome.client_result.peer_record_size_limit == 2**14
    assert outcome.server_result.peer_record_size_limit == 512
    assert outcome.server.write_fragment_limit == 512


def test_record_size_limit_is_not_sent_without_our_own(engine_pki: EnginePKI) -> None:
    outcome = handshake(tls12_client(engine_pki, record_size_limit=512), tls12_server(engine_pki))
    assert outcome.server_result.peer_record_size_limit == 2**14
    (server_hello,) = [m for m in _messages(outcome.sent_by("server")[0]) if m[0] == 2]
    assert 28 not in {t for t, _ in parse_server_hello(server_hello[4:]).extensions}
