"""Token keys end to end: `keys generate --in pkcs11:` on a SoftHSM2 token, a real `handshaker
serve`, `terminate` to openssl s_client and `connect` to openssl s_server -Verify.

Also what an operator sees when the token is not usable: a wrong PIN or a missing token fails
the handshake in band (internal_error, a reason naming the keystore), the health status says
NOT_SERVING, nothing logs a traceback, and the PIN appears nowhere.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import handshaker_client as hc
import pytest
from clients_kit import (
    HANDSHAKER,
    Process,
    Service,
    connect_command,
    free_port,
    running,
    s_server,
    terminate,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from grpc_health.v1 import health_pb2, health_pb2_grpc
from softhsm import USER_PIN, SoftHsm, make_token

pytestmark = pytest.mark.interop

KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "rsa-2048")
SIGNATURE_NAMES = {"ecdsa-p256": "ECDSA", "ecdsa-p384": "ECDSA", "rsa-2048": "RSA-PSS"}


def _start(keystore: Path, env: dict[str, str], *extra: str) -> Service:
    port = free_port()
    address = f"127.0.0.1:{port}"
    process = Process(
        [str(HANDSHAKER), "serve", "--listen", address, "--keystore", str(keystore),
         "--pkcs11-sessions", "2", *extra],
        env=env,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return Service(address, keystore, process)
        except OSError:
            if process.popen.poll() is not None or time.monotonic() > deadline:
                process.stop()
                raise RuntimeError(f"handshaker serve did not start:\n{process.output()}") from None
            time.sleep(0.05)


def _keys(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(HANDSHAKER), "keys", *args], capture_output=True, text=True, timeout=120,
        check=False, env=env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    return make_token(tmp_path_factory.mktemp("softhsm"), "clients-tests")


@pytest.fixture(scope="module")
def env(token: SoftHsm) -> dict[str, str]:
    return {**os.environ, **token.env}


@pytest.fixture(scope="module")
def hsm_service(
    token: SoftHsm, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """A keystore whose credentials keep their keys on the token, and a service using it."""
    keystore = tmp_path_factory.mktemp("hsm") / "keystore"
    for key_type in KEY_TYPES:
        output = _keys(env, "generate", f"hsm-{key_type}", "--san", "DNS:localhost",
                       "--in", token.uri, "--key-type", key_type, "--allow", "local",
                       "--keystore", str(keystore))
        assert "key on the token: pkcs11:token=clients-tests;object=hsm-" in output
    _keys(env, "generate", "hsm-client", "--san", "DNS:client.hsm.test", "--in",
          f"{token.uri};object=client-key", "--allow", "local", "--keystore", str(keystore))
    service = _start(keystore, env)
    try:
        yield service
    finally:
        service.process.stop()
        output = service.process.output()
        assert USER_PIN not in output
        assert "Traceback" not in output


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_terminate_serves_openssl_with_a_token_key(
    hsm_service: Service, openssl: str, key_type: str
) -> None:
    with terminate(hsm_service, "--key", f"hsm-{key_type}", "--http-hello") as (_, port):
        request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        result = subprocess.run(
            # -brief: the summary on stderr; -ign_eof: read the answer after sending the request.
            [openssl, "s_client", "-brief", "-ign_eof", "-connect", f"127.0.0.1:{port}",
             "-servername", "localhost", "-CAfile", str(hsm_service.ca_file),
             "-verify_return_error", "-tls1_3"],
            input=request, capture_output=True, timeout=30, check=False,
        )
    summary = result.stderr.decode(errors="replace")
    assert result.returncode == 0, summary
    assert "Protocol version: TLSv1.3" in summary
    assert "Verification: OK" in summary
    assert f"Signature type: {SIGNATURE_NAMES[key_type]}\n" in summary
    assert result.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert result.stdout.endswith(b"hello from handshaker\n")


@pytest.mark.parametrize(
    ("credential", "subject"),
    [("hsm-client", r"client\.hsm\.test"), *((f"hsm-{t}", "localhost") for t in KEY_TYPES)],
)
def test_connect_presents_a_token_key_to_s_server_verify(
    hsm_service: Service, openssl: str, tmp_path: Path, credential: str, subject: str
) -> None:
    # s_server needs a certificate of its own: a file key from the same development CA.
    _keys(dict(os.environ), "generate", "plain-server", "--san", "DNS:localhost",
          "--keystore", str(tmp_path / "plain"))
    plain = tmp_path / "plain" / "plain-server"
    with s_server(
        openssl, "-cert", str(plain / "tls.crt"), "-key", str(plain / "tls.key"),
        "-Verify", "1", "-CAfile", str(hsm_service.ca_file), "-www",
    ) as (server, port):
        result = connect_command(
            hsm_service, f"localhost:{port}", "--ca-file", str(plain.parent / "dev-ca" / "ca.crt"),
            "--key", credential, stdin=b"GET / HTTP/1.0\r\n\r\n",
        )
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.startswith(b"HTTP/1.0 200 ok\r\n")
        server.wait_for(rf"depth=0 CN ?= ?{subject}")


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_terminate_serves_openssl_over_tls12_with_a_token_key(
    hsm_service: Service, openssl: str, key_type: str
) -> None:
    """TLS 1.2: the token key signs the ServerKeyExchange (RSA: PKCS#1 v1.5 when the
    client allows only that, as here)."""
    sigalgs = "RSA+SHA256" if key_type.startswith("rsa") else "ECDSA+SHA256:ECDSA+SHA384"
    with terminate(hsm_service, "--key", f"hsm-{key_type}", "--http-hello") as (process, port):
        request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        result = subprocess.run(
            [openssl, "s_client", "-brief", "-ign_eof", "-connect", f"127.0.0.1:{port}",
             "-servername", "localhost", "-CAfile", str(hsm_service.ca_file),
             "-verify_return_error", "-tls1_2", "-sigalgs", sigalgs],
            input=request, capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        summary = result.stderr.decode(errors="replace")
        assert result.returncode == 0, summary
        assert "Protocol version: TLSv1.2" in summary
        assert "Verification: OK" in summary
        assert result.stdout.endswith(b"hello from handshaker\n")
        process.wait_for(r"127\.0\.0\.1:\d+: TLSv1\.2 ")


def test_connect_presents_a_token_key_to_a_tls12_s_server(
    hsm_service: Service, openssl: str, tmp_path: Path
) -> None:
    """TLS 1.2 client authentication: the token key signs the CertificateVerify."""
    _keys(dict(os.environ), "generate", "plain-server", "--san", "DNS:localhost",
          "--keystore", str(tmp_path / "plain"))  # fmt: skip
    plain = tmp_path / "plain" / "plain-server"
    port = free_port()
    with running(
        [openssl, "s_server", "-tls1_2", "-accept", f"127.0.0.1:{port}",
         "-cert", str(plain / "tls.crt"), "-key", str(plain / "tls.key"),
         "-Verify", "1", "-CAfile", str(hsm_service.ca_file), "-www"],
        stdin=subprocess.PIPE,
    ) as server:
        server.wait_for(r"^ACCEPT", stream="stdout")
        result = connect_command(
            hsm_service, f"localhost:{port}", "--ca-file", str(plain.parent / "dev-ca" / "ca.crt"),
            "--key", "hsm-rsa-2048", "--max-version", "1.2", stdin=b"GET / HTTP/1.0\r\n\r\n",
        )
        assert result.returncode == 0, result.stderr.decode()
        assert "protocol: TLSv1.2" in result.stderr.decode()
        assert b"Protocol  : TLSv1.2" in result.stdout
        server.wait_for(r"depth=0 CN ?= ?localhost")


def test_the_rsa_key_exchange_decrypts_on_the_token(hsm_service: Service, openssl: str) -> None:
    """TLS_RSA_WITH_AES_128_GCM_SHA256 (opt-in, named in the options): the premaster secret
    is decrypted by the token (CKM_RSA_PKCS), through the waiting key operation."""
    options = hc.server_options(credential="hsm-rsa-2048", cipher_suites=[0x009C])
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    served: dict[str, object] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        tls = hc.wrap_server_socket(conn, options=options, handshaker=hsm_service.address)
        try:
            served["suite"] = tls.cipher_suite
            tls.sendall(tls.recv(1024)[::-1])
        finally:
            tls.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = subprocess.run(
            [openssl, "s_client", "-brief", "-ign_eof", "-connect", f"127.0.0.1:{port}",
             "-servername", "localhost", "-CAfile", str(hsm_service.ca_file),
             "-verify_return_error", "-tls1_2", "-cipher", "AES128-GCM-SHA256"],
            input=b"decrypted on the token\n", capture_output=True, timeout=30, check=False,
        )  # fmt: skip
    finally:
        thread.join(timeout=30)
        listener.close()
    summary = result.stderr.decode(errors="replace")
    assert result.returncode == 0, summary
    assert "Ciphersuite: AES128-GCM-SHA256" in summary
    assert b"\nnekot eht no detpyrced" in result.stdout
    assert served["suite"] == 0x009C
    hsm_service.process.wait_for(r'"operation": "decrypt"')


def _health(service: Service) -> int:
    with grpc.insecure_channel(service.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return int(response.status)


def _wait_for_health(service: Service, status: int) -> None:
    deadline = time.monotonic() + 10
    while _health(service) != status:
        assert time.monotonic() < deadline, f"health never became {status}"
        time.sleep(0.2)


def test_a_wrong_pin_fails_in_band_and_the_service_says_not_serving(
    hsm_service: Service, env: dict[str, str], openssl: str
) -> None:
    wrong = {**env, "HANDSHAKER_PKCS11_PIN": "wrong-pin-4242"}
    service = _start(hsm_service.keystore, wrong)
    try:
        assert _health(service) == health_pb2.HealthCheckResponse.SERVING
        with terminate(service, "--key", "hsm-ecdsa-p256", "--http-hello") as (proxy, port):
            result = subprocess.run(
                [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                 "localhost", "-CAfile", str(service.ca_file), "-tls1_3"],
                input=b"", capture_output=True, timeout=30, check=False,
            )
            assert b"alert internal error" in result.stdout + result.stderr
            proxy.wait_for(
                r"handshake failed: internal_error \(80\): keystore pkcs11:token=clients-tests: "
                r"the token refused the PIN \(PinIncorrect\)"
            )
        service.process.wait_for(r'"reason": "keystore pkcs11:token=clients-tests: the token '
                                 r'refused the PIN')
        _wait_for_health(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        service.process.wait_for(r'"message": "key backend unusable"')
    finally:
        service.process.stop()
    output = service.process.output()
    assert "wrong-pin-4242" not in output
    assert "Traceback" not in output
    # A refused PIN is not tried again by the health probe (tokens lock after a few tries).
    assert output.count("PinIncorrect") <= 3


def test_a_missing_token_fails_in_band_naming_it(
    hsm_service: Service, env: dict[str, str], openssl: str, tmp_path: Path
) -> None:
    folder = hsm_service.keystore / "hsm-ecdsa-p256"
    keystore = tmp_path / "keystore"
    _keys(env, "import", "gone", "--cert", str(folder / "tls.crt"),
          "--key-uri", (folder / "key-uri").read_text().strip(), "--allow", "local",
          "--keystore", str(keystore))
    # The token is taken away: the credential now names a token that is not there.
    (keystore / "gone" / "key-uri").write_text("pkcs11:token=unplugged;object=hsm-ecdsa-p256\n")
    service = _start(keystore, env)
    try:
        with terminate(service, "--key", "gone", "--http-hello") as (proxy, port):
            subprocess.run(
                [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                 "localhost", "-CAfile", str(folder / "ca.crt"), "-tls1_3"],
                input=b"", capture_output=True, timeout=30, check=False,
            )
            proxy.wait_for(
                r"handshake failed: internal_error \(80\): keystore pkcs11:token=unplugged: "
                r"no such token \(NoSuchToken\)"
            )
        _wait_for_health(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    finally:
        service.process.stop()
    assert "Traceback" not in service.process.output()


def test_a_pin_file_fixed_while_serving_brings_the_token_back(
    hsm_service: Service, env: dict[str, str], openssl: str, tmp_path: Path
) -> None:
    folder = hsm_service.keystore / "hsm-ecdsa-p384"
    pin_file = tmp_path / "pin"
    pin_file.write_text(USER_PIN + "\n")
    key_uri = f"{(folder / 'key-uri').read_text().strip()}?pin-source=file:{pin_file}"
    keystore = tmp_path / "keystore"
    no_env_pin = {k: v for k, v in env.items() if k != "HANDSHAKER_PKCS11_PIN"}
    _keys(no_env_pin, "import", "filed", "--cert", str(folder / "tls.crt"), "--key-uri", key_uri,
          "--allow", "local", "--keystore", str(keystore))
    pin_file.write_text("not-the-pin-31\n")
    service = _start(keystore, no_env_pin)

    def handshake() -> subprocess.CompletedProcess[bytes]:
        with terminate(service, "--key", "filed", "--http-hello") as (_, port):
            return subprocess.run(
                [openssl, "s_client", "-brief", "-ign_eof", "-connect", f"127.0.0.1:{port}",
                 "-servername", "localhost", "-CAfile", str(folder / "ca.crt"), "-tls1_3"],
                input=b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                capture_output=True, timeout=30, check=False,
            )

    try:
        assert b"alert internal error" in handshake().stderr
        _wait_for_health(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        pin_file.write_text(USER_PIN + "\n")
        # The health probe logs in with the new PIN within a second or two.
        _wait_for_health(service, health_pb2.HealthCheckResponse.SERVING)
        service.process.wait_for(r'"message": "key backends usable again"')
        result = handshake()
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.endswith(b"hello from handshaker\n")
    finally:
        service.process.stop()
    output = service.process.output()
    assert "not-the-pin-31" not in output
    assert USER_PIN not in output
    assert "Traceback" not in output


def test_a_token_removed_and_put_back_while_serving(
    openssl: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """SoftHSM2's token is a folder: taking it away is pulling the token out."""
    token = make_token(tmp_path_factory.mktemp("removable"), "removable")
    env = {**os.environ, **token.env}
    keystore = tmp_path_factory.mktemp("removable-ks") / "keystore"
    _keys(env, "generate", "plug", "--san", "DNS:localhost", "--in", token.uri, "--allow",
          "local", "--keystore", str(keystore))
    service = _start(keystore, env)

    def handshake() -> subprocess.CompletedProcess[bytes]:
        with terminate(service, "--key", "plug", "--http-hello") as (_, port):
            return subprocess.run(
                [openssl, "s_client", "-brief", "-ign_eof", "-connect", f"127.0.0.1:{port}",
                 "-servername", "localhost", "-CAfile", str(service.ca_file), "-tls1_3"],
                input=b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                capture_output=True, timeout=30, check=False,
            )

    (folder,) = token.token_dir.iterdir()
    pulled = token.token_dir.parent / "pulled"
    try:
        assert handshake().returncode == 0
        folder.rename(pulled)
        assert b"alert internal error" in handshake().stderr
        service.process.wait_for(r'"reason": "keystore pkcs11:token=removable: ')
        _wait_for_health(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        pulled.rename(folder)
        # The module is initialised again (at most every 5 s) and finds the token.
        deadline = time.monotonic() + 20
        while _health(service) != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, service.process.output()
            time.sleep(0.5)
        result = handshake()
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.endswith(b"hello from handshaker\n")
    finally:
        if pulled.exists():
            pulled.rename(folder)
        service.process.stop()
    assert "Traceback" not in service.process.output()


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_keyless_sign_and_decrypt_with_a_token_key(
    hsm_service: Service, env: dict[str, str], key_type: str
) -> None:
    name = f"hsm-{key_type}"
    _keys(env, "allow", name, "local", "--role", "sign", "--role", "decrypt",
          "--keystore", str(hsm_service.keystore))
    leaf = x509.load_pem_x509_certificate(hsm_service.cert_file(name).read_bytes())
    key = leaf.public_key()
    scheme = {"ecdsa-p256": 0x0403, "ecdsa-p384": 0x0503, "rsa-2048": 0x0804}[key_type]
    algorithm = hashes.SHA384() if key_type == "ecdsa-p384" else hashes.SHA256()
    with hc.KeylessClient(hsm_service.address) as client:
        deadline = time.monotonic() + 10
        while True:  # the grant reaches the service within a second
            try:
                signature = client.sign(name, scheme, message=b"on the token")
                break
            except hc.HandshakerRpcError as error:
                if error.code != grpc.StatusCode.PERMISSION_DENIED or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        digest = hashes.Hash(algorithm)
        digest.update(b"prehashed")
        hashed = digest.finalize()
        by_digest = client.sign(name, scheme, digest=hashed)
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, b"on the token", ec.ECDSA(algorithm))
            key.verify(by_digest, hashed, ec.ECDSA(Prehashed(algorithm)))
            with pytest.raises(hc.HandshakerRpcError) as raised:
                client.decrypt(name, bytes(256))
            assert raised.value.code == grpc.StatusCode.FAILED_PRECONDITION
            return
        assert isinstance(key, rsa.RSAPublicKey)
        pss = padding.PSS(padding.MGF1(algorithm), algorithm.digest_size)
        key.verify(signature, b"on the token", pss, algorithm)
        key.verify(by_digest, hashed, pss, Prehashed(algorithm))
        # TLS 1.2 signs with PKCS#1 v1.5 too, and the token decrypts the premaster secret.
        pkcs1 = client.sign(name, 0x0401, digest=hashed)
        key.verify(pkcs1, hashed, padding.PKCS1v15(), Prehashed(algorithm))
        premaster = b"\x03\x03" + os.urandom(46)
        assert client.decrypt(name, key.encrypt(premaster, padding.PKCS1v15())) == premaster
        # A bad block is 48 bytes like any other answer (the token's error is not shown).
        assert len(client.decrypt(name, os.urandom(256))) == 48
