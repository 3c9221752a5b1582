"""Private-key operations that wait: the engine stops, reports the operation, and resumes.

A DeferredKey credential makes the engine stop before its CertificateVerify with
a PrivateKeyOperation (kind, key, scheme, the whole content to sign); the caller
signs and calls complete_private_key_operation. The bytes and result are those
of an inline Signer on the same key and RNG (Ed25519 signs deterministically).
"""

from __future__ import annotations

import pytest
from engine_kit import (
    EnginePKI,
    Leaf,
    client_config,
    only_complete,
    only_failure,
    seeded_random,
    server_config,
)
from handshaker.tls import (
    AlertDescription,
    ClientAuth,
    ClientConnection,
    ConnectionState,
    Credential,
    DeferredKey,
    NamedGroup,
    OperationKind,
    PrivateKeySigner,
    ServerConnection,
    SignatureScheme,
    StateError,
)
from handshaker.tls.connection import Connection
from handshaker.tls.signatures import (
    CLIENT_CONTEXT,
    SERVER_CONTEXT,
    certificate_verify_content,
    verify_certificate_verify,
)


def _deferred(leaf: Leaf, key_id: str) -> tuple[Credential, PrivateKeySigner]:
    signer = PrivateKeySigner(leaf.key, rsa_pss_pss=leaf.rsa_pss)
    return Credential(leaf.chain, DeferredKey(key_id, signer.signature_schemes)), signer


def _complete_pending(conn: Connection, signer: PrivateKeySigner) -> None:
    operation = conn.pending_operation
    assert operation is not None
    conn.complete_private_key_operation(signer.sign(operation.scheme, operation.data))


def _run(
    client: ClientConnection,
    server: ServerConnection,
    signers: dict[str, PrivateKeySigner],
) -> list[bytes]:
    """Pump bytes both ways, completing every pending operation; the flights, in order."""
    flights: list[bytes] = []
    for _ in range(10):
        moved = False
        for name, source, sink in (("client", client, server), ("server", server, client)):
            if source.pending_operation is not None:
                _complete_pending(source, signers[name])
                moved = True
            data = source.data_to_send()
            if data and sink.state is ConnectionState.HANDSHAKING:
                flights.append(data)
                sink.receive_data(data)
                moved = True
        if not moved:
            break
    return flights


def test_server_stops_for_its_certificate_verify_and_reports_the_operation(
    engine_pki: EnginePKI,
) -> None:
    leaf = engine_pki.servers["ed25519"]
    credential, _ = _deferred(leaf, "hsm-key-1")
    client = ClientConnection(client_config(engine_pki))
    server = ServerConnection(server_config(engine_pki, credential=credential))
    server.receive_data(client.data_to_send())
    operation = server.pending_operation
    assert operation is not None
    assert operation.kind is OperationKind.SIGN
    assert operation.key_id == "hsm-key-1"
    assert operation.scheme == SignatureScheme.ED25519
    assert operation.data.startswith(b" " * 64 + SERVER_CONTEXT + b"\x00")
    # The ServerHello goes out at once (the client computes its keys meanwhile); the
    # protected part of the flight waits for the signature.
    early = server.data_to_send()
    assert early[:1] == b"\x16" and early[5:6] == b"\x02"
    hello_end = 5 + int.from_bytes(early[3:5], "big")
    assert early[hello_end:] == b"\x14\x03\x03\x00\x01\x01"  # appendix D.4's dummy CCS
    assert server.state is ConnectionState.HANDSHAKING


def test_a_deferred_server_key_gives_the_bytes_and_keys_of_an_inline_signer(
    engine_pki: EnginePKI,
) -> None:
    leaf = engine_pki.servers["ed25519"]
    credential, signer = _deferred(leaf, "k")
    # X25519 alone: ML-KEM encapsulation draws randomness the RNG cannot replay.
    x25519 = {"supported_groups": (NamedGroup.X25519,), "key_share_groups": (NamedGroup.X25519,)}
    inline = (
        ClientConnection(client_config(engine_pki, **x25519), random=seeded_random("c")),
        ServerConnection(server_config(engine_pki, "ed25519"), random=seeded_random("s")),
    )
    deferred = (
        ClientConnection(client_config(engine_pki, **x25519), random=seeded_random("c")),
        ServerConnection(
            server_config(engine_pki, credential=credential), random=seeded_random("s")
        ),
    )
    inline_flights = _run(*inline, {})
    deferred_flights = _run(*deferred, {"server": signer})
    assert b"".join(deferred_flights) == b"".join(inline_flights)
    results = [[only_complete(list(conn.events())) for conn in pair] for pair in (inline, deferred)]
    assert results[0] == results[1]


