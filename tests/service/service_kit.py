"""Helpers for the service tests: a `handshaker serve` subprocess, handshake drivers, records.

The service always runs as a real process on 127.0.0.1 (or a Unix socket); its
stderr is collected line by line so tests can read its JSON logs. A handshake is
driven through the unary API (UnaryHandshake) or the Handshake stream
(StreamHandshake) behind one `step(in_bytes)` interface, so every scenario runs
through both.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from handshaker.keystore import DirectoryKeyStore, Policy, Principal, Role
from handshaker.tls import ContentType, RecordProtection, RecordReader, TrafficKeys
from handshaker.tls.tls12.record import Tls12RecordProtection
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc

HANDSHAKER = Path(sys.executable).parent / "handshaker"
NEED_INPUT = pb.HANDSHAKE_STATE_NEED_INPUT
COMPLETE = pb.HANDSHAKE_STATE_COMPLETE
FAILED = pb.HANDSHAKE_STATE_FAILED
TLS13 = 0x0304


# --- the service process ------------------------------------------------------------------


class ServiceProcess:
    """`handshaker serve` as a subprocess; its stderr lines are kept in `lines`."""

    def __init__(
        self, keystore: Path, *, listen: str = "127.0.0.1:0", args: Sequence[str] = ()
    ) -> None:
        self.keystore = keystore
        self.listen = listen
        self.args = tuple(args)
        self.lines: list[str] = []
        self.address = ""
        self._listening = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    @property
    def command(self) -> list[str]:
        return [
            str(HANDSHAKER),
            "serve",
            "--listen",
            self.listen,
            "--keystore",
            str(self.keystore),
            *self.args,
        ]

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, "the service was not started"
        return self._process

    @property
    def dev_ca_pem(self) -> str:
        return (self.keystore / "dev-ca" / "ca.crt").read_text()

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        self._process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"handshaker serve did not start (exit {self._process.returncode}):\n"
                    + self.logs()
                )
        return self

    def _read_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            entry = parse_json_line(line)
            if entry is not None and entry.get("message") == "listening":
                self.address = str(entry["address"])
                self._listening.set()

    def logs(self) -> str:
        return "\n".join(self.lines)

    def log_entries(self) -> list[dict[str, object]]:
        return [e for e in map(parse_json_line, self.lines) if e is not None]

    def entries_with(self, message: str, timeout: float = 10.0) -> list[dict[str, object]]:
        """The log entries with this message, once there is one: the service writes a line
        before it answers, but the thread that reads its stderr may not have it yet."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.log_entries() if e.get("message") == message]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.01)

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        try:
            code = self.process.wait(timeout)
        finally:
            if self._reader is not None:
                self._reader.join(5)
        return code

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; kills the process if it does not stop in time."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(5)
        return process.returncode

    def channel(self, credentials: grpc.ChannelCredentials | None = None) -> grpc.Channel:
        if credentials is None:
            return grpc.insecure_channel(self.address)
        return grpc.secure_channel(
            self.address, credentials, options=[("grpc.ssl_target_name_override", "localhost")]
        )

    def aio_channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.address)


StartService = Callable[..., ServiceProcess]


def development_keystore(path: Path, *principals: str) -> Path:
    """A keystore as the first `serve` makes it (development CA, `localhost`, its policy),
    with `localhost` and the `dev-ca` bundle also granted to each of `principals`."""
    store = DirectoryKeyStore(path)
    store.ensure_development_ca()

    def grant(policy: Policy) -> Policy:
        for text in principals:
            principal = Principal.parse(text)
            policy = policy.grant_credential("localhost", principal, (Role.SERVER, Role.CLIENT))
            policy = policy.grant_trust_bundle("dev-ca", principal)
        return policy

    store.edit_policy(grant)
    return path


