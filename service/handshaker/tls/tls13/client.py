"""The TLS 1.3 client: one class per step, each returning the next.

    start_client            -> ClientHello sent
    ExpectServerHello       -> HelloRetryRequest: ClientHello2 sent, ExpectServerHello again
                            -> ServerHello: handshake keys
    ExpectEncryptedExtensions ... ExpectFinished   (client_flight.py: the server's
                            encrypted flight, then ours; complete)

Each state holds only what the next step needs. Policy comes from ClientConfig;
all randomness from the connection's injected RNG.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache

from ..codepoints import (
    CipherSuite,
    ExtensionType,
    HandshakeType,
    ProtocolVersion,
)
from ..config import ClientConfig
from ..core import Connection, HandshakeState
from ..errors import (
    IllegalParameter,
    MissingExtension,
    ProtocolVersionError,
    UnexpectedMessage,
)
from ..extensions import (
    Extensions,
    encode_alpn,
    encode_client_key_shares,
    encode_opaque,
    encode_server_name,
    encode_uint16,
    encode_uint16_list,
    parse_opaque,
    parse_server_key_share,
    parse_uint16,
)
from ..groups import KeyShare
from ..key_schedule import CipherSuiteParams, HandshakeSecrets
from ..messages import (
    ClientHello,
    ServerHello,
    encode_client_hello,
    message_hash,
    parse_client_hello,
    parse_server_hello,
)
from ..versions import cipher_suites as offered_cipher_suites
from ..versions import offers_tls13, tls12_extensions
from ..versions import signature_algorithms as offered_signature_algorithms
from ..versions import supported_versions as offered_versions
from .client_flight import ExpectEncryptedExtensions, Negotiated
from .common import (
    HELLO_RETRY_REQUEST_EXTENSIONS,
    SERVER_HELLO_EXTENSIONS,
    Transcript,
    check_extensions,
    expect,
)

# Enum members read on the per-record and per-message paths, as module constants:
# in Python 3.11 reading Enum.MEMBER goes through the enum machinery (~0.3 us a read).
_APPLICATION_LAYER_PROTOCOL_NEGOTIATION = ExtensionType.APPLICATION_LAYER_PROTOCOL_NEGOTIATION
_CLIENT_HELLO = HandshakeType.CLIENT_HELLO
_COOKIE = ExtensionType.COOKIE
_EARLY_DATA = ExtensionType.EARLY_DATA
_KEY_SHARE = ExtensionType.KEY_SHARE
_PADDING = ExtensionType.PADDING
_RECORD_SIZE_LIMIT = ExtensionType.RECORD_SIZE_LIMIT
_SERVER_HELLO = HandshakeType.SERVER_HELLO
_SERVER_NAME = ExtensionType.SERVER_NAME
_SIGNATURE_ALGORITHMS = ExtensionType.SIGNATURE_ALGORITHMS
_SIGNATURE_ALGORITHMS_CERT = ExtensionType.SIGNATURE_ALGORITHMS_CERT
_SUPPORTED_GROUPS = ExtensionType.SUPPORTED_GROUPS
_SUPPORTED_VERSIONS = ExtensionType.SUPPORTED_VERSIONS
_TLS1_2 = ProtocolVersion.TLS1_2
_TLS1_3 = ProtocolVersion.TLS1_3

_TLS13_SUITES = frozenset(int(s) for s in CipherSuite)


@lru_cache(maxsize=1024)
def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _hello_extensions(config: ClientConfig) -> tuple[Extensions, Extensions]:
    """The ClientHello's extensions before and after key_share: the config's alone, so they
    are encoded once per config (kept in config.cache)."""
    cached = config.cache.get("tls13 ClientHello extensions")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    head: list[tuple[int, bytes]] = []
    if config.server_name and not _is_ip_literal(config.server_name):
        # RFC 6066 section 3: "Literal IPv4 and IPv6 addresses are not permitted in HostName."
        head.append((_SERVER_NAME, encode_server_name(config.server_name)))
    head += [
        # The versions the config enables (versions.py): TLS 1.3, and TLS 1.2 unless off.
        (_SUPPORTED_VERSIONS, offered_versions(config)),
        (_SUPPORTED_GROUPS, encode_uint16_list(config.supported_groups)),
    ]
    tail: list[tuple[int, bytes]] = [
        (
            _SIGNATURE_ALGORITHMS,
            encode_uint16_list(offered_signature_algorithms(config)),
        ),
        (
            _SIGNATURE_ALGORITHMS_CERT,
            encode_uint16_list(config.certificate_signature_schemes),
        ),
    ]
    if config.alpn_protocols:
        tail.append(
            (
                _APPLICATION_LAYER_PROTOCOL_NEGOTIATION,
                encode_alpn(config.alpn_protocols),
            )
        )
    if config.record_size_limit is not None:
        tail.append((_RECORD_SIZE_LIMIT, encode_uint16(config.record_size_limit)))
    tail += tls12_extensions(config)
    parts = (tuple(head), tuple(tail))
    config.cache["tls13 ClientHello extensions"] = parts
    return parts


def _client_hello(
    config: ClientConfig,
    random: bytes,
    session_id: bytes,
    shares: tuple[tuple[int, bytes], ...],
) -> ClientHello:
    head, tail = _hello_extensions(config)
    hello = ClientHello(
        legacy_version=_TLS1_2,
        random=random,
        legacy_session_id=session_id,
        cipher_suites=offered_cipher_suites(config),
        legacy_compression_methods=b"\x00",
        # A client that offers TLS 1.2 alone has no use for key shares (RFC 8446 section
        # 4.2.8 is TLS 1.3's); it sends none and makes none.
        extensions=(
            (*head, (_KEY_SHARE, encode_client_key_shares(shares)), *tail)
            if shares
            else (*head, *tail)
        ),
    )
    if config.padding_to:
        # RFC 7685: pad the whole ClientHello message up to padding_to bytes.
        size = len(encode_client_hello(hello))
        if size + 4 < config.padding_to:
            pad = bytes(config.padding_to - size - 4)
            hello = replace(hello, extensions=(*hello.extensions, (_PADDING, pad)))
    return hello


def start_client(conn: Connection, config: ClientConfig) -> HandshakeState:
    """Build and queue the first ClientHello."""
    random = conn.random(32)
    session_id = conn.random(32) if config.middlebox_compatibility else b""
    shares = (
        {group: KeyShare(group, conn.random) for group in config.key_share_groups}
        if offers_tls13(config)
        else {}
    )
    hello = _client_hello(
        config, random, session_id, tuple((g, s.key_exchange) for g, s in shares.items())
    )
    message = encode_client_hello(hello)
    conn.send_handshake(message)
    return ExpectServerHello(config, hello, message, shares, None)


def replay_client(
    conn: Connection,
    config: ClientConfig,
    client_hello: bytes,
    private_keys: Mapping[int, bytes],
) -> HandshakeState:
    """Queue a recorded ClientHello as ours, with the private keys of its shares."""
    if client_hello[:1] != bytes((_CLIENT_HELLO,)):
        raise ValueError("not a ClientHello handshake message")
    hello = parse_client_hello(client_hello[4:])
    if encode_client_hello(hello) != client_hello:
        raise ValueError("the ClientHello does not re-encode to the same bytes")
    shares = {g: KeyShare.from_private_bytes(g, key) for g, key in private_keys.items()}
    for group, key_exchange in hello.key_shares or ():
        if group not in shares or shares[group].key_exchange != key_exchange:
            raise ValueError(f"no matching private key for the share of group 0x{group:04x}")
    conn.send_handshake(client_hello)
    return ExpectServerHello(config, hello, client_hello, shares, None)


@dataclass(slots=True)
class Retry:
    """What a HelloRetryRequest fixed for the rest of the handshake."""

    params: CipherSuiteParams
    transcript: Transcript
    ccs_sent: bool


def _check_server_hello(
    hello: ClientHello, server_hello: ServerHello, extensions: dict[int, bytes]
) -> CipherSuiteParams:
    """What a ServerHello or HelloRetryRequest must echo or pick from our hello (RFC 8446
    section 4.1.3, 4.1.4); the parameters of the suite it picked."""
    versions = extensions.get(_SUPPORTED_VERSIONS)
    if versions is None:
        raise ProtocolVersionError("server does not speak TLS 1.3")
    if parse_uint16(versions) != _TLS1_3:
        raise IllegalParameter("server selected a version we did not offer")
    if server_hello.legacy_version != _TLS1_2:
        # "legacy_version ... MUST be set to 0x0303" (section 4.1.3); the version was
        # negotiated (supported_versions), so this is a malformed field, not a version.
        raise IllegalParameter("ServerHello legacy_version is not 0x0303")
    if server_hello.legacy_session_id_echo != hello.legacy_session_id:
        raise IllegalParameter("legacy_session_id_echo does not match")
    if (
        server_hello.cipher_suite not in hello.cipher_suites
        # The hello may offer TLS 1.2 suites too; a TLS 1.3 ServerHello picks a 1.3 one.
        or server_hello.cipher_suite not in _TLS13_SUITES
    ):
        raise IllegalParameter("server selected a cipher suite we did not offer")
    if server_hello.legacy_compression_method != 0:
        raise IllegalParameter("non-null compression method")
    return CipherSuiteParams.for_suite(server_hello.cipher_suite)


class ExpectServerHello:
    def __init__(
        self,
        config: ClientConfig,
        hello: ClientHello,
        hello_message: bytes,
        shares: dict[int, KeyShare],
        retry: Retry | None,
    ) -> None:
        self.config = config
        self.hello = hello
        self.hello_message = hello_message
        self.shares = shares
        self.retry = retry

    def handle(self, conn: Connection, msg_type: int, message: bytes) -> HandshakeState:
        expect(msg_type, _SERVER_HELLO, "waiting for ServerHello")
        return self.handle_server_hello(conn, message, parse_server_hello(message[4:]))

    def handle_server_hello(
        self, conn: Connection, message: bytes, server_hello: ServerHello
    ) -> HandshakeState:
        """Act on a ServerHello already parsed (by the version-neutral first step)."""
        hello = self.hello
        offered = frozenset(t for t, _ in hello.extensions)
        extensions = dict(server_hello.extensions)
        params = _check_server_hello(hello, server_hello, extensions)
        if server_hello.is_hello_retry_request:
            return self._hello_retry(conn, message, extensions, offered, params)
        check_extensions(server_hello.extensions, SERVER_HELLO_EXTENSIONS, offered)
        retry = self.retry
        if retry is not None and retry.params.suite != params.suite:
            raise IllegalParameter("ServerHello cipher suite differs from the HelloRetryRequest's")
        share = extensions.get(_KEY_SHARE)
        if share is None:
            raise MissingExtension("ServerHello has no key_share")
        group, key_exchange = parse_server_key_share(share)
        if group not in self.shares:
            raise IllegalParameter("server answered a group we sent no share for")
        shared_secret = self.shares[group].complete(key_exchange)
        if retry is None:
            transcript = Transcript(params)
            transcript.update(self.hello_message)
        else:
            transcript = retry.transcript
        transcript.update(message)
        secrets = HandshakeSecrets.derive(params, shared_secret, transcript.digest())
        conn.set_read_keys(params, secrets.server)
        ccs_sent = retry is not None and retry.ccs_sent
        if hello.legacy_session_id and not ccs_sent:
            # Appendix D.4: the dummy change_cipher_spec precedes our first protected record,
            # which is our second flight, or an alert if the server's flight fails.
            conn.send_change_cipher_spec()
            ccs_sent = True
        # RFC 8446 section 6: an alert goes out under the current write keys; from here
        # the server reads under client_handshake_traffic_secret.
        conn.set_write_keys(params, secrets.client)
        return ExpectEncryptedExtensions(
            Negotiated(
                config=self.config,
                client_random=hello.random,
                offered=offered,
                params=params,
                group=group,
                secrets=secrets,
                transcript=transcript,
                hello_retry=retry is not None,
            )
        )

    def _hello_retry(
        self,
        conn: Connection,
        message: bytes,
        extensions: dict[int, bytes],
        offered: frozenset[int],
        params: CipherSuiteParams,
    ) -> HandshakeState:
        if self.retry is not None:
            raise UnexpectedMessage("second HelloRetryRequest")
        hello = self.hello
        check_extensions(
            tuple(extensions.items()),
            HELLO_RETRY_REQUEST_EXTENSIONS,
            offered | {_COOKIE},
        )
        shares = self.shares
        selected = extensions.get(_KEY_SHARE)
        if selected is not None:
            group = parse_uint16(selected)
            # RFC 8446 section 4.2.8: the group must be in supported_groups and must
            # not be one we already sent a share for.
            if group not in (hello.supported_groups or self.config.supported_groups):
                raise IllegalParameter("HelloRetryRequest selected a group we did not offer")
            if group in shares:
                raise IllegalParameter("HelloRetryRequest selected a group we sent a share for")
            shares = {group: KeyShare(group, conn.random)}
        cookie_data = extensions.get(_COOKIE)
        cookie = parse_opaque(cookie_data, 2, minimum=1) if cookie_data is not None else None
        if selected is None and cookie is None:
            raise IllegalParameter("HelloRetryRequest would not change the ClientHello")
        transcript = Transcript(params)
        transcript.update(message_hash(params.hash_of(self.hello_message)))
        transcript.update(message)
        new_extensions: list[tuple[int, bytes]] = []
        # RFC 8446 section 4.1.2: the same ClientHello, but with the new key_share,
        # the cookie echoed, and no early_data.
        for ext_type, data in hello.extensions:
            if ext_type == _KEY_SHARE:
                new_shares = tuple((g, s.key_exchange) for g, s in shares.items())
                new_extensions.append((ext_type, encode_client_key_shares(new_shares)))
                if cookie is not None:
                    new_extensions.append((_COOKIE, encode_opaque(cookie, 2)))
            elif ext_type not in (_COOKIE, _EARLY_DATA):
                new_extensions.append((ext_type, data))
        hello2 = replace(hello, extensions=tuple(new_extensions))
        ccs_sent = False
        if hello.legacy_session_id:
            # Appendix D.4: the client's dummy change_cipher_spec goes before its second flight.
            conn.send_change_cipher_spec()
            ccs_sent = True
        message2 = encode_client_hello(hello2)
        conn.send_handshake(message2)
        transcript.update(message2)
        return ExpectServerHello(
            self.config, hello2, message2, shares, Retry(params, transcript, ccs_sent)
        )
