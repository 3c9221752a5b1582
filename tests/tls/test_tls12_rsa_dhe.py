"""The opt-in TLS 1.2 key exchanges, engine against engine: RSA (RFC 5246 section 7.4.7.1)
with implicit rejection, and DHE_RSA over the RFC 7919 groups only.

Implicit rejection: a ClientKeyExchange whose plaintext has a bad padding, a wrong
length or a wrong version must look the same to the client as any other: the server
goes on to the client's Finished and fails there (its record does not authenticate:
bad_record_mac), after the same steps and with the same alert, whatever was wrong.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import padding
from engine_kit import EnginePKI, handshake, only_failure, pump, split_records
from handshaker.tls import (
    AlertDescription,
    ClientAuth,
    ClientConnection,
    ContentType,
    Credential,
    DeferredKey,
    Event,
    HandshakeComplete,
    HandshakeFailed,
    NamedGroup,
    OperationKind,
    PrivateKeySigner,
    ServerConnection,
    compiled,
)
from handshaker.tls.codepoints import HandshakeType, Tls12CipherSuite
from handshaker.tls.errors import InsufficientSecurity
from handshaker.tls.ffdhe import FFDHE_PRIMES
from handshaker.tls.tls12 import dhe, rsa_kex
from handshaker.tls.tls12 import server as server_module
from handshaker.tls.tls12.messages import encode_dh_params, opaque16_client_key_exchange_body
from handshaker.tls.tls12.suites import DEFAULT_TLS12_CIPHER_SUITES
from tls12_kit import TLS12, assert_application_data_flows, tls12_client, tls12_server

_S = Tls12CipherSuite
RSA_SUITES = (_S.TLS_RSA_WITH_AES_128_GCM_SHA256, _S.TLS_RSA_WITH_AES_256_GCM_SHA384)
DHE_SUITES = (
    _S.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
    _S.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384,
    _S.TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
)
FFDHE = (NamedGroup.FFDHE2048, NamedGroup.FFDHE3072)


@pytest.mark.parametrize("suite", RSA_SUITES, ids=lambda s: s.name)
def test_rsa_key_exchange_completes(engine_pki: EnginePKI, suite: int) -> None:
    outcome = handshake(
        tls12_client(engine_pki, tls12_cipher_suites=(suite,)),
        tls12_server(engine_pki, "rsa", tls12_cipher_suites=(suite,)),
    )
    for result in (outcome.client_result, outcome.server_result):
        assert (result.version, result.cipher_suite, result.group) == (TLS12, suite, 0)
        assert result.extended_master_secret
    # Nothing signs in the RSA key exchange.
    assert outcome.server_result.signature_scheme is None
    assert outcome.client_result.peer_signature_scheme is None
    assert_application_data_flows(outcome.client_result, outcome.server_result)


@pytest.mark.parametrize("group", FFDHE, ids=lambda g: NamedGroup(g).name.lower())
@pytest.mark.parametrize("suite", DHE_SUITES, ids=lambda s: s.name)
def test_dhe_rsa_completes_over_rfc7919_groups(
    engine_pki: EnginePKI, suite: int, group: int
) -> None:
    outcome = handshake(
        tls12_client(engine_pki, tls12_cipher_suites=(suite,), supported_groups=(group,),
                     key_share_groups=(group,)),
        tls12_server(engine_pki, "rsa", tls12_cipher_suites=(suite,)),
    )  # fmt: skip
    for result in (outcome.client_result, outcome.server_result):
        assert (result.version, result.cipher_suite, result.group) == (TLS12, suite, group)
    assert outcome.server_result.signature_scheme is not None
    assert_application_data_flows(outcome.client_result, outcome.server_result)


def test_the_opt_in_suites_are_not_offered_or_accepted_by_default(engine_pki: EnginePKI) -> None:
    assert not set(RSA_SUITES + DHE_SUITES) & set(DEFAULT_TLS12_CIPHER_SUITES)
    failure = only_failure(
        handshake(
            tls12_client(engine_pki, tls12_cipher_suites=RSA_SUITES + DHE_SUITES),
            tls12_server(engine_pki, "rsa"),
        ).server_events
    )
    assert failure.alert == AlertDescription.HANDSHAKE_FAILURE


def test_dhe_is_not_chosen_when_no_ffdhe_group_the_client_names_is_ours(
    engine_pki: EnginePKI,
) -> None:
    # RFC 7919 section 4: the client names ffdhe3072 only, the server speaks ffdhe2048.
    suites = (DHE_SUITES[0], _S.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
    groups = (NamedGroup.FFDHE3072, NamedGroup.X25519)
    outcome = handshake(
        tls12_client(engine_pki, tls12_cipher_suites=suites, supported_groups=groups,
                     key_share_groups=(NamedGroup.X25519,)),
        tls12_server(engine_pki, "rsa", tls12_cipher_suites=suites,
                     supported_groups=(NamedGroup.X25519, NamedGroup.FFDHE2048)),
    )  # fmt: skip
    assert outcome.server_result.cipher_suite == _S.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256


def test_a_client_naming_no_ffdhe_group_gets_the_servers_first_rfc7919_group(
    engine_pki: EnginePKI,
) -> None:
    suite = DHE_SUITES[0]
    outcome = handshake(
        tls12_client(engine_pki, tls12_cipher_suites=(suite,),
                     supported_groups=(NamedGroup.X25519,), key_share_groups=(NamedGroup.X25519,)),
        tls12_server(engine_pki, "rsa", tls12_cipher_suites=(suite,)),
    )  # fmt: skip
    assert outcome.server_result.cipher_suite == suite
    assert outcome.client_result.group == NamedGroup.FFDHE2048


def test_a_client_refuses_dhe_parameters_that_are_not_a_named_group() -> None:
    with pytest.raises(InsufficientSecurity, match="RFC 7919"):
        dhe.named_group(2**2048 - 159, 2, FFDHE)  # not one of RFC 7919's primes
    with pytest.raises(InsufficientSecurity):
        dhe.named_group(FFDHE_PRIMES[NamedGroup.FFDHE2048], 5, FFDHE)  # another generator


@pytest.mark.skipif(
    compiled.ENGINE == "compiled",
    reason="patches tls12.dhe.server_dh_params, which the compiled engine calls directly; "
    "runs in the suite's pure-Python engine pass (HANDSHAKER_ENGINE=python)",
)
def test_a_signed_server_prime_the_client_did_not_offer_is_insufficient_security(
    engine_pki: EnginePKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server signs ffdhe3072's prime although the client named only ffdhe2048.
    def other_prime(group: int, public: bytes) -> bytes:
        return encode_dh_params(FFDHE_PRIMES[NamedGroup.FFDHE3072], 2, public)

    monkeypatch.setattr(server_module.dhe, "server_dh_params", other_prime)
    suite = DHE_SUITES[0]
    group = NamedGroup.FFDHE2048
    outcome = handshake(
        tls12_client(engine_pki, tls12_cipher_suites=(suite,), supported_groups=(group,),
                     key_share_groups=(group,)),
        tls12_server(engine_pki, "rsa", tls12_cipher_suites=(suite,)),
    )  # fmt: skip
    assert only_failure(outcome.client_events).alert == AlertDescription.INSUFFICIENT_SECURITY


def test_an_ecdsa_credential_never_gets_an_rsa_key_exchange(engine_pki: EnginePKI) -> None:
    failure = only_failure(
        handshake(
            tls12_client(engine_pki, tls12_cipher_suites=RSA_SUITES),
            tls12_server(engine_pki, "ecdsa-p256", tls12_cipher_suites=RSA_SUITES),
        ).server_events
    )
    assert failure.alert == AlertDescription.HANDSHAKE_FAILURE


def test_rsa_key_exchange_with_client_authentication(engine_pki: EnginePKI) -> None:
    suite = RSA_SUITES[0]
    outcome = handshake(
        tls12_client(engine_pki, tls12_cipher_suites=(suite,),
                     credential=engine_pki.clients["ecdsa-p256"].credential()),
        tls12_server(engine_pki, "rsa", tls12_cipher_suites=(suite,),
                     client_auth=ClientAuth.REQUIRED, client_trust_anchors=(engine_pki.root,)),
    )  # fmt: skip
    assert outcome.server_result.peer_certificates == engine_pki.clients["ecdsa-p256"].chain_der


def test_the_decryption_waits_for_a_deferred_key(engine_pki: EnginePKI) -> None:
    suite = RSA_SUITES[1]
    leaf = engine_pki.servers["rsa"]
    signer = PrivateKeySigner(leaf.key)
    credential = Credential(leaf.chain, DeferredKey("hsm-rsa", signer.signature_schemes,
                                                    decrypts=True))  # fmt: skip
    client = ClientConnection(tls12_client(engine_pki, tls12_cipher_suites=(suite,)))
    server = ServerConnection(
        tls12_server(engine_pki, "rsa", tls12_cipher_suites=(suite,), credential=credential)
    )
    server.receive_data(client.data_to_send())
    assert server.pending_operation is None  # no ServerKeyExchange to sign
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    operation = server.pending_operation
    assert operation is not None and operation.kind is OperationKind.DECRYPT
    assert operation.key_id == "hsm-rsa"
    server.complete_private_key_operation(leaf.key.decrypt(operation.data, padding.PKCS1v15()))
    outcome = pump(client, server)
    assert_application_data_flows(outcome.client_result, outcome.server_result)


def test_a_deferred_key_that_may_not_decrypt_gets_no_rsa_key_exchange(
    engine_pki: EnginePKI,
) -> None:
    leaf = engine_pki.servers["rsa"]
    credential = Credential(leaf.chain, DeferredKey("sign-only", PrivateKeySigner(leaf.key)
                                                    .signature_schemes))  # fmt: skip
    failure = only_failure(
        handshake(
            tls12_client(engine_pki, tls12_cipher_suites=RSA_SUITES),
            tls12_server(engine_pki, "rsa", tls12_cipher_suites=RSA_SUITES, credential=credential),
        ).server_events
    )
    assert failure.alert == AlertDescription.HANDSHAKE_FAILURE


# --- implicit rejection ---------------------------------------------------------------

def _mutations(leaf_key: object) -> dict[str, bytes]:
    """Plaintexts (or raw ciphertexts) a broken or hostile client could send instead."""
    public = leaf_key.public_key()  # type: ignore[attr-defined]
    size = public.key_size // 8
    encrypt = lambda m: public.encrypt(m, padding.PKCS1v15())  # noqa: E731
    return {
        "bad padding": bytes(size - 1) + b"\x01",  # not a PKCS#1 v1.5 block at all
        "random ciphertext": bytes(range(size)),
        "47 bytes": encrypt(b"\x03\x03" + bytes(45)),
        "49 bytes": encrypt(b"\x03\x03" + bytes(47)),
        "wrong version": encrypt(b"\x03\x01" + bytes(46)),
        "empty plaintext": encrypt(b""),
        "right length, other secret": encrypt(b"\x03\x03" + b"\x07" * 46),
    }


def _run_with_ciphertext(
    engine_pki: EnginePKI, ciphertext: bytes | None
) -> tuple[list[Event], str]:
    """A client handshake whose ClientKeyExchange carries `ciphertext` (None: its own)."""
    suite = RSA_SUITES[0]
    client = ClientConnection(tls12_client(engine_pki, tls12_cipher_suites=(suite,)))
    server = ServerConnection(tls12_server(engine_pki, "rsa", tls12_cipher_suites=(suite,)))
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    flight = client.data_to_send()
    if ciphertext is not None:
        # Swap the ClientKeyExchange body (the flight's first record, unprotected); the
        # client keeps its own premaster secret, as when the message is forged in transit.
        record = split_records(flight)[0]
        assert record[0] == ContentType.HANDSHAKE and record[5] == HandshakeType.CLIENT_KEY_EXCHANGE
        body = opaque16_client_key_exchange_body(ciphertext)
        # A PKCS#1 ciphertext is the modulus size, so every length field stays right.
        assert len(body) == len(record) - 9
        flight = record[:9] + body + flight[len(record) :]
    server.receive_data(flight)
    return list(server.events()), type(server._state).__name__  # type: ignore[attr-defined]


def test_every_rsa_failure_looks_the_same(engine_pki: EnginePKI) -> None:
    mutations = _mutations(engine_pki.servers["rsa"].key)
    outcomes = {}
    for name, ciphertext in mutations.items():
        events, state = _run_with_ciphertext(engine_pki, ciphertext)
        failures = [e for e in events if isinstance(e, HandshakeFailed)]
        assert len(failures) == 1, name
        outcomes[name] = (failures[0].alert, failures[0].sent_by_peer, failures[0].reason, state)
    # One outcome for all: the client's encrypted Finished fails to authenticate under
    # keys from a premaster secret it does not have (bad_record_mac), same reason text.
    assert len(set(outcomes.values())) == 1, outcomes
    alert, sent_by_peer, _, state = next(iter(outcomes.values()))
    assert alert == AlertDescription.BAD_RECORD_MAC and not sent_by_peer
    assert state == "ExpectFinished"


def test_the_unmutated_key_exchange_still_completes(engine_pki: EnginePKI) -> None:
    events, _ = _run_with_ciphertext(engine_pki, None)
    assert [type(e) for e in events] == [HandshakeComplete]


def test_server_premaster_is_the_version_and_r_for_every_bad_plaintext() -> None:
    r = bytes(range(46))
    good = b"\x03\x03" + b"\x11" * 46
    assert rsa_kex.server_premaster(good, 0x0303, r) == good
    # RFC 5246: the version bytes always come from ClientHello.client_version.
    assert rsa_kex.server_premaster(b"\x03\x01" + b"\x11" * 46, 0x0303, r) == good
    for bad in (b"", b"\x03\x03" + bytes(45), good + b"\x00", bytes(100)):
        assert rsa_kex.server_premaster(bad, 0x0303, r) == b"\x03\x03" + r