def parse_json_line(line: str) -> dict[str, object] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def short_socket_dir() -> Path:
    """A fresh directory with a short path: Unix socket paths must fit in 108 bytes."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="hs-", dir="/tmp"))


# --- driving a handshake through the service ----------------------------------------------


@dataclass
class Step:
    """One HandshakeStep as a test sees it, with the keys when the response carried them."""

    session_id: str
    out_bytes: bytes
    bytes_consumed: int
    state: int
    failure: pb.HandshakeFailure
    result: pb.HandshakeSummary
    keys: pb.SessionKeys | None

    @classmethod
    def of(cls, step: pb.HandshakeStep, keys: pb.SessionKeys | None) -> Step:
        return cls(
            session_id=step.session_id,
            out_bytes=step.out_bytes,
            bytes_consumed=step.bytes_consumed,
            state=step.state,
            failure=step.failure,
            result=step.result,
            keys=keys,
        )


Options = pb.ClientOptions | pb.ServerOptions


def handshaker_stub(channel: grpc.Channel | grpc.aio.Channel) -> pb_grpc.HandshakerStub:
    return pb_grpc.HandshakerStub(channel)  # type: ignore[no-untyped-call]


class UnaryHandshake:
    """One session through StartClient/StartServer, Feed and GetKeys."""

    api = "unary"

    def __init__(
        self, stub: pb_grpc.HandshakerStub, options: Options, *, keys_in_response: bool = False
    ) -> None:
        self.stub = stub
        self.options = options
        self.keys_in_response = keys_in_response
        self.session_id = ""

    def step(self, in_bytes: bytes = b"") -> Step:
        if not self.session_id:
            if isinstance(self.options, pb.ClientOptions):
                assert not in_bytes, "the client speaks first"
                response = self.stub.StartClient(
                    pb.StartClientRequest(
                        options=self.options, keys_in_response=self.keys_in_response
                    )
                )
            else:
                response = self.stub.StartServer(
                    pb.StartServerRequest(
                        options=self.options,
                        in_bytes=in_bytes,
                        keys_in_response=self.keys_in_response,
                    )
                )
            self.session_id = response.step.session_id
        else:
            response = self.stub.Feed(pb.FeedRequest(session_id=self.session_id, in_bytes=in_bytes))
        return Step.of(response.step, response.keys if response.HasField("keys") else None)

    def keys(self, step: Step | None = None) -> pb.SessionKeys:
        keys: pb.SessionKeys = self.stub.GetKeys(pb.GetKeysRequest(session_id=self.session_id)).keys
        return keys

    def close(self) -> None:
        pass

    def __enter__(self) -> UnaryHandshake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamHandshake:
    """One connection through the Handshake stream of a synchronous channel."""

    api = "stream"

    def __init__(self, stub: pb_grpc.HandshakerStub, options: Options | None) -> None:
        self.options = options
        self._requests: queue.Queue[pb.HandshakeRequest | None] = queue.Queue()
        self.call = stub.Handshake(iter(self._requests.get, None))
        self._started = False

    def send(self, request: pb.HandshakeRequest) -> None:
        self._requests.put(request)

    def receive(self) -> pb.HandshakeResponse:
        response: pb.HandshakeResponse = next(self.call)
        return response

    def step(self, in_bytes: bytes = b"") -> Step:
        request = pb.HandshakeRequest(in_bytes=in_bytes)
        if not self._started:
            if isinstance(self.options, pb.ClientOptions):
                request.client.CopyFrom(self.options)
            elif isinstance(self.options, pb.ServerOptions):
                request.server.CopyFrom(self.options)
            self._started = True
        self.send(request)
        response = self.receive()
        return Step.of(response.step, response.keys if response.HasField("keys") else None)

    def keys(self, step: Step) -> pb.SessionKeys:
        assert step.keys is not None, "the COMPLETE response on a stream carries the keys"
        return step.keys

    def close(self) -> None:
        """End the request side (the consumer thread stops waiting)."""
        self._requests.put(None)

    def cancel(self) -> None:
        self.call.cancel()
        self.close()

    def __enter__(self) -> StreamHandshake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Handshake = UnaryHandshake | StreamHandshake


class MultiplexStream:
    """One Multiplex stream of a synchronous channel: send frames, read the response."""

    def __init__(self, stub: pb_grpc.HandshakerStub) -> None:
        self._requests: queue.Queue[pb.MultiplexRequest | None] = queue.Queue()
        self.call = stub.Multiplex(iter(self._requests.get, None))

    def send(self, *frames: pb.ConnectionFrame) -> None:
        self._requests.put(pb.MultiplexRequest(frames=frames))

    def receive(self) -> list[pb.ConnectionResult]:
        response: pb.MultiplexResponse = next(self.call)
        return list(response.results)

    def exchange(self, *frames: pb.ConnectionFrame) -> list[pb.ConnectionResult]:
        self.send(*frames)
        return self.receive()

    def close(self) -> None:
        self._requests.put(None)

    def __enter__(self) -> MultiplexStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_frame(connection_id: int, options: Options, in_bytes: bytes = b"") -> pb.ConnectionFrame:
    request = pb.HandshakeRequest(in_bytes=in_bytes)
    if isinstance(options, pb.ClientOptions):
        request.client.CopyFrom(options)
    else:
        request.server.CopyFrom(options)
    return pb.ConnectionFrame(connection_id=connection_id, request=request)


def feed_frame(connection_id: int, in_bytes: bytes) -> pb.ConnectionFrame:
    return pb.ConnectionFrame(
        connection_id=connection_id, request=pb.HandshakeRequest(in_bytes=in_bytes)
    )


def open_handshake(stub: pb_grpc.HandshakerStub, api: str, options: Options) -> Handshake:
    if api == "unary":
        return UnaryHandshake(stub, options)
    if api == "stream":
        return StreamHandshake(stub, options)
    raise ValueError(api)


def relay(client: Handshake, server: Handshake) -> tuple[Step, Step]:
    """Pass each side's out_bytes to the other until the server side ends; the last steps."""
    c = client.step()
    while True:
        s = server.step(c.out_bytes)
        if s.state != NEED_INPUT or c.state != NEED_INPUT:
            return c, s
        c = client.step(s.out_bytes)