def test_client_stops_for_its_certificate_verify_under_client_auth(engine_pki: EnginePKI) -> None:
    leaf = engine_pki.clients["ecdsa-p256"]
    credential, signer = _deferred(leaf, "client-key")
    client = ClientConnection(client_config(engine_pki, credential=credential))
    server = ServerConnection(
        server_config(
            engine_pki, client_auth=ClientAuth.REQUIRED, client_trust_anchors=(engine_pki.root,)
        )
    )
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    operation = client.pending_operation
    assert operation is not None
    assert operation.scheme == SignatureScheme.ECDSA_SECP256R1_SHA256
    assert operation.data.startswith(b" " * 64 + CLIENT_CONTEXT + b"\x00")
    signature = signer.sign(operation.scheme, operation.data)
    verify_certificate_verify(leaf.certificate, operation.scheme, signature, operation.data)
    client.complete_private_key_operation(signature)
    server.receive_data(client.data_to_send())
    client_result = only_complete(list(client.events()))
    server_result = only_complete(list(server.events()))
    assert server_result.peer_certificates == leaf.chain_der
    assert client_result.signature_scheme == operation.scheme
    assert client_result.write == server_result.read


def test_the_signed_content_covers_the_transcript_so_far(engine_pki: EnginePKI) -> None:
    leaf = engine_pki.servers["ecdsa-p256"]
    credential, signer = _deferred(leaf, "k")
    client = ClientConnection(client_config(engine_pki))
    server = ServerConnection(server_config(engine_pki, credential=credential))
    server.receive_data(client.data_to_send())
    operation = server.pending_operation
    assert operation is not None
    transcript_hash = operation.data[-32:]
    assert operation.data == certificate_verify_content(SERVER_CONTEXT, transcript_hash)
    # A wrong signature is caught by the client, as the RFC asks: decrypt_error.
    server.complete_private_key_operation(signer.sign(operation.scheme, b"something else"))
    client.receive_data(server.data_to_send())
    assert only_failure(list(client.events())).alert == AlertDescription.DECRYPT_ERROR


def test_a_failed_operation_ends_the_handshake_with_internal_error_and_its_reason(
    engine_pki: EnginePKI,
) -> None:
    credential, _ = _deferred(engine_pki.servers["ed25519"], "k")
    client = ClientConnection(client_config(engine_pki))
    server = ServerConnection(server_config(engine_pki, credential=credential))
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())  # the ServerHello: the client has the keys
    server.fail_private_key_operation("keystore pkcs11:token=t: token removed")
    failure = only_failure(list(server.events()))
    assert failure.alert == AlertDescription.INTERNAL_ERROR
    assert failure.reason == "keystore pkcs11:token=t: token removed"
    assert server.state is ConnectionState.FAILED
    assert server.pending_operation is None
    # RFC 8446 section 6: the alert goes out under the handshake keys, and the client
    # reads the internal_error it carries.
    client.receive_data(server.data_to_send())
    peer = only_failure(list(client.events()))
    assert (peer.alert, peer.sent_by_peer) == (AlertDescription.INTERNAL_ERROR, True)


def test_bytes_that_arrive_while_an_operation_is_out_are_held_until_it_completes(
    engine_pki: EnginePKI,
) -> None:
    leaf = engine_pki.clients["ed25519"]
    credential, signer = _deferred(leaf, "client-key")
    client = ClientConnection(client_config(engine_pki, credential=credential))
    server = ServerConnection(
        server_config(
            engine_pki, client_auth=ClientAuth.REQUIRED, client_trust_anchors=(engine_pki.root,)
        )
    )
    server.receive_data(client.data_to_send())
    flight = server.data_to_send()
    # The flight's last record arrives while the client waits for its key.
    client.receive_data(flight[:40])
    client.receive_data(flight[40:])
    if client.pending_operation is None:
        pytest.fail("the client did not stop for its CertificateVerify")
    client.receive_data(b"\x15\x03\x03\x00\x02\x01\x00")  # a close_notify held back
    _complete_pending(client, signer)
    assert client.state is ConnectionState.COMPLETE
    assert client.take_unconsumed() == b"\x15\x03\x03\x00\x02\x01\x00"


def test_completing_without_a_pending_operation_is_a_state_error(engine_pki: EnginePKI) -> None:
    client = ClientConnection(client_config(engine_pki))
    with pytest.raises(StateError):
        client.complete_private_key_operation(b"sig")
    with pytest.raises(StateError):
        client.fail_private_key_operation("nothing is pending")


def test_an_inline_signer_that_fails_names_the_reason(engine_pki: EnginePKI) -> None:
    class BrokenSigner:
        signature_schemes = (SignatureScheme.ED25519,)

        def sign(self, scheme: int, message: bytes) -> bytes:
            from handshaker.tls import SignerError

            raise SignerError("keystore dir:/keys: tls.key unreadable")

    credential = Credential(engine_pki.servers["ed25519"].chain, BrokenSigner())
    client = ClientConnection(client_config(engine_pki))
    server = ServerConnection(server_config(engine_pki, credential=credential))
    server.receive_data(client.data_to_send())
    failure = only_failure(list(server.events()))
    assert failure.alert == AlertDescription.INTERNAL_ERROR
    assert "keystore dir:/keys: tls.key unreadable" in failure.reason
