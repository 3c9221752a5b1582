"""A broken key share of any group, in a ClientHello or a ServerHello, ends the handshake
with illegal_parameter (RFC 8446 section 4.2.8: "Peers MUST validate each other's public
key"), queued as a plaintext alert, with nothing raised past the engine."""

from __future__ import annotations

from dataclasses import replace

import pytest
from engine_kit import (
    EnginePKI,
    alert_record,
    client_config,
    only_failure,
    plaintext_record,
    server_config,
    split_records,
)
from group_cases import malformed_client_shares, malformed_server_shares
from handshaker.tls import (
    AlertDescription,
    ClientConfig,
    ClientConnection,
    ConnectionState,
    ContentType,
    NamedGroup,
    ServerConfig,
    ServerConnection,
)
from handshaker.tls.codepoints import ExtensionType
from handshaker.tls.connection import Connection
from handshaker.tls.extensions import encode_client_key_shares, encode_server_key_share
from handshaker.tls.messages import (
    ClientHello,
    ServerHello,
    encode_client_hello,
    encode_server_hello,
    parse_client_hello,
    parse_server_hello,
)

GROUPS = tuple(NamedGroup)


def _name(group: int) -> str:
    return NamedGroup(group).name


def _configs(pki: EnginePKI, group: int) -> tuple[ClientConfig, ServerConfig]:
    return (
        client_config(pki, key_share_groups=(group,), supported_groups=(group,)),
        server_config(pki, supported_groups=(group,)),
    )


def _with_client_share(hello: ClientHello, group: int, share: bytes) -> bytes:
    """The ClientHello record with its one key share replaced by `share`."""
    extensions = tuple(
        (t, encode_client_key_shares(((group, share),)) if t == ExtensionType.KEY_SHARE else d)
        for t, d in hello.extensions
    )
    message = encode_client_hello(replace(hello, extensions=extensions))
    return plaintext_record(ContentType.HANDSHAKE, message)


def _with_server_share(hello: ServerHello, group: int, share: bytes) -> bytes:
    extensions = tuple(
        (t, encode_server_key_share(group, share) if t == ExtensionType.KEY_SHARE else d)
        for t, d in hello.extensions
    )
    message = encode_server_hello(replace(hello, extensions=extensions))
    return plaintext_record(ContentType.HANDSHAKE, message)


def _failure(conn: Connection) -> int:
    """The alert `conn` failed with; it must be queued, in plaintext, and nothing else."""
    assert conn.state is ConnectionState.FAILED
    failure = only_failure(list(conn.events()))
    assert failure.sent_by_peer is False
    assert conn.data_to_send() == alert_record(failure.alert)
    return failure.alert


@pytest.mark.parametrize("group", GROUPS, ids=_name)
def test_a_client_hello_with_a_malformed_share_gets_illegal_parameter(
    engine_pki: EnginePKI, group: int
) -> None:
    client_cfg, server_cfg = _configs(engine_pki, group)
    (record,) = split_records(ClientConnection(client_cfg).data_to_send())
    hello = parse_client_hello(record[9:])
    ((_, good),) = hello.key_shares or ()
    # Control: the same path with the good share goes on to the server's flight.
    control = ServerConnection(server_cfg)
    control.receive_data(_with_client_share(hello, group, good))
    assert control.state is ConnectionState.HANDSHAKING
    assert list(control.events()) == []
    for name, share in malformed_client_shares(group, good).items():
        if not share:
            continue
        server = ServerConnection(server_cfg)
        server.receive_data(_with_client_share(hello, group, share))
        alert = _failure(server)
        assert alert == AlertDescription.ILLEGAL_PARAMETER, f"{_name(group)} {name}"


@pytest.mark.parametrize("group", GROUPS, ids=_name)
def test_a_server_hello_with_a_malformed_share_gets_illegal_parameter(
    engine_pki: EnginePKI, group: int
) -> None:
    client_cfg, server_cfg = _configs(engine_pki, group)
    # One recorded ClientHello; each client below is rebuilt from its private keys.
    first = ClientConnection(client_cfg)
    server = ServerConnection(server_cfg)
    server.receive_data(first.data_to_send())
    server_hello = parse_server_hello(split_records(server.data_to_send())[0][9:])
    good = dict(server_hello.extensions)[ExtensionType.KEY_SHARE][4:]

    def answered(share: bytes) -> ClientConnection:
        """A fresh client given the ServerHello, its session id echoed, with `share`."""
        client = ClientConnection(client_cfg)
        hello = parse_client_hello(split_records(client.data_to_send())[0][9:])
        answer = replace(server_hello, legacy_session_id_echo=hello.legacy_session_id)
        client.receive_data(_with_server_share(answer, group, share))
        return client

    # Control: a well-formed share takes the client on to the encrypted flight.
    control = answered(good)
    assert control.state is ConnectionState.HANDSHAKING
    assert list(control.events()) == []
    for name, share in malformed_server_shares(group, good).items():
        if share:
            alert = _failure(answered(share))
            assert alert == AlertDescription.ILLEGAL_PARAMETER, f"{_name(group)} {name}"


@pytest.mark.parametrize(
    "group",
    [NamedGroup.X25519MLKEM768, NamedGroup.SECP256R1MLKEM768, NamedGroup.FFDHE2048],
    ids=_name,
)
def test_an_empty_share_does_not_parse_and_is_a_decode_error(
    engine_pki: EnginePKI, group: int
) -> None:
    client_cfg, server_cfg = _configs(engine_pki, group)
    (record,) = split_records(ClientConnection(client_cfg).data_to_send())
    server = ServerConnection(server_cfg)
    server.receive_data(_with_client_share(parse_client_hello(record[9:]), group, b""))
    assert _failure(server) == AlertDescription.DECODE_ERROR


@pytest.mark.parametrize(
    "group", [NamedGroup.MLKEM768, NamedGroup.MLKEM1024, NamedGroup.SECP384R1MLKEM1024], ids=_name
)
def test_a_wrong_mlkem_ciphertext_of_the_right_size_fails_the_handshake_at_finished(
    engine_pki: EnginePKI, group: int
) -> None:
    # FIPS 203 implicit rejection: decapsulation yields an unrelated secret, so the
    # client cannot open the server's encrypted flight (bad_record_mac), never a crash.
    client_cfg, server_cfg = _configs(engine_pki, group)
    client = ClientConnection(client_cfg)
    server = ServerConnection(server_cfg)
    server.receive_data(client.data_to_send())
    flight = server.data_to_send()
    records = split_records(flight)
    hello = parse_server_hello(records[0][9:])
    good = dict(hello.extensions)[ExtensionType.KEY_SHARE][4:]
    flipped = good[:-1] + bytes((good[-1] ^ 1,))
    client.receive_data(_with_server_share(hello, group, flipped) + b"".join(records[1:]))
    failure = only_failure(list(client.events()))
    assert failure.alert == AlertDescription.BAD_RECORD_MAC
