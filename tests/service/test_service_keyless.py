"""KeyOperations through `handshaker serve`: keyless Sign, Decrypt, GetCredential and Operate.

One real service process with a fresh keystore: ECDSA P-256 and P-384, RSA and Ed25519
credentials from the development CA. Signatures are checked with the leaf's public key;
decryption with ciphertexts made for the leaf. Authorization is the policy's: `local`
holds `sign` on some credentials and `decrypt` on one, and every other use is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from handshaker.api.keyless import KeyOperationsServicer
from handshaker.keystore import EMPTY_POLICY, LOCAL, AsyncKey, KeyOperationError, MemoryKeyStore
from handshaker.keystore import Role as KeyRole
from handshaker.tls import Credential, PrivateKeySigner
from handshaker_wire.v1 import keyless_pb2 as kpb
from handshaker_wire.v1 import keyless_pb2_grpc as kpb_grpc
from pki import Leaf, TestPKI
from service_kit import HANDSHAKER, ServiceProcess

CREDENTIALS = {
    "ec256": ("ecdsa-p256", ("sign",)),
    "ec384": ("ecdsa-p384", ("sign",)),
    "rsa": ("rsa-2048", ("sign", "decrypt")),
    "ed": ("ed25519", ("sign",)),
    # Granted only for handshakes: keyless use of it is refused.
    "serveonly": ("ecdsa-p256", ("server",)),
}
ECDSA_P256_SHA256 = 0x0403
ECDSA_P384_SHA384 = 0x0503
RSA_PSS_RSAE_SHA256 = 0x0804
RSA_PKCS1_SHA256 = 0x0401
ED25519 = 0x0807


def _keys(keystore: Path, *args: str) -> None:
    result = subprocess.run(
        [str(HANDSHAKER), "keys", *args, "--keystore", str(keystore)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def keyless_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("keyless")
    keystore = root / "keystore"
    for name, (key_type, roles) in CREDENTIALS.items():
        _keys(keystore, "generate", name, "--san", f"DNS:{name}.test", "--key-type", key_type)
        _keys(keystore, "allow", name, "local", *(a for r in roles for a in ("--role", r)))
    process = ServiceProcess(keystore, args=("--audit-log", str(root / "audit.log"))).start()
    process.audit_path = root / "audit.log"  # type: ignore[attr-defined]
    yield process
    process.stop()


@pytest.fixture(scope="module")
def ops(keyless_service: ServiceProcess) -> Iterator[kpb_grpc.KeyOperationsStub]:
    with keyless_service.channel() as channel:
        yield kpb_grpc.KeyOperationsStub(channel)  # type: ignore[no-untyped-call]


def _leaf(service: ServiceProcess, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((service.keystore / name / "tls.crt").read_bytes())


def _ref(name: str) -> kpb.KeyReference:
    return kpb.KeyReference(credential=name)


def _error(call: object) -> grpc.RpcError:
    assert callable(call)
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def _verify(leaf: x509.Certificate, scheme: int, signature: bytes, message: bytes) -> None:
    key = leaf.public_key()
    algorithm: hashes.HashAlgorithm = {
        0x0403: hashes.SHA256(),
        0x0503: hashes.SHA384(),
        0x0603: hashes.SHA512(),
        0x0804: hashes.SHA256(),
        0x0401: hashes.SHA256(),
    }.get(scheme, hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, message, ec.ECDSA(algorithm))
    elif isinstance(key, rsa.RSAPublicKey):
        pad: padding.AsymmetricPadding = (
            padding.PSS(padding.MGF1(algorithm), algorithm.digest_size)
            if scheme in (0x0804, 0x0805, 0x0806)
            else padding.PKCS1v15()
        )
        key.verify(signature, message, pad, algorithm)
    else:
        assert isinstance(key, ed25519.Ed25519PublicKey)
        key.verify(signature, message)


# --- GetCredential ------------------------------------------------------------------------


def test_get_credential_gives_the_chain_key_type_schemes_and_never_key_bytes(
    keyless_service: ServiceProcess, ops: kpb_grpc.KeyOperationsStub
) -> None:
    answer = ops.GetCredential(kpb.GetCredentialRequest(key=_ref("rsa")))
    leaf = _leaf(keyless_service, "rsa")
    assert answer.credential == "rsa"
    assert x509.load_der_x509_certificate(answer.certificate_chain[0]) == leaf
    assert len(answer.certificate_chain) >= 1
    assert answer.key_type == "rsa-2048"
    assert list(answer.signature_schemes)[:3] == [0x0804, 0x0805, 0x0806]
    assert RSA_PKCS1_SHA256 in answer.signature_schemes
    assert answer.decrypts
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert answer.subject_key_id == ski
    key_file = (keyless_service.keystore / "rsa" / "tls.key").read_bytes()
    assert key_file.split(b"\n")[1][:40] not in answer.SerializeToString()

    ec_answer = ops.GetCredential(kpb.GetCredentialRequest(key=_ref("ec256")))
    assert ec_answer.key_type == "ecdsa-p256"
    assert list(ec_answer.signature_schemes) == [ECDSA_P256_SHA256]
    assert not ec_answer.decrypts


def test_a_key_is_found_by_its_subject_key_id(
    keyless_service: ServiceProcess, ops: kpb_grpc.KeyOperationsStub
) -> None:
    leaf = _leaf(keyless_service, "ec384")
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    answer = ops.GetCredential(kpb.GetCredentialRequest(key=kpb.KeyReference(subject_key_id=ski)))
    assert answer.credential == "ec384"
    message = b"found by its key id"
    signed = ops.Sign(
        kpb.SignRequest(
            key=kpb.KeyReference(subject_key_id=ski),
            signature_scheme=ECDSA_P384_SHA384,
            message=message,
        )
    )
    _verify(leaf, ECDSA_P384_SHA384, signed.signature, message)
    error = _error(
        lambda: ops.GetCredential(
            kpb.GetCredentialRequest(key=kpb.KeyReference(subject_key_id=bytes(20)))
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "subject key id" in (error.details() or "")


def _ski(leaf: x509.Certificate) -> bytes:
    return leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def test_a_credential_found_by_name_is_found_by_its_id_straight_after(
    keyless_service: ServiceProcess, ops: kpb_grpc.KeyOperationsStub
) -> None:
    # A miss rebuilds the id index; the next rebuild may not come for a second.
    _error(lambda: ops.GetCredential(kpb.GetCredentialRequest(key=kpb.KeyReference(
        subject_key_id=b"\x01" * 20))))
    _keys(keyless_service.keystore, "generate", "fresh", "--san", "DNS:fresh.test")
    _keys(keyless_service.keystore, "allow", "fresh", "local", "--role", "sign")
    deadline = time.monotonic() + 10
    while True:
        try:
            answer = ops.GetCredential(kpb.GetCredentialRequest(key=_ref("fresh")))
            break
        except grpc.RpcError as error:
            # Not loaded yet, or loaded before its grant.
            assert error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
            assert time.monotonic() < deadline
            time.sleep(0.05)
    signed = ops.Sign(kpb.SignRequest(
        key=kpb.KeyReference(subject_key_id=answer.subject_key_id),
        signature_scheme=ECDSA_P256_SHA256, message=b"new",
    ))
    _verify(_leaf(keyless_service, "fresh"), ECDSA_P256_SHA256, signed.signature, b"new")


def test_an_id_shared_by_two_credentials_uses_the_one_the_caller_may_use(
    keyless_service: ServiceProcess, ops: kpb_grpc.KeyOperationsStub
) -> None:
    # "aaa-twin" holds ec256's chain and key, and no grant: it sorts before ec256.
    keystore = keyless_service.keystore
    _keys(keystore, "import", "aaa-twin", "--cert", str(keystore / "ec256" / "tls.crt"),
          "--key", str(keystore / "ec256" / "tls.key"))
    ski = _ski(_leaf(keyless_service, "ec256"))
    deadline = time.monotonic() + 10
    while True:
        error = _error(lambda: ops.GetCredential(kpb.GetCredentialRequest(key=_ref("aaa-twin"))))
        if error.code() == grpc.StatusCode.PERMISSION_DENIED:
            break
        assert error.code() == grpc.StatusCode.NOT_FOUND and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.1)  # past the index's rebuild interval: the next miss-free lookup sees both
    _error(lambda: ops.GetCredential(kpb.GetCredentialRequest(key=kpb.KeyReference(
        subject_key_id=b"\x02" * 20))))
    answer = ops.GetCredential(kpb.GetCredentialRequest(key=kpb.KeyReference(subject_key_id=ski)))
    assert answer.credential == "ec256"
    signed = ops.Sign(kpb.SignRequest(
        key=kpb.KeyReference(subject_key_id=ski), signature_scheme=ECDSA_P256_SHA256,
        message=b"twin",
    ))
    _verify(_leaf(keyless_service, "ec256"), ECDSA_P256_SHA256, signed.signature, b"twin")


# --- Sign ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "scheme"),
    [
        ("ec256", ECDSA_P256_SHA256),
        ("ec384", ECDSA_P384_SHA384),
        ("rsa", RSA_PSS_RSAE_SHA256),
        ("rsa", 0x0806),
        ("rsa", RSA_PKCS1_SHA256),
        ("rsa", 0x0601),
        ("ed", ED25519),
    ],
)
def test_sign_a_message_verifies_under_the_leaf_key(
    keyless_service: ServiceProcess, ops: kpb_grpc.KeyOperationsStub, name: str, scheme: int
) -> None:
    message = os.urandom(130)
    signed = ops.Sign(kpb.SignRequest(key=_ref(name), signature_scheme=scheme, message=message))
    leaf = _leaf(keyless_service, name)
    if scheme == 0x0806:
        key = leaf.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(
            signed.signature,
            message,
            padding.PSS(padding.MGF1(hashes.SHA512()), 64),
            hashes.SHA512(),
        )
    elif scheme == 0x0601:
        key = leaf.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signed.signature, message, padding.PKCS1v15(), hashes.SHA512())
    else:
        _verify(leaf, scheme, signed.signature, message)


@pytest.mark.parametrize(
    ("name", "scheme", "algorithm"),
    [
        ("ec256", ECDSA_P256_SHA256, hashes.SHA256()),
        # TLS 1.2 pairs any hash with any curve: a P-256 key signs a SHA-384 digest.
        ("ec256", ECDSA_P384_SHA384, hashes.SHA384()),
        ("rsa", RSA_PSS_RSAE_SHA256, hashes.SHA256()),
        ("rsa", RSA_PKCS1_SHA256, hashes.SHA256()),
    ],
)
def test_sign_a_digest_the_caller_computed(
    keyless_service: ServiceProcess,
    ops: kpb_grpc.KeyOperationsStub,
    name: str,
    scheme: int,
    algorithm: hashes.HashAlgorithm,
) -> None:
    message = os.urandom(200)
    digest = hashes.Hash(algorithm)
    digest.update(message)
    hashed = digest.finalize()
    signed = ops.Sign(kpb.SignRequest(key=_ref(name), signature_scheme=scheme, digest=hashed))
    key = _leaf(keyless_service, name).public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signed.signature, hashed, ec.ECDSA(Prehashed(algorithm)))
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        pad: padding.AsymmetricPadding = (
            padding.PSS(padding.MGF1(algorithm), algorithm.digest_size)
            if scheme == RSA_PSS_RSAE_SHA256
            else padding.PKCS1v15()
        )
        key.verify(signed.signature, hashed, pad, Prehashed(algorithm))


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (kpb.SignRequest(signature_scheme=ECDSA_P256_SHA256, message=b"x"), "key"),
        (kpb.SignRequest(key=_ref("ec256"), signature_scheme=ECDSA_P256_SHA256), "input"),
        (
            kpb.SignRequest(key=_ref("ec256"), signature_scheme=ECDSA_P256_SHA256, digest=b"short"),
            "digest",
        ),
        (kpb.SignRequest(key=_ref("ed"), signature_scheme=ED25519, digest=bytes(32)), "digest"),
        (
            kpb.SignRequest(key=_ref("ec256"), signature_scheme=RSA_PSS_RSAE_SHA256, message=b"x"),
            "signature_scheme",
        ),
        (
            kpb.SignRequest(key=_ref("ec256"), signature_scheme=0x9999, message=b"x"),
            "signature_scheme",
        ),
        (
            kpb.SignRequest(
                key=_ref("ec256"), signature_scheme=ECDSA_P256_SHA256, message=bytes(20000)
            ),
            "message",
        ),
        (
            kpb.SignRequest(key=_ref("../etc"), signature_scheme=ECDSA_P256_SHA256, message=b"x"),
            "key.credential",
        ),
        (
            kpb.SignRequest(key=_ref("x" * 5000), signature_scheme=ECDSA_P256_SHA256, message=b"x"),
            "key.credential",
        ),
    ],
)
def test_a_bad_sign_request_is_invalid_argument_naming_the_field(
    ops: kpb_grpc.KeyOperationsStub, request_: kpb.SignRequest, field: str
) -> None:
    error = _error(lambda: ops.Sign(request_))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error.details() or ""
    assert details.startswith(field), details
    assert len(details) < 300


def test_keyless_use_needs_its_own_grant(ops: kpb_grpc.KeyOperationsStub) -> None:
    # `serveonly` may serve handshakes for local, but not sign for it.
    error = _error(
        lambda: ops.Sign(
            kpb.SignRequest(key=_ref("serveonly"), signature_scheme=ECDSA_P256_SHA256, message=b"x")
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'serveonly'" in (error.details() or "") and "local" in (error.details() or "")
    # ...but its public half is there for any grant holder.
    assert ops.GetCredential(kpb.GetCredentialRequest(key=_ref("serveonly"))).credential
    # A sign grant is not a decrypt grant.
    error = _error(
        lambda: ops.Decrypt(
            kpb.DecryptRequest(key=_ref("ec256"), ciphertext=bytes(256), plaintext_length=48)
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "decrypt" in (error.details() or "")
    error = _error(
        lambda: ops.Sign(
            kpb.SignRequest(key=_ref("nosuch"), signature_scheme=ECDSA_P256_SHA256, message=b"x")
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


# --- Decrypt ------------------------------------------------------------------------------


def test_decrypt_returns_the_premaster_secret(
    keyless_service: ServiceProcess, ops: kpb_grpc.KeyOperationsStub
) -> None:
    key = _leaf(keyless_service, "rsa").public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    premaster = b"\x03\x03" + os.urandom(46)
    ciphertext = key.encrypt(premaster, padding.PKCS1v15())
    answer = ops.Decrypt(
        kpb.DecryptRequest(key=_ref("rsa"), ciphertext=ciphertext, plaintext_length=48)
    )
    assert answer.plaintext == premaster


def test_decrypt_answers_every_bad_ciphertext_alike_implicit_rejection(
    keyless_service: ServiceProcess, ops: kpb_grpc.KeyOperationsStub
) -> None:
    key = _leaf(keyless_service, "rsa").public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    bad = {
        "random bytes": os.urandom(256),
        "47 bytes": key.encrypt(os.urandom(47), padding.PKCS1v15()),
        "49 bytes": key.encrypt(os.urandom(49), padding.PKCS1v15()),
        "empty plaintext": key.encrypt(b"", padding.PKCS1v15()),
        "OAEP": key.encrypt(
            os.urandom(48), padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
        ),
        "short ciphertext": os.urandom(100),
    }
    for what, ciphertext in bad.items():
        first = ops.Decrypt(
            kpb.DecryptRequest(key=_ref("rsa"), ciphertext=ciphertext, plaintext_length=48)
        )
        second = ops.Decrypt(
            kpb.DecryptRequest(key=_ref("rsa"), ciphertext=ciphertext, plaintext_length=48)
        )
        # OK with 48 bytes each time: no status, no length tells a bad ciphertext apart.
        assert len(first.plaintext) == len(second.plaintext) == 48, what


@pytest.mark.parametrize(
    ("request_", "code", "field"),
    [
        (
            kpb.DecryptRequest(key=_ref("rsa"), ciphertext=bytes(256)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "plaintext_length",
        ),
        (
            kpb.DecryptRequest(key=_ref("rsa"), ciphertext=bytes(256), plaintext_length=257),
            grpc.StatusCode.INVALID_ARGUMENT,
            "plaintext_length",
        ),
        (
            kpb.DecryptRequest(key=_ref("rsa"), plaintext_length=48),
            grpc.StatusCode.INVALID_ARGUMENT,
            "ciphertext",
        ),
        (
            kpb.DecryptRequest(key=_ref("rsa"), ciphertext=bytes(2000), plaintext_length=48),
            grpc.StatusCode.INVALID_ARGUMENT,
            "ciphertext",
        ),
    ],
)
def test_a_bad_decrypt_request_is_refused_naming_the_field(
    ops: kpb_grpc.KeyOperationsStub, request_: kpb.DecryptRequest, code: grpc.StatusCode, field: str
) -> None:
    error = _error(lambda: ops.Decrypt(request_))
    assert error.code() == code
    assert (error.details() or "").startswith(field), error.details()


def test_an_ecdsa_key_does_not_decrypt(keyless_service: ServiceProcess, tmp_path: Path) -> None:
    _keys(keyless_service.keystore, "allow", "ec384", "local", "--role", "decrypt")
    with keyless_service.channel() as channel:
        ops = kpb_grpc.KeyOperationsStub(channel)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + 10
        while True:
            error = _error(
                lambda: ops.Decrypt(
                    kpb.DecryptRequest(
                        key=_ref("ec384"), ciphertext=bytes(256), plaintext_length=48
                    )
                )
            )
            if error.code() != grpc.StatusCode.PERMISSION_DENIED or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "does not decrypt" in (error.details() or "")


# --- the audit trail ----------------------------------------------------------------------


def test_each_keyless_use_is_one_audit_line_without_secrets(
    keyless_service: ServiceProcess, ops: kpb_grpc.KeyOperationsStub
) -> None:
    marker = os.urandom(16)
    key = _leaf(keyless_service, "rsa").public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    premaster = b"\x03\x03" + os.urandom(46)
    ops.Sign(kpb.SignRequest(key=_ref("ec256"), signature_scheme=ECDSA_P256_SHA256, message=marker))
    ops.Decrypt(
        kpb.DecryptRequest(
            key=_ref("rsa"),
            ciphertext=key.encrypt(premaster, padding.PKCS1v15()),
            plaintext_length=48,
        )
    )
    _error(
        lambda: ops.Sign(
            kpb.SignRequest(key=_ref("ec256"), signature_scheme=ECDSA_P256_SHA256, digest=b"bad")
        )
    )
    path: Path = keyless_service.audit_path  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while True:
        text = path.read_text()
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        keyless = [line for line in lines if line.get("role") == "keyless"]
        if len(keyless) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    sign_ok, decrypt_ok, sign_failed = keyless[-3:]
    assert sign_ok["operation"] == "sign" and sign_ok["credential"] == "ec256"
    assert sign_ok["result"] == "ok" and sign_ok["principal"] == "local"
    assert sign_ok["scheme"] == "0x0403"
    assert decrypt_ok["operation"] == "decrypt" and decrypt_ok["result"] == "ok"
    assert sign_failed["result"] == "failed" and "digest" in sign_failed["reason"]
    for secret in (marker, premaster, hashlib.sha256(marker).digest()):
        assert secret.hex() not in text
    assert premaster[2:20] not in text.encode("latin-1", "replace")


# --- Operate ------------------------------------------------------------------------------


def test_operate_pipelines_operations_and_answers_each_by_its_id(
    keyless_service: ServiceProcess, ops: kpb_grpc.KeyOperationsStub
) -> None:
    leaf = _leaf(keyless_service, "ec256")
    messages = {i: os.urandom(64) for i in range(1, 201)}
    requests = [
        kpb.OperateRequest(
            operation_id=i,
            sign=kpb.SignRequest(
                key=_ref("ec256"), signature_scheme=ECDSA_P256_SHA256, message=message
            ),
        )
        for i, message in messages.items()
    ]
    # One that fails, one of each other kind, and an empty one.
    requests.insert(
        50,
        kpb.OperateRequest(
            operation_id=1000,
            sign=kpb.SignRequest(
                key=_ref("nosuch"), signature_scheme=ECDSA_P256_SHA256, message=b"x"
            ),
        ),
    )
    requests.insert(
        60,
        kpb.OperateRequest(
            operation_id=1001, get_credential=kpb.GetCredentialRequest(key=_ref("rsa"))
        ),
    )
    requests.insert(70, kpb.OperateRequest(operation_id=1002))
    answers = {answer.operation_id: answer for answer in ops.Operate(iter(requests), timeout=60)}
    assert len(answers) == len(requests)
    for i, message in messages.items():
        assert answers[i].WhichOneof("result") == "sign"
        _verify(leaf, ECDSA_P256_SHA256, answers[i].sign.signature, message)
    assert answers[1000].error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "nosuch" in answers[1000].error.message
    assert answers[1001].get_credential.credential == "rsa"
    assert answers[1002].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert answers[1002].error.message.startswith("operation")


class SlowKey(AsyncKey):
    """A key in a backend that takes 100 ms an operation, or is down."""

    def __init__(self, leaf: Leaf, *, down: bool = False) -> None:
        self._signer = PrivateKeySigner(leaf.key)
        super().__init__("slow", self._signer.signature_schemes, backend="hsm:rack7")
        self._down = down

    async def sign(self, scheme: int, message: bytes) -> bytes:
        await asyncio.sleep(0.1)
        if self._down:
            raise KeyOperationError(self.backend, "the token is not present")
        return self._signer.sign(scheme, message)


@contextlib.asynccontextmanager
async def _in_process(pki: TestPKI) -> AsyncIterator[kpb_grpc.KeyOperationsStub]:
    leaf = pki.servers["ecdsa-p256"]
    credentials = {
        "slow": Credential(leaf.chain, SlowKey(leaf)),
        "down": Credential(leaf.chain, SlowKey(leaf, down=True)),
    }
    policy = EMPTY_POLICY
    for name in credentials:
        policy = policy.grant_credential(name, LOCAL, (KeyRole.SIGN,))
    store = MemoryKeyStore(credentials, policy=policy)
    server = grpc.aio.server()
    kpb_grpc.add_KeyOperationsServicer_to_server(  # type: ignore[no-untyped-call]
        KeyOperationsServicer(store, max_in_flight=64), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield kpb_grpc.KeyOperationsStub(channel)  # type: ignore[no-untyped-call]
    finally:
        await channel.close()
        await server.stop(None)


def _slow_sign(operation_id: int, name: str = "slow") -> kpb.OperateRequest:
    return kpb.OperateRequest(
        operation_id=operation_id,
        sign=kpb.SignRequest(
            key=_ref(name), signature_scheme=ECDSA_P256_SHA256, message=b"m%d" % operation_id
        ),
    )


def test_operate_runs_slow_operations_at_once_and_refuses_an_id_still_running(
    pki: TestPKI,
) -> None:
    async def run() -> tuple[float, list[kpb.OperateResponse]]:
        async with _in_process(pki) as ops:
            call = ops.Operate()
            started = time.monotonic()
            for i in range(50):
                await call.write(_slow_sign(i))
            await call.write(_slow_sign(7))  # 7 is still running: refused at once
            await call.write(_slow_sign(99, "down"))
            await call.done_writing()
            answers = [answer async for answer in call]
            return time.monotonic() - started, answers

    elapsed, answers = asyncio.run(run())
    # 52 operations of 100 ms each, in flight together: far below their 5 s in a row.
    assert elapsed < 2.0, elapsed
    assert len(answers) == 52
    refused = [a for a in answers if a.operation_id == 7 and a.WhichOneof("result") == "error"]
    assert len(refused) == 1 and refused[0].error.message.startswith("operation_id")
    # The refusal overtakes the slow operations it was queued behind.
    assert answers.index(refused[0]) < 10
    signed = {a.operation_id for a in answers if a.WhichOneof("result") == "sign"}
    assert signed == set(range(50))
    (down,) = [a for a in answers if a.operation_id == 99]

    # The slow key's backend signs whole messages: a digest is the request's fault.
    async def by_digest() -> kpb.OperateResponse:
        async with _in_process(pki) as ops:
            call = ops.Operate()
            sign = kpb.SignRequest(
                key=_ref("slow"), signature_scheme=ECDSA_P256_SHA256, digest=bytes(32)
            )
            await call.write(kpb.OperateRequest(operation_id=1, sign=sign))
            await call.done_writing()
            (answer,) = [answer async for answer in call]
            return answer

    refused_digest = asyncio.run(by_digest())
    assert refused_digest.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert refused_digest.error.message.startswith("digest")
    assert down.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert down.error.message == "keystore hsm:rack7: the token is not present"