def client_options(**fields: object) -> pb.ClientOptions:
    fields.setdefault("server_name", "localhost")
    return pb.ClientOptions(**fields)  # type: ignore[arg-type]


# --- records with the returned keys -------------------------------------------------------


def traffic_keys(keys: pb.TrafficKeys) -> TrafficKeys:
    return TrafficKeys(
        secret=keys.secret, key=keys.key, iv=keys.iv, sequence_number=keys.sequence_number
    )


class RecordLayer:
    """Application data protection for one side of a completed handshake."""

    def __init__(self, keys: pb.SessionKeys) -> None:
        # TLS 1.2's records (RFC 5246 section 6.2.3.3) or TLS 1.3's, as SessionKeys.version says.
        protection = Tls12RecordProtection if keys.version == 0x0303 else RecordProtection
        self.writer = protection.from_keys(keys.cipher_suite, traffic_keys(keys.write))
        self.reader = protection.from_keys(keys.cipher_suite, traffic_keys(keys.read))
        self.incoming = RecordReader()

    def seal(self, data: bytes) -> bytes:
        return self.writer.seal(ContentType.APPLICATION_DATA, data)

    def feed(self, data: bytes) -> list[bytes]:
        """Application data from the records completed by `data`; skips post-handshake messages."""
        self.incoming.feed(data)
        plaintexts = []
        for _, record in self.incoming.records():
            inner_type, plaintext = self.reader.open(record)
            if inner_type == ContentType.APPLICATION_DATA:
                plaintexts.append(plaintext)
            else:
                # NewSessionTicket and other post-handshake messages are not ours to handle.
                assert inner_type == ContentType.HANDSHAKE, f"unexpected inner type {inner_type}"
        return plaintexts

    def read_from(self, sock: socket.socket, already: bytes = b"") -> bytes:
        """The first application data on `sock` (after `already`, bytes read earlier)."""
        plaintexts = self.feed(already)
        while not plaintexts:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("peer closed before sending application data")
            plaintexts = self.feed(data)
        return b"".join(plaintexts)


# --- Python's ssl as the peer, over real sockets ------------------------------------------


@dataclass
class SslPeer:
    """A Python ssl client or server in a thread: handshake, echo one message with a prefix."""

    context: ssl.SSLContext
    server_side: bool
    server_hostname: str | None = None
    received: list[bytes] = field(default_factory=list)
    error: BaseException | None = None
    version: str | None = None
    alpn: str | None = None
    peer_der: bytes | None = None

    def run_client(self, port: int, message: bytes) -> threading.Thread:
        def main() -> None:
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                    self.context.wrap_socket(raw, server_hostname=self.server_hostname) as tls,
                ):
                    self._record(tls)
                    tls.sendall(message)
                    self.received.append(tls.recv(65536))
            except BaseException as error:
                self.error = error

        thread = threading.Thread(target=main, daemon=True)
        thread.start()
        return thread

    def run_server(self, listener: socket.socket, reply_prefix: bytes) -> threading.Thread:
        def main() -> None:
            try:
                raw, _ = listener.accept()
                raw.settimeout(10)
                with self.context.wrap_socket(raw, server_side=True) as tls:
                    self._record(tls)
                    data = tls.recv(65536)
                    self.received.append(data)
                    tls.sendall(reply_prefix + data)
            except BaseException as error:
                self.error = error

        thread = threading.Thread(target=main, daemon=True)
        thread.start()
        return thread

    def _record(self, tls: ssl.SSLSocket) -> None:
        self.version = tls.version()
        self.alpn = tls.selected_alpn_protocol()
        self.peer_der = tls.getpeercert(binary_form=True)


