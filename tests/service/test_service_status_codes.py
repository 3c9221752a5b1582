"""The status table: gRPC codes report API misuse; a TLS failure is an OK RPC with state FAILED.

Ownership and session caps need several callers and live in test_service_sessions.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import grpc
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from handshaker.tls import AlertDescription, CipherSuite, ContentType
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from pki import TestPKI
from service_kit import (
    COMPLETE,
    FAILED,
    NEED_INPUT,
    StreamHandshake,
    UnaryHandshake,
    client_options,
    open_handshake,
    relay,
)

APIS = ("unary", "stream")
MAX_IN_BYTES = 1 << 20
UNKNOWN_SUITE = 0x13FF
NOT_A_CERTIFICATE = (
    "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
)
ALERT_LEVEL_FATAL = 2


def status_of(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    error = raised.value
    assert isinstance(error, grpc.Call)
    code: grpc.StatusCode = error.code()
    return code


def stream_status(stub: pb_grpc.HandshakerStub, *requests: pb.HandshakeRequest) -> grpc.StatusCode:
    """Send `requests` on one Handshake stream and read until it ends; the final status."""
    stream = StreamHandshake(stub, None)
    try:
        for request in requests:
            stream.send(request)
        with pytest.raises(grpc.RpcError) as raised:
            while True:
                stream.receive()
        code: grpc.StatusCode = raised.value.code()
        return code
    finally:
        stream.close()


def completed_pair(stub: pb_grpc.HandshakerStub) -> tuple[UnaryHandshake, UnaryHandshake]:
    client = UnaryHandshake(stub, client_options())
    server = UnaryHandshake(stub, pb.ServerOptions())
    c, s = relay(client, server)
    assert (c.state, s.state) == (COMPLETE, COMPLETE)
    return client, server


def assert_plaintext_alert(out_bytes: bytes, alert: int) -> None:
    """out_bytes is exactly one unprotected fatal alert record carrying `alert`."""
    assert len(out_bytes) == 7, out_bytes.hex()
    assert out_bytes[0] == ContentType.ALERT
    assert out_bytes[3:5] == b"\x00\x02"
    assert out_bytes[5:] == bytes([ALERT_LEVEL_FATAL, alert])


# --- INVALID_ARGUMENT ----------------------------------------------------------------------


def test_an_unknown_cipher_suite_is_invalid_argument(stub: pb_grpc.HandshakerStub) -> None:
    bad_client = client_options(cipher_suites=[CipherSuite.TLS_AES_128_GCM_SHA256, UNKNOWN_SUITE])
    bad_server = pb.ServerOptions(cipher_suites=[UNKNOWN_SUITE])
    assert (
        status_of(lambda: stub.StartClient(pb.StartClientRequest(options=bad_client)))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        status_of(lambda: stub.StartServer(pb.StartServerRequest(options=bad_server)))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        stream_status(stub, pb.HandshakeRequest(client=bad_client))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        stream_status(stub, pb.HandshakeRequest(server=bad_server))
        == grpc.StatusCode.INVALID_ARGUMENT
    )


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_an_ip_literal_server_name_is_invalid_argument_with_a_hint(
    stub: pb_grpc.HandshakerStub, address: str
) -> None:
    """RFC 6066 section 3: no IP literal in HostName; expected_ip_address is for those."""
    options = client_options(trust_bundle="dev-ca", server_name=address)
    with pytest.raises(grpc.RpcError) as raised:
        stub.StartClient(pb.StartClientRequest(options=options))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = raised.value.details() or ""
    assert details.startswith("server_name: ") and "expected_ip_address" in details
    assert stream_status(stub, pb.HandshakeRequest(client=options)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    # The same address as expected_ip_address starts a handshake.
    options.server_name, options.expected_ip_address = "", address
    step = stub.StartClient(pb.StartClientRequest(options=options)).step
    assert step.state == NEED_INPUT and step.out_bytes


def test_a_group_the_engine_lacks_is_invalid_argument(stub: pb_grpc.HandshakerStub) -> None:
    # ffdhe6144 (RFC 7919) is a real code point the engine does not implement.
    bad_client = client_options(groups=[0x001D, 0x0103])
    bad_server = pb.ServerOptions(groups=[0x0103])
    assert (
        status_of(lambda: stub.StartClient(pb.StartClientRequest(options=bad_client)))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        status_of(lambda: stub.StartServer(pb.StartServerRequest(options=bad_server)))
        == grpc.StatusCode.INVALID_ARGUMENT
    )


@pytest.mark.parametrize("pem", ["not a pem at all", NOT_A_CERTIFICATE])
def test_trust_anchors_that_do_not_parse_are_invalid_argument(
    stub: pb_grpc.HandshakerStub, pem: str
) -> None:
    client = client_options(trust_anchors_pem=pem)
    server = pb.ServerOptions(client_auth=pb.CLIENT_AUTH_REQUIRED, client_trust_anchors_pem=pem)
    assert (
        status_of(lambda: stub.StartClient(pb.StartClientRequest(options=client)))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        status_of(lambda: stub.StartServer(pb.StartServerRequest(options=server)))
        == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_an_unknown_client_auth_value_is_invalid_argument(stub: pb_grpc.HandshakerStub) -> None:
    options = pb.ServerOptions(client_auth=99)  # type: ignore[arg-type]
    assert (
        status_of(lambda: stub.StartServer(pb.StartServerRequest(options=options)))
        == grpc.StatusCode.INVALID_ARGUMENT
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda stub: stub.Feed(pb.FeedRequest(in_bytes=b"\x16")),
        lambda stub: stub.GetKeys(pb.GetKeysRequest()),
        lambda stub: stub.ExportKeyingMaterial(
            pb.ExportKeyingMaterialRequest(label=b"EXPORTER-x", length=32)
        ),
        lambda stub: stub.Abort(pb.AbortRequest()),
    ],
    ids=["Feed", "GetKeys", "ExportKeyingMaterial", "Abort"],
)
def test_a_missing_session_id_is_invalid_argument(
    stub: pb_grpc.HandshakerStub, call: Callable[[pb_grpc.HandshakerStub], object]
) -> None:
    assert status_of(lambda: call(stub)) == grpc.StatusCode.INVALID_ARGUMENT


def test_a_stream_whose_first_message_does_not_start_is_invalid_argument(
    stub: pb_grpc.HandshakerStub,
) -> None:
    assert (
        stream_status(stub, pb.HandshakeRequest(in_bytes=b"\x16\x03\x01\x00\x00"))
        == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_a_second_start_on_a_stream_is_invalid_argument(stub: pb_grpc.HandshakerStub) -> None:
    with StreamHandshake(stub, client_options()) as stream:
        assert stream.step().state == NEED_INPUT
        stream.send(pb.HandshakeRequest(client=client_options()))
        with pytest.raises(grpc.RpcError) as raised:
            stream.receive()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_client_start_with_in_bytes_is_invalid_argument(stub: pb_grpc.HandshakerStub) -> None:
    request = pb.HandshakeRequest(client=client_options(), in_bytes=b"\x16\x03\x03\x00\x00")
    assert stream_status(stub, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_in_bytes_over_one_mebibyte_are_invalid_argument(stub: pb_grpc.HandshakerStub) -> None:
    oversized = bytes(MAX_IN_BYTES + 1)
    session = UnaryHandshake(stub, pb.ServerOptions())
    assert session.step().state == NEED_INPUT
    assert (
        status_of(
            lambda: stub.Feed(pb.FeedRequest(session_id=session.session_id, in_bytes=oversized))
        )
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        status_of(
            lambda: stub.StartServer(
                pb.StartServerRequest(options=pb.ServerOptions(), in_bytes=oversized)
            )
        )
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        stream_status(stub, pb.HandshakeRequest(server=pb.ServerOptions(), in_bytes=oversized))
        == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_one_mebibyte_of_in_bytes_is_accepted_and_fails_in_band(
    stub: pb_grpc.HandshakerStub,
) -> None:
    session = UnaryHandshake(stub, pb.ServerOptions())
    step = session.step(b"\x16" * MAX_IN_BYTES)
    assert step.state == FAILED


def test_exporting_zero_bytes_is_invalid_argument(stub: pb_grpc.HandshakerStub) -> None:
    client, _ = completed_pair(stub)
    request = pb.ExportKeyingMaterialRequest(
        session_id=client.session_id, label=b"EXPORTER-test", length=0
    )
    assert status_of(lambda: stub.ExportKeyingMaterial(request)) == grpc.StatusCode.INVALID_ARGUMENT
    request.length = 16385
    assert status_of(lambda: stub.ExportKeyingMaterial(request)) == grpc.StatusCode.INVALID_ARGUMENT
    request.length = 32
    assert len(stub.ExportKeyingMaterial(request).keying_material) == 32


# --- NOT_FOUND -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda stub, sid: stub.Feed(pb.FeedRequest(session_id=sid, in_bytes=b"\x16")),
        lambda stub, sid: stub.GetKeys(pb.GetKeysRequest(session_id=sid)),
        lambda stub, sid: stub.ExportKeyingMaterial(
            pb.ExportKeyingMaterialRequest(session_id=sid, label=b"EXPORTER-x", length=32)
        ),
        lambda stub, sid: stub.Abort(pb.AbortRequest(session_id=sid)),
    ],
    ids=["Feed", "GetKeys", "ExportKeyingMaterial", "Abort"],
)
def test_an_unknown_session_is_not_found(
    stub: pb_grpc.HandshakerStub, call: Callable[[pb_grpc.HandshakerStub, str], object]
) -> None:
    assert status_of(lambda: call(stub, "no-such-session")) == grpc.StatusCode.NOT_FOUND


def test_an_aborted_session_is_not_found(stub: pb_grpc.HandshakerStub) -> None:
    session = UnaryHandshake(stub, client_options())
    session.step()
    stub.Abort(pb.AbortRequest(session_id=session.session_id))
    assert (
        status_of(lambda: stub.Feed(pb.FeedRequest(session_id=session.session_id, in_bytes=b"x")))
        == grpc.StatusCode.NOT_FOUND
    )


def test_an_unknown_credential_is_not_found(stub: pb_grpc.HandshakerStub) -> None:
    server = pb.ServerOptions(credential="no-such-credential")
    client = client_options(credential="no-such-credential")
    assert (
        status_of(lambda: stub.StartServer(pb.StartServerRequest(options=server)))
        == grpc.StatusCode.NOT_FOUND
    )
    assert stream_status(stub, pb.HandshakeRequest(server=server)) == grpc.StatusCode.NOT_FOUND
    assert (
        status_of(lambda: stub.StartClient(pb.StartClientRequest(options=client)))
        == grpc.StatusCode.NOT_FOUND
    )


def test_a_known_credential_by_name_serves(stub: pb_grpc.HandshakerStub) -> None:
    client = UnaryHandshake(stub, client_options())
    server = UnaryHandshake(stub, pb.ServerOptions(credential="localhost"))
    c, s = relay(client, server)
    assert (c.state, s.state) == (COMPLETE, COMPLETE)


def test_an_unknown_trust_bundle_is_not_found(stub: pb_grpc.HandshakerStub) -> None:
    client = client_options(trust_bundle="no-such-bundle")
    server = pb.ServerOptions(
        client_auth=pb.CLIENT_AUTH_REQUIRED, client_trust_bundle="no-such-bundle"
    )
    assert (
        status_of(lambda: stub.StartClient(pb.StartClientRequest(options=client)))
        == grpc.StatusCode.NOT_FOUND
    )
    assert stream_status(stub, pb.HandshakeRequest(client=client)) == grpc.StatusCode.NOT_FOUND
    assert (
        status_of(lambda: stub.StartServer(pb.StartServerRequest(options=server)))
        == grpc.StatusCode.NOT_FOUND
    )


# --- FAILED_PRECONDITION ---------------------------------------------------------------------


def test_feeding_a_complete_session_is_failed_precondition(stub: pb_grpc.HandshakerStub) -> None:
    client, server = completed_pair(stub)
    for session in (client, server):
        request = pb.FeedRequest(session_id=session.session_id, in_bytes=b"\x17\x03\x03\x00\x01x")
        assert status_of(functools.partial(stub.Feed, request)) == (
            grpc.StatusCode.FAILED_PRECONDITION
        )
    # The session is still there and its keys still readable.
    assert client.keys().write.key


def test_feeding_a_failed_session_is_failed_precondition(stub: pb_grpc.HandshakerStub) -> None:
    server = UnaryHandshake(stub, pb.ServerOptions())
    assert server.step(b"GET / HTTP/1.1\r\n\r\n").state == FAILED
    assert (
        status_of(lambda: server.step(b"\x16\x03\x01\x00\x00"))
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    assert (
        status_of(lambda: stub.GetKeys(pb.GetKeysRequest(session_id=server.session_id)))
        == grpc.StatusCode.FAILED_PRECONDITION
    )


def test_get_keys_before_complete_is_failed_precondition(stub: pb_grpc.HandshakerStub) -> None:
    client = UnaryHandshake(stub, client_options())
    assert client.step().state == NEED_INPUT
    assert (
        status_of(lambda: stub.GetKeys(pb.GetKeysRequest(session_id=client.session_id)))
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    export = pb.ExportKeyingMaterialRequest(
        session_id=client.session_id, label=b"EXPORTER-test", length=32
    )
    assert (
        status_of(lambda: stub.ExportKeyingMaterial(export)) == grpc.StatusCode.FAILED_PRECONDITION
    )


# --- TLS failures are in-band ----------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_a_server_fed_plaintext_http_fails_in_band_with_an_alert_record(
    stub: pb_grpc.HandshakerStub, api: str
) -> None:
    with open_handshake(stub, api, pb.ServerOptions()) as server:
        step = server.step(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert step.state == FAILED
    assert step.failure.alert in (
        AlertDescription.UNEXPECTED_MESSAGE,
        AlertDescription.DECODE_ERROR,
    )
    assert not step.failure.sent_by_peer
    assert step.failure.reason
    assert_plaintext_alert(step.out_bytes, step.failure.alert)


@pytest.mark.parametrize("api", APIS)
def test_a_server_fed_an_empty_client_hello_fails_with_decode_error(
    stub: pb_grpc.HandshakerStub, api: str
) -> None:
    # A handshake record holding a ClientHello header that declares an empty body.
    empty_client_hello = b"\x16\x03\x01\x00\x04" + b"\x01\x00\x00\x00"
    with open_handshake(stub, api, pb.ServerOptions()) as server:
        step = server.step(empty_client_hello)
    assert step.state == FAILED
    assert step.failure.alert == AlertDescription.DECODE_ERROR
    assert_plaintext_alert(step.out_bytes, AlertDescription.DECODE_ERROR)


@pytest.mark.parametrize("api", APIS)
def test_a_client_that_does_not_trust_the_server_fails_with_unknown_ca(
    stub: pb_grpc.HandshakerStub, pki: TestPKI, api: str
) -> None:
    unrelated = pki.root.certificate.public_bytes(Encoding.PEM).decode()
    client = open_handshake(stub, api, client_options(trust_anchors_pem=unrelated))
    server = UnaryHandshake(stub, pb.ServerOptions())
    with client:
        c, s = relay(client, server)
    assert c.state == FAILED
    assert c.failure.alert == AlertDescription.UNKNOWN_CA
    assert not c.failure.sent_by_peer
    # The dummy CCS of middlebox-compatibility mode, then one record protected with the
    # client's handshake keys (RFC 8446 section 6), which the server decrypts below.
    alert = c.out_bytes.removeprefix(b"\x14\x03\x03\x00\x01\x01")
    assert alert[0] == ContentType.APPLICATION_DATA
    assert len(alert) == 5 + int.from_bytes(alert[3:5], "big")
    # The server session, fed that record, sees the peer's alert.
    assert s.state == FAILED
    assert s.failure.alert == AlertDescription.UNKNOWN_CA
    assert s.failure.sent_by_peer
