"""The Python client's keyless calls and the `keys sign` / `keys verify-chain` verbs.

A service of their own (its policy gains sign grants) with an ECDSA and an RSA credential
from the development CA. Signatures are verified with the leaf's public key, verdicts are
checked against chains the test makes, and the CLI verbs run as a script would run them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import handshaker_client as hc
import pytest
from clients_kit import HANDSHAKER, Service, connect_command, s_server, start_service
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding

ECDSA_P256_SHA256 = 0x0403


def _keys(service: Service, *args: str) -> None:
    subprocess.run(
        [str(HANDSHAKER), "keys", *args, "--keystore", str(service.keystore)],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("keyless-client")
    keystore = root / "keystore"
    # The host's CA store, as the service sees it: another CA's, which issued `public`.
    public = root / "public-pki"
    subprocess.run(
        [HANDSHAKER, "keys", "generate", "public", "--san", "DNS:localhost", "--keystore", public],
        check=True,
        capture_output=True,
    )
    started = start_service(keystore, env={"SSL_CERT_FILE": str(public / "dev-ca" / "ca.crt")})
    started.public_pki = public  # type: ignore[attr-defined]
    try:
        for name, key_type in (("web", "ecdsa-p256"), ("legacy", "rsa-2048")):
            _keys(started, "generate", name, "--san", f"DNS:{name}.test", "--key-type", key_type)
            _keys(started, "allow", name, "local", "--role", "sign", "--role", "decrypt")
        # The service rereads the keystore each second.
        with hc.KeylessClient(started.address) as client:
            for _ in range(100):
                try:
                    client.get_credential("legacy")
                    break
                except hc.HandshakerRpcError:
                    time.sleep(0.1)
        yield started
    finally:
        started.process.stop()


def _leaf(service: Service, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(service.cert_file(name).read_bytes())


def _chain_der(service: Service, name: str) -> list[bytes]:
    blocks = x509.load_pem_x509_certificates(service.cert_file(name).read_bytes())
    return [c.public_bytes(Encoding.DER) for c in blocks]


def test_sync_client_signs_decrypts_describes_and_validates(keyless: Service) -> None:
    with hc.KeylessClient(keyless.address) as client:
        info = client.get_credential("web")
        assert info.name == "web" and info.key_type == "ecdsa-p256"
        assert x509.load_der_x509_certificate(info.certificate_chain[0]) == _leaf(keyless, "web")
        assert client.get_credential(info.subject_key_id).name == "web"

        signature = client.sign("web", ECDSA_P256_SHA256, message=b"hello")
        key = _leaf(keyless, "web").public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(signature, b"hello", ec.ECDSA(hashes.SHA256()))
        digest = hashes.Hash(hashes.SHA256())
        digest.update(b"prehashed")
        hashed = digest.finalize()
        signature = client.sign("web", ECDSA_P256_SHA256, digest=hashed)
        key.verify(signature, hashed, ec.ECDSA(Prehashed(hashes.SHA256())))

        rsa_key = _leaf(keyless, "legacy").public_key()
        assert isinstance(rsa_key, rsa.RSAPublicKey)
        premaster = b"\x03\x03" + os.urandom(46)
        ciphertext = rsa_key.encrypt(premaster, padding.PKCS1v15())
        assert client.decrypt("legacy", ciphertext) == premaster

        verdict = client.validate_chain(_chain_der(keyless, "web"), dns_name="web.test")
        assert verdict.valid and len(verdict.verified_path) == 2
        verdict = client.validate_chain(_chain_der(keyless, "web"), dns_name="other.test")
        assert not verdict.valid and verdict.alert == 42

        with pytest.raises(hc.HandshakerRpcError) as raised:
            client.sign("nosuch", ECDSA_P256_SHA256, message=b"x")
        assert raised.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(ValueError, match="message or digest"):
            client.sign("web", ECDSA_P256_SHA256)


def test_async_pipeline_keeps_many_operations_on_one_stream(keyless: Service) -> None:
    key = _leaf(keyless, "web").public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    messages = [os.urandom(32) for _ in range(100)]

    async def main() -> tuple[list[bytes], hc.HandshakerRpcError, hc.Verdict]:
        async with hc.AsyncKeylessClient(keyless.address) as client:
            async with client.pipeline() as ops:
                signatures = await asyncio.gather(
                    *(ops.sign("web", ECDSA_P256_SHA256, message=m) for m in messages)
                )
                try:
                    await ops.sign("legacy", 0x9999, message=b"x")
                except hc.HandshakerRpcError as error:
                    refused = error
                else:
                    raise AssertionError("an unknown scheme was accepted")
                # The stream goes on after a failed operation.
                assert (await ops.get_credential("legacy")).key_type == "rsa-2048"
            verdict = await client.validate_chain(
                _chain_der(keyless, "legacy"), dns_name="legacy.test"
            )
            return list(signatures), refused, verdict

    signatures, refused, verdict = asyncio.run(main())
    for message, signature in zip(messages, signatures, strict=True):
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    assert refused.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "signature_scheme" in refused.details
    assert verdict.valid


def _cli(service: Service, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(HANDSHAKER), *args, "--handshaker", service.address],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_keys_sign_and_verify_chain_for_scripts(keyless: Service, tmp_path: Path) -> None:
    result = _cli(
        keyless, "keys", "sign", "legacy", "--scheme", "rsa_pss_rsae_sha256", stdin=b"doc"
    )
    assert result.returncode == 0, result.stderr
    signature = base64.b64decode(result.stdout.strip())
    key = _leaf(keyless, "legacy").public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, b"doc", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    out = tmp_path / "sig.bin"
    message = tmp_path / "msg"
    message.write_bytes(b"file input")
    result = _cli(
        keyless,
        "keys",
        "sign",
        "web",
        "--scheme",
        "0x0403",
        "--in",
        str(message),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    web = _leaf(keyless, "web").public_key()
    assert isinstance(web, ec.EllipticCurvePublicKey)
    web.verify(out.read_bytes(), b"file input", ec.ECDSA(hashes.SHA256()))

    result = _cli(keyless, "keys", "sign", "web", "--scheme", "no_such_scheme", stdin=b"x")
    assert result.returncode == 2 and b"unknown signature scheme" in result.stderr
    result = _cli(keyless, "keys", "sign", "nosuch", "--scheme", "ed25519", stdin=b"x")
    assert result.returncode == 1 and b"NOT_FOUND" in result.stderr
    assert b"Traceback" not in result.stderr

    chain = str(keyless.cert_file("web"))
    result = _cli(keyless, "keys", "verify-chain", chain, "--dns-name", "web.test")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"valid: a path of 2 certificates")
    result = _cli(keyless, "keys", "verify-chain", chain, "--dns-name", "evil.test")
    assert result.returncode == 1
    assert result.stdout.startswith(b"invalid: bad_certificate (42): ")
    result = _cli(
        keyless, "keys", "verify-chain", chain, "--dns-name", "web.test", "--trust-bundle", "system"
    )
    assert result.returncode == 1 and b"unknown_ca (48)" in result.stdout


def test_connect_checks_the_server_against_the_hosts_ca_store_by_default(
    keyless: Service, openssl: str
) -> None:
    public: Path = keyless.public_pki  # type: ignore[attr-defined]
    cert, key = str(public / "public" / "tls.crt"), str(public / "public" / "tls.key")
    with s_server(openssl, "-cert", cert, "-key", key) as (_, port):
        result = connect_command(keyless, f"localhost:{port}", stdin=b"GET / HTTP/1.0\r\n\r\n")
        assert result.returncode == 0, result.stderr
        assert b"TLSv1.3" in result.stderr
    with s_server(openssl, "-cert", cert, "-key", key) as (_, port):
        # The keystore's own bundle (the development CA) does not know that CA.
        result = connect_command(keyless, f"localhost:{port}", "--trust-bundle", "default")
        assert result.returncode == 1
        assert b"unknown_ca" in result.stderr