def drive_over_socket(
    handshake: Handshake, sock: socket.socket, *, speaks_first: bool
) -> tuple[Step, bytes]:
    """Run `handshake` against the TLS peer on `sock`; returns the last step and the fed bytes
    past bytes_consumed (application records that arrived behind the handshake)."""
    step = handshake.step() if speaks_first else handshake.step(_recv(sock))
    fed = b""
    while True:
        if step.out_bytes:
            sock.sendall(step.out_bytes)
        if step.state != NEED_INPUT:
            return step, fed[step.bytes_consumed :]
        fed = _recv(sock)
        step = handshake.step(fed)


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the TLS peer closed the connection during the handshake")
    return data


def loopback_listener() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    return listener


# --- secrets in text ----------------------------------------------------------------------


def encodings(secret: bytes) -> Iterator[str]:
    """How a secret could show up in a text log: hex either case, base64 either alphabet."""
    yield secret.hex()
    yield secret.hex().upper()
    standard = base64.b64encode(secret).decode()
    yield standard
    yield standard.rstrip("=")
    yield base64.urlsafe_b64encode(secret).decode().rstrip("=")


def session_secrets(keys: pb.SessionKeys) -> list[bytes]:
    secrets = [
        keys.read.secret,
        keys.read.key,
        keys.read.iv,
        keys.write.secret,
        keys.write.key,
        keys.write.iv,
        keys.exporter_master_secret,
    ]
    for line in keys.keylog:
        # NSS key log: LABEL <client_random hex> <secret hex>
        secrets.append(bytes.fromhex(line.split()[2]))
    return [s for s in secrets if s]


# --- certificates for the gRPC channel (mutual TLS between caller and service) -------------


@dataclass(frozen=True)
class ChannelPki:
    ca_pem: bytes
    server_chain_pem: bytes
    server_key_pem: bytes
    clients: dict[str, tuple[bytes, bytes]]  # DNS name -> (certificate PEM, key PEM)
    files: dict[str, Path]

    def credentials(self, caller: str) -> grpc.ChannelCredentials:
        certificate, key = self.clients[caller]
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem, private_key=key, certificate_chain=certificate
        )

    def serve_args(self) -> list[str]:
        return [
            "--tls-cert",
            str(self.files["cert"]),
            "--tls-key",
            str(self.files["key"]),
            "--tls-client-ca",
            str(self.files["ca"]),
        ]


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _channel_leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    now: datetime.datetime,
    common_name: str,
    *,
    names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
) -> tuple[bytes, bytes]:
    """A day's leaf for the channel's tests, signed by its CA: PEM certificate and key."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())
    return _pem(certificate), _key_pem(key)


def make_channel_pki(
    directory: Path,
    callers: Sequence[str],
    crafted: dict[str, Sequence[x509.GeneralName]] | None = None,
) -> ChannelPki:
    """A CA, a server certificate for localhost/127.0.0.1, and one client certificate per
    caller (its DNS SAN is the caller's name); `crafted` adds callers with exactly the
    given SANs, in that order (none: no subjectAltName extension at all)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "service tests channel CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        common_name: str, names: list[x509.GeneralName], usage: x509.ObjectIdentifier
    ) -> tuple[bytes, bytes]:
        return _channel_leaf(ca_key, ca_name, now, common_name, names=names, usage=usage)

    server_cert, server_key = leaf(
        "localhost",
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        ExtendedKeyUsageOID.SERVER_AUTH,
    )
    clients = {
        name: leaf(name, [x509.DNSName(name)], ExtendedKeyUsageOID.CLIENT_AUTH) for name in callers
    }
    for name, names in (crafted or {}).items():
        clients[name] = leaf(name, list(names), ExtendedKeyUsageOID.CLIENT_AUTH)
    files = {
        "ca": directory / "ca.pem",
        "cert": directory / "server.pem",
        "key": directory / "server.key",
    }
    files["ca"].write_bytes(_pem(ca))
    files["cert"].write_bytes(server_cert)
    files["key"].write_bytes(server_key)
    os.chmod(files["key"], 0o600)
    return ChannelPki(
        ca_pem=_pem(ca),
        server_chain_pem=server_cert,
        server_key_pem=server_key,
        clients=clients,
        files=files,
    )


class Stopping:
    """Stops a ServiceProcess on leaving a with block."""

    def __init__(self, service: ServiceProcess) -> None:
        self.service = service

    def __enter__(self) -> ServiceProcess:
        return self.service.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.service.stop()
