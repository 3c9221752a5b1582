"""Engine test kit: a throwaway PKI and in-memory drivers for engine-vs-engine handshakes.

Only the engine's own tests use this (tests/tls); the PKI is built once per process
and kept in memory. Drivers move bytes between a ClientConnection and a
ServerConnection, record every flight, and can rebuild a recorded flight with
altered handshake messages, re-protected under the keys from the key log.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import ipaddress
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, PublicKeyAlgorithmOID
from handshaker.tls import (
    ClientConfig,
    ClientConnection,
    ConnectionState,
    ContentType,
    Credential,
    Event,
    HandshakeComplete,
    HandshakeFailed,
    HandshakeResult,
    NamedGroup,
    PrivateKeySigner,
    RecordProtection,
    ServerConfig,
    ServerConnection,
    SignatureScheme,
)
from handshaker.tls.connection import Connection
from handshaker.tls.key_schedule import CipherSuiteParams, TrafficSecret

PrivateKey = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
Random = Callable[[int], bytes]

SERVER_NAME = "localhost"
ALT_SERVER_NAME = "alt.localhost"
SERVER_IP = "127.0.0.1"

SERVER_KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa", "rsa-pss", "ed25519", "ed448")

# The leaf key type that signs each CertificateVerify scheme.
KEY_TYPE_FOR_SCHEME: dict[int, str] = {
    SignatureScheme.ECDSA_SECP256R1_SHA256: "ecdsa-p256",
    SignatureScheme.ECDSA_SECP384R1_SHA384: "ecdsa-p384",
    SignatureScheme.ECDSA_SECP521R1_SHA512: "ecdsa-p521",
    SignatureScheme.RSA_PSS_RSAE_SHA256: "rsa",
    SignatureScheme.RSA_PSS_RSAE_SHA384: "rsa",
    SignatureScheme.RSA_PSS_RSAE_SHA512: "rsa",
    SignatureScheme.RSA_PSS_PSS_SHA256: "rsa-pss",
    SignatureScheme.RSA_PSS_PSS_SHA384: "rsa-pss",
    SignatureScheme.RSA_PSS_PSS_SHA512: "rsa-pss",
    SignatureScheme.ED25519: "ed25519",
    SignatureScheme.ED448: "ed448",
}

# --- PKI ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """An end-entity certificate, its key, and the chain it is sent with (leaf first)."""

    key: PrivateKey = field(repr=False)
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    rsa_pss: bool = False

    def credential(self) -> Credential:
        return Credential(self.chain, PrivateKeySigner(self.key, rsa_pss_pss=self.rsa_pss))

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(Encoding.DER)

    @property
    def chain_der(self) -> tuple[bytes, ...]:
        return tuple(c.public_bytes(Encoding.DER) for c in self.chain)


@dataclass(frozen=True)
class EnginePKI:
    """Root -> intermediate -> leaves, plus an unrelated root and broken leaves."""

    root: x509.Certificate
    intermediate: x509.Certificate
    # Server leaves by key type; SANs: localhost, alt.localhost, 127.0.0.1.
    servers: dict[str, Leaf]
    clients: dict[str, Leaf]
    expired: Leaf
    untrusted_server: Leaf
    untrusted_client: Leaf
    # Why no RSA-PSS-SPKI leaf could be built (None: servers["rsa-pss"] exists).
    rsa_pss_missing: str | None


def _generate(key_type: str) -> PrivateKey:
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ecdsa-p521":
        return ec.generate_private_key(ec.SECP521R1())
    if key_type in ("rsa", "rsa-pss"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "ed448":
        return ed448.Ed448PrivateKey.generate()
    raise ValueError(key_type)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, ca: bool, key_encipherment: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class _Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def _authority(common_name: str, issuer: _Authority | None, now: datetime.datetime) -> _Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.certificate.subject if issuer else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    certificate = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return _Authority(key, certificate)


def _leaf_certificate(
    key: PrivateKey,
    issuer: _Authority,
    *,
    client: bool,
    now: datetime.datetime,
    expired: bool = False,
) -> x509.Certificate:
    if expired:
        not_before = now - datetime.timedelta(days=30)
        not_after = now - datetime.timedelta(days=1)
    else:
        not_before = now - datetime.timedelta(days=1)
        not_after = now + datetime.timedelta(days=30)
    names: list[x509.GeneralName]
    if client:
        names = [x509.DNSName("client.localhost")]
        eku = ExtendedKeyUsageOID.CLIENT_AUTH
    else:
        names = [
            x509.DNSName(SERVER_NAME),
            x509.DNSName(ALT_SERVER_NAME),
            x509.IPAddress(ipaddress.ip_address(SERVER_IP)),
        ]
        eku = ExtendedKeyUsageOID.SERVER_AUTH
    return (
        x509.CertificateBuilder()
        .subject_name(_name("client" if client else SERVER_NAME))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        # An RSA leaf may decrypt too: the opt-in TLS 1.2 RSA key exchange.
        .add_extension(
            _key_usage(ca=False, key_encipherment=isinstance(key, rsa.RSAPrivateKey)),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
        .sign(issuer.key, hashes.SHA256())
    )


# --- DER surgery for an RSASSA-PSS SubjectPublicKeyInfo ------------------------------

# AlgorithmIdentifier { id-RSASSA-PSS } without parameters (RFC 4055 section 3.1).
_RSASSA_PSS_ALGORITHM = bytes.fromhex("300b06092a864886f70d01010a")
_ECDSA_WITH_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes((n,))
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes((0x80 | len(raw),)) + raw
    return bytes((tag,)) + length + content


def _der_children(data: bytes) -> list[bytes]:
    """The raw TLVs inside the single constructed TLV `data`."""

    def header(pos: int) -> tuple[int, int]:
        first = data[pos + 1]
        if first < 0x80:
            return pos + 2, first
        size = first & 0x7F
        return pos + 2 + size, int.from_bytes(data[pos + 2 : pos + 2 + size], "big")

    start, length = header(0)
    children = []
    pos = start
    while pos < start + length:
        content, child_len = header(pos)
        children.append(data[pos : content + child_len])
        pos = content + child_len
    return children


def _rsa_pss_leaf(
    key: rsa.RSAPrivateKey, issuer: _Authority, now: datetime.datetime
) -> x509.Certificate:
    """A server leaf whose SPKI says id-RSASSA-PSS, re-signed by `issuer`."""
    template = _leaf_certificate(key, issuer, client=False, now=now)
    items = _der_children(template.tbs_certificate_bytes)
    # TBSCertificate: [0] version, serial, signature, issuer, validity, subject, SPKI, ...
    spki = _der_children(items[6])
    items[6] = _der(0x30, _RSASSA_PSS_ALGORITHM + spki[1])
    tbs = _der(0x30, b"".join(items))
    signature = issuer.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    certificate = x509.load_der_x509_certificate(
        _der(0x30, tbs + _ECDSA_WITH_SHA256 + _der(0x03, b"\x00" + signature))
    )
    if certificate.public_key_algorithm_oid != PublicKeyAlgorithmOID.RSASSA_PSS:
        raise ValueError("the rebuilt certificate does not carry an RSASSA-PSS key")
    certificate.public_key()
    return certificate


@functools.cache
def build_engine_pki() -> EnginePKI:
    now = datetime.datetime.now(datetime.UTC)
    root = _authority("engine test root", None, now)
    intermediate = _authority("engine test intermediate", root, now)
    other_root = _authority("unrelated root", None, now)
    servers: dict[str, Leaf] = {}
    rsa_pss_missing = None
    for key_type in SERVER_KEY_TYPES:
        key = _generate(key_type)
        if key_type == "rsa-pss":
            assert isinstance(key, rsa.RSAPrivateKey)
            try:
                certificate = _rsa_pss_leaf(key, intermediate, now)
            except (ValueError, TypeError) as error:
                rsa_pss_missing = f"cryptography cannot build an RSASSA-PSS SPKI leaf: {error}"
                continue
            servers[key_type] = Leaf(
                key, certificate, (certificate, intermediate.certificate), rsa_pss=True
            )
            continue
        certificate = _leaf_certificate(key, intermediate, client=False, now=now)
        servers[key_type] = Leaf(key, certificate, (certificate, intermediate.certificate))
    clients = {}
    for key_type in ("ecdsa-p256", "ed25519"):
        key = _generate(key_type)
        certificate = _leaf_certificate(key, intermediate, client=True, now=now)
        clients[key_type] = Leaf(key, certificate, (certificate, intermediate.certificate))
    expired_key = _generate("ecdsa-p256")
    expired = _leaf_certificate(expired_key, intermediate, client=False, now=now, expired=True)
    untrusted_key = _generate("ecdsa-p256")
    untrusted = _leaf_certificate(untrusted_key, other_root, client=False, now=now)
    untrusted_client_key = _generate("ecdsa-p256")
    untrusted_client = _leaf_certificate(untrusted_client_key, other_root, client=True, now=now)
    return EnginePKI(
        root=root.certificate,
        intermediate=intermediate.certificate,
        servers=servers,
        clients=clients,
        expired=Leaf(expired_key, expired, (expired, intermediate.certificate)),
        untrusted_server=Leaf(untrusted_key, untrusted, (untrusted,)),
        untrusted_client=Leaf(untrusted_client_key, untrusted_client, (untrusted_client,)),
        rsa_pss_missing=rsa_pss_missing,
    )


# --- configs ---------------------------------------------------------------------------


def client_config(pki: EnginePKI, **overrides: object) -> ClientConfig:
    settings: dict[str, object] = {
        "server_name": SERVER_NAME,
        "trust_anchors": (pki.root,),
    }
    settings.update(overrides)
    return ClientConfig(**settings)  # type: ignore[arg-type]


def server_config(
    pki: EnginePKI, key_type: str = "ecdsa-p256", **overrides: object
) -> ServerConfig:
    settings: dict[str, object] = {"credential": pki.servers[key_type].credential()}
    settings.update(overrides)
    return ServerConfig(**settings)  # type: ignore[arg-type]


def seeded_random(seed: str) -> Random:
    """A deterministic RNG, so a connection made twice sends the same bytes."""
    counter = itertools.count()

    def draw(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{seed}/{next(counter)}".encode()).digest()
        return out[:n]

    return draw


# --- driving a handshake ---------------------------------------------------------------


@dataclass
class Outcome:
    """Everything a driven handshake produced."""

    client: ClientConnection
    server: ServerConnection
    client_events: list[Event]
    server_events: list[Event]
    # (sender, bytes) for every non-empty delivery, in order.
    flights: list[tuple[str, bytes]]
    # Bytes the side produced that were never delivered (the peer had stopped).
    undelivered: dict[str, bytes] = field(default_factory=dict)

    @property
    def client_result(self) -> HandshakeResult:
        return only_complete(self.client_events)

    @property
    def server_result(self) -> HandshakeResult:
        return only_complete(self.server_events)

    def sent_by(self, sender: str) -> list[bytes]:
        return [data for who, data in self.flights if who == sender]


def only_complete(events: Sequence[Event]) -> HandshakeResult:
    assert len(events) == 1, events
    event = events[0]
    assert isinstance(event, HandshakeComplete), event
    return event.result


def only_failure(events: Sequence[Event]) -> HandshakeFailed:
    assert len(events) == 1, events
    event = events[0]
    assert isinstance(event, HandshakeFailed), event
    return event


Deliver = Callable[[Connection, bytes], None]


def deliver_whole(conn: Connection, data: bytes) -> None:
    conn.receive_data(data)


def pump(
    client: ClientConnection, server: ServerConnection, deliver: Deliver = deliver_whole
) -> Outcome:
    """Move bytes both ways until neither side has anything more to say."""
    flights: list[tuple[str, bytes]] = []
    undelivered: dict[str, bytes] = {}
    for _ in range(20):
        moved = False
        for sender, source, sink in (("client", client, server), ("server", server, client)):
            data = source.data_to_send()
            if not data:
                continue
            if sink.state is not ConnectionState.HANDSHAKING:
                undelivered[sender] = undelivered.get(sender, b"") + data
                continue
            flights.append((sender, data))
            deliver(sink, data)
            moved = True
        if not moved:
            break
    return Outcome(
        client=client,
        server=server,
        client_events=list(client.events()),
        server_events=list(server.events()),
        flights=flights,
        undelivered=undelivered,
    )


def handshake(
    client_cfg: ClientConfig,
    server_cfg: ServerConfig,
    *,
    deliver: Deliver = deliver_whole,
    seed: str | None = None,
) -> Outcome:
    if seed is None:
        client = ClientConnection(client_cfg)
        server = ServerConnection(server_cfg)
    else:
        client = ClientConnection(client_cfg, random=seeded_random(seed + "/client"))
        server = ServerConnection(server_cfg, random=seeded_random(seed + "/server"))
    return pump(client, server, deliver)


# --- records ---------------------------------------------------------------------------


def split_records(data: bytes) -> list[bytes]:
    """Whole records (header included); a trailing partial record is returned as is."""
    records = []
    pos = 0
    while pos < len(data):
        end = pos + 5 + int.from_bytes(data[pos + 3 : pos + 5], "big")
        records.append(data[pos:end])
        pos = end
    return records


def plaintext_record(content_type: int, body: bytes) -> bytes:
    return bytes((content_type, 3, 3)) + len(body).to_bytes(2, "big") + body


def alert_record(description: int, level: int = 2) -> bytes:
    return plaintext_record(ContentType.ALERT, bytes((level, description)))


def split_messages(data: bytes) -> list[bytes]:
    """Whole handshake messages (4-byte header included) from concatenated handshake bytes."""
    messages = []
    pos = 0
    while pos < len(data):
        end = pos + 4 + int.from_bytes(data[pos + 1 : pos + 4], "big")
        messages.append(data[pos:end])
        pos = end
    return messages


def protection(cipher_suite: int, secret: bytes) -> RecordProtection:
    """Record protection at sequence 0 for a traffic secret (from a key log line)."""
    params = CipherSuiteParams.for_suite(cipher_suite)
    traffic = TrafficSecret.derive(params, secret)
    return RecordProtection(params, traffic.key, traffic.iv)


def keylog_secrets(result: HandshakeResult) -> dict[str, bytes]:
    return {label: bytes.fromhex(secret) for label, _, secret in (s.split() for s in result.keylog)}


def open_application_data(protect: RecordProtection, data: bytes) -> bytes:
    """The application data in `data`, skipping post-handshake handshake messages."""
    out = b""
    for record in split_records(data):
        inner_type, plaintext = protect.open(record)
        if inner_type == ContentType.HANDSHAKE:
            continue
        assert inner_type == ContentType.APPLICATION_DATA, inner_type
        out += plaintext
    return out


# --- recorded, reproducible handshakes -------------------------------------------------


@dataclass
class Trace:
    """A handshake that a fresh pair of connections reproduces byte for byte.

    X25519 and an Ed25519 server key keep every byte a function of the seeded RNGs,
    so a new server fed client_hello_flight sends server_flight again and accepts
    a client second flight built on it.
    """

    client_config: ClientConfig
    server_config: ServerConfig
    seed: str
    client_hello_flight: bytes
    server_flight: bytes
    client_final_flight: bytes
    client_result: HandshakeResult
    server_result: HandshakeResult

    def new_client(self) -> ClientConnection:
        """A client that has just queued (and sent) client_hello_flight."""
        client = ClientConnection(self.client_config, random=seeded_random(self.seed + "/client"))
        assert client.data_to_send() == self.client_hello_flight
        return client

    def new_server(self) -> ServerConnection:
        return ServerConnection(self.server_config, random=seeded_random(self.seed + "/server"))

    def server_after_hello(self) -> ServerConnection:
        """A server that has answered client_hello_flight with server_flight."""
        server = self.new_server()
        server.receive_data(self.client_hello_flight)
        assert server.data_to_send() == self.server_flight
        return server

    @property
    def suite(self) -> int:
        return self.client_result.cipher_suite

    def secret(self, label: str) -> bytes:
        return keylog_secrets(self.client_result)[label]

    def server_plaintext_records(self) -> list[bytes]:
        """ServerHello record (and CCS) that open the server's flight."""
        return [
            r for r in split_records(self.server_flight) if r[0] != ContentType.APPLICATION_DATA
        ]

    def server_messages(self) -> list[bytes]:
        """EncryptedExtensions .. Finished, decrypted."""
        return self._messages(self.server_flight, "SERVER_HANDSHAKE_TRAFFIC_SECRET")

    def client_messages(self) -> list[bytes]:
        """The client's protected second flight ([Certificate, CertificateVerify,] Finished)."""
        return self._messages(self.client_final_flight, "CLIENT_HANDSHAKE_TRAFFIC_SECRET")

    def _messages(self, flight: bytes, label: str) -> list[bytes]:
        protect = protection(self.suite, self.secret(label))
        data = b""
        for record in split_records(flight):
            if record[0] == ContentType.APPLICATION_DATA:
                inner_type, plaintext = protect.open(record)
                assert inner_type == ContentType.HANDSHAKE
                data += plaintext
        return split_messages(data)

    def seal(
        self, label: str, payloads: Sequence[bytes], content_type: int = ContentType.HANDSHAKE
    ) -> bytes:
        """Each payload in its own record, protected with the named handshake secret."""
        protect = protection(self.suite, self.secret(label))
        return b"".join(protect.seal(content_type, payload) for payload in payloads)

    def server_flight_with(
        self, messages: Sequence[bytes], *, one_record_each: bool = False
    ) -> bytes:
        """The server flight with its protected part replaced by `messages`."""
        payloads = list(messages) if one_record_each else [b"".join(messages)]
        return b"".join(self.server_plaintext_records()) + self.seal(
            "SERVER_HANDSHAKE_TRAFFIC_SECRET", payloads
        )

    def client_flight_with(
        self, messages: Sequence[bytes], *, one_record_each: bool = False
    ) -> bytes:
        payloads = list(messages) if one_record_each else [b"".join(messages)]
        return self.seal("CLIENT_HANDSHAKE_TRAFFIC_SECRET", payloads)


def record_trace(
    pki: EnginePKI,
    seed: str = "trace",
    *,
    client_overrides: dict[str, object] | None = None,
    server_overrides: dict[str, object] | None = None,
) -> Trace:
    client_cfg = client_config(
        pki,
        key_share_groups=(NamedGroup.X25519,),
        keylog=True,
        **(client_overrides or {}),
    )
    server_cfg = server_config(pki, "ed25519", keylog=True, **(server_overrides or {}))
    outcome = handshake(client_cfg, server_cfg, seed=seed)
    client_sent = outcome.sent_by("client")
    server_sent = outcome.sent_by("server")
    assert len(client_sent) == 2 and len(server_sent) == 1, outcome.flights
    return Trace(
        client_config=client_cfg,
        server_config=server_cfg,
        seed=seed,
        client_hello_flight=client_sent[0],
        server_flight=server_sent[0],
        client_final_flight=client_sent[1],
        client_result=outcome.client_result,
        server_result=outcome.server_result,
    )
