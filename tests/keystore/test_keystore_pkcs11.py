"""The PKCS#11 backend against a real SoftHSM2 token: URIs, keys made on the token, signatures.

Keys are generated on the token as sensitive and not extractable; every signature
the backend makes is verified with the certificate's public key, for each scheme.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from handshaker.keystore import AsyncKey, DirectoryKeyStore, KeyOperationError
from handshaker.keystore import pkcs11 as hp
from handshaker.keystore.backends import UnknownKeystore, open_keystore
from handshaker.keystore.layout import KEY_FILE, KEY_URI_FILE
from handshaker.tls.codepoints import SignatureScheme
from softhsm import USER_PIN, SoftHsm, make_token

HANDSHAKER = Path(sys.executable).parent / "handshaker"


@pytest.fixture(scope="session")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """One token for this process: SoftHSM2 reads its configuration once, at C_Initialize."""
    made = make_token(tmp_path_factory.mktemp("softhsm"), "keystore-tests")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in made.env.items():
            patch.setenv(name, value)
        yield made
        hp.close_all()


@pytest.fixture(scope="session")
def store(token: SoftHsm, tmp_path_factory: pytest.TempPathFactory) -> DirectoryKeyStore:
    store = DirectoryKeyStore(tmp_path_factory.mktemp("keystore") / "ks")
    for name, key_type in (("p256", "ecdsa-p256"), ("p384", "ecdsa-p384"), ("rsa", "rsa-2048")):
        store.generate_in_token(name, ["DNS:localhost"], token.uri, key_type)
    return store


# URIs (no token needed).


def test_uri_round_trip_and_percent_encoded_id() -> None:
    uri = hp.Pkcs11Uri.parse(
        "pkcs11:token=My%20Token;object=web;id=%01%02%FF;type=private"
        "?module-path=/usr/lib/x.so&pin-source=file:/run/pin"
    )
    assert (uri.token, uri.object, uri.id, uri.object_type) == ("My Token", "web", b"\x01\x02\xff",
                                                                "private")
    assert (uri.module_path, uri.pin_source) == ("/usr/lib/x.so", "file:/run/pin")
    assert hp.Pkcs11Uri.parse(str(uri)) == uri
    assert uri.backend == "pkcs11:token=My Token"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("pkcs11:token=t;object=k?pin-value=1234", "pin-value is not accepted"),
        ("pkcs11:token=t;colour=red", "'colour' is not supported"),
        ("pkcs11:token=t;token=u", "given twice"),
        ("pkcs11:token=t;type=cert", "not a private key"),
        ("file:/tmp/key.pem", "must start with 'pkcs11:'"),
        ("pkcs11:token", "has no value"),
    ],
)
def test_bad_uris_are_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(hp.Pkcs11Error, match=problem) as caught:
        hp.Pkcs11Uri.parse(text)
    assert "1234" not in str(caught.value)


def test_pin_from_a_file_is_its_first_line(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("s3cret\n")
    assert hp.read_pin(hp.Pkcs11Uri.parse(f"pkcs11:token=t?pin-source=file:{pin_file}")) == "s3cret"
    with pytest.raises(hp.Pkcs11Error, match="cannot read the PIN file") as caught:
        hp.read_pin(hp.Pkcs11Uri.parse(f"pkcs11:token=t?pin-source=file:{tmp_path / 'none'}"))
    assert "s3cret" not in str(caught.value)


def test_keystore_uris_choose_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_keystore(f"dir:{tmp_path}"), DirectoryKeyStore)
    assert isinstance(open_keystore(str(tmp_path)), DirectoryKeyStore)
    memory = open_keystore("memory:")
    assert memory.names() == ["localhost"]
    assert memory.trust_bundle("default")
    with pytest.raises(UnknownKeystore, match=r"handshaker\.keystores"):
        open_keystore("nosuch://x")
    with pytest.raises(UnknownKeystore, match="--key-uri"):
        open_keystore("pkcs11:token=t")


# Keys on the token.


@pytest.mark.parametrize("name", ["p256", "p384", "rsa"])
def test_keys_made_on_the_token_are_sensitive_and_not_extractable(
    store: DirectoryKeyStore, name: str
) -> None:
    folder = store.root / name
    assert (folder / KEY_URI_FILE).is_file()
    assert not (folder / KEY_FILE).exists()
    uri = (folder / KEY_URI_FILE).read_text().strip()
    assert USER_PIN not in uri
    secret = "PRIVATE_EXPONENT" if name == "rsa" else "VALUE"
    attributes = hp.key_attributes(
        uri, ["SENSITIVE", "EXTRACTABLE", "ALWAYS_SENSITIVE", "NEVER_EXTRACTABLE", secret]
    )
    assert attributes["SENSITIVE"] is True
    assert attributes["EXTRACTABLE"] is False
    assert attributes["ALWAYS_SENSITIVE"] is True
    assert attributes["NEVER_EXTRACTABLE"] is True
    # The token refuses to reveal the private value.
    assert attributes[secret] == "AttributeSensitive"


SCHEMES = {
    "p256": [SignatureScheme.ECDSA_SECP256R1_SHA256],
    "p384": [SignatureScheme.ECDSA_SECP384R1_SHA384],
    "rsa": [
        SignatureScheme.RSA_PSS_RSAE_SHA256,
        SignatureScheme.RSA_PSS_RSAE_SHA384,
        SignatureScheme.RSA_PSS_RSAE_SHA512,
        SignatureScheme.RSA_PKCS1_SHA256,
        SignatureScheme.RSA_PKCS1_SHA384,
        SignatureScheme.RSA_PKCS1_SHA512,
    ],
}


def _verify(leaf: x509.Certificate, scheme: int, signature: bytes, message: bytes) -> None:
    from handshaker.tls.sigschemes import SCHEMES as PARAMS

    params = PARAMS[scheme]
    public_key = leaf.public_key()
    assert params.hash is not None
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        assert params.ecdsa is not None
        public_key.verify(signature, message, params.ecdsa)
    else:
        assert isinstance(public_key, rsa.RSAPublicKey)
        pad = params.rsa_padding
        assert isinstance(pad, padding.PSS | padding.PKCS1v15)
        public_key.verify(signature, message, pad, params.hash)


@pytest.mark.parametrize(("name", "scheme"), [(n, s) for n, ss in SCHEMES.items() for s in ss])
def test_token_signatures_verify_with_the_certificate(
    store: DirectoryKeyStore, name: str, scheme: int
) -> None:
    credential = store.credential(name)
    key = credential.signer
    assert isinstance(key, AsyncKey)
    assert key.backend == "pkcs11:token=keystore-tests"
    assert scheme in key.signature_schemes
    message = b" " * 64 + b"TLS 1.3, server CertificateVerify\x00" + os.urandom(48)
    signature = asyncio.run(key.sign(scheme, message))
    _verify(credential.certificate_chain[0], scheme, signature, message)


def test_rsa_offers_pss_for_tls13_first(store: DirectoryKeyStore) -> None:
    schemes = list(store.credential("rsa").signer.signature_schemes)
    assert schemes[0] == SignatureScheme.RSA_PSS_RSAE_SHA256
    assert SignatureScheme.RSA_PKCS1_SHA256 in schemes  # for TLS 1.2


def test_token_rsa_decryption_and_its_invalid_answer(store: DirectoryKeyStore) -> None:
    """CKM_RSA_PKCS on the token: a real premaster secret comes back; a ciphertext the token
    calls invalid is b"" (the engine's implicit rejection takes it from there), not an error."""
    credential = store.credential("rsa")
    key = credential.signer
    assert isinstance(key, hp.Pkcs11Key) and key.decrypts
    public = credential.certificate_chain[0].public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    premaster = b"\x03\x03" + bytes(range(46))
    assert asyncio.run(key.decrypt(public.encrypt(premaster, padding.PKCS1v15()))) == premaster
    # The RSA encryption of the integer 2: its plaintext is no PKCS#1 v1.5 block.
    numbers = public.public_numbers()
    garbage = pow(2, numbers.e, numbers.n).to_bytes(public.key_size // 8, "big")
    assert asyncio.run(key.decrypt(garbage)) == b""
    # Shorter than the modulus: the token refuses the length.
    assert asyncio.run(key.decrypt(b"\x01\x02\x03")) == b""


def test_an_ecdsa_token_key_may_not_decrypt(store: DirectoryKeyStore) -> None:
    key = store.credential("p256").signer
    assert isinstance(key, hp.Pkcs11Key) and not key.decrypts


def test_many_signatures_at_once_complete_on_the_pool(store: DirectoryKeyStore) -> None:
    credential = store.credential("p256")
    key = credential.signer
    assert isinstance(key, AsyncKey)

    async def many() -> list[bytes]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        running = asyncio.create_task(ticker())
        try:
            return await asyncio.gather(
                *(key.sign(SignatureScheme.ECDSA_SECP256R1_SHA256, b"m%d" % i) for i in range(64))
            )
        finally:
            running.cancel()
            # The loop kept running while the token worked.
            assert ticks > 0

    signatures = asyncio.run(many())
    for i, signature in enumerate(signatures):
        _verify(credential.certificate_chain[0], SignatureScheme.ECDSA_SECP256R1_SHA256,
                signature, b"m%d" % i)


def test_a_missing_token_is_a_key_operation_error_naming_it(store: DirectoryKeyStore) -> None:
    leaf = store.credential("p256").certificate_chain[0]
    key = hp.key_for_certificate("pkcs11:token=absent;object=p256", leaf)
    with pytest.raises(KeyOperationError) as caught:
        asyncio.run(key.sign(SignatureScheme.ECDSA_SECP256R1_SHA256, b"x"))
    assert caught.value.backend == "pkcs11:token=absent"
    assert str(caught.value) == "keystore pkcs11:token=absent: no such token (NoSuchToken)"


def test_a_missing_object_is_a_key_operation_error(
    store: DirectoryKeyStore, token: SoftHsm
) -> None:
    leaf = store.credential("p256").certificate_chain[0]
    key = hp.key_for_certificate(f"{token.uri};object=nothing-here", leaf)
    with pytest.raises(KeyOperationError, match="no private key object='nothing-here'"):
        asyncio.run(key.sign(SignatureScheme.ECDSA_SECP256R1_SHA256, b"x"))


# `keys import --key-uri` (a fresh process: the CLI logs in itself).


def _cli(token: SoftHsm, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HANDSHAKER), *args], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **token.env},
    )


def test_import_with_a_key_uri_checks_the_key_on_the_token(
    store: DirectoryKeyStore, token: SoftHsm, tmp_path: Path
) -> None:
    uri = (store.root / "p256" / KEY_URI_FILE).read_text().strip()
    other = tmp_path / "ks"
    imported = _cli(token, "keys", "import", "web", "--cert", str(store.root / "p256" / "tls.crt"),
                    "--key-uri", uri, "--keystore", f"dir:{other}")
    assert imported.returncode == 0, imported.stderr
    assert (other / "web" / KEY_URI_FILE).read_text().strip() == uri
    assert not (other / "web" / KEY_FILE).exists()
    assert isinstance(DirectoryKeyStore(other).credential("web").signer, AsyncKey)

    wrong = _cli(token, "keys", "import", "wrong", "--cert", str(store.root / "p384" / "tls.crt"),
                 "--key-uri", uri, "--keystore", str(other))
    assert wrong.returncode == 1
    assert "does not match the leaf certificate" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert not (other / "wrong").exists()

    both = _cli(token, "keys", "import", "x", "--cert", str(store.root / "p256" / "tls.crt"),
                "--keystore", str(other))
    assert both.returncode == 1
    assert "exactly one of --key" in both.stderr


def test_a_bad_pin_is_one_line_naming_the_token(store: DirectoryKeyStore, token: SoftHsm) -> None:
    uri = (store.root / "p256" / KEY_URI_FILE).read_text().strip()
    result = subprocess.run(
        [str(HANDSHAKER), "keys", "import", "web", "--cert", str(store.root / "p256" / "tls.crt"),
         "--key-uri", uri, "--keystore", str(store.root.parent / "other")],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **token.env, "HANDSHAKER_PKCS11_PIN": "wrong-pin-77"},
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "handshaker: error: pkcs11:token=keystore-tests: the token refused the PIN (PinIncorrect)"
    )
    assert "wrong-pin-77" not in result.stderr


# The directory layout: key-uri beside tls.crt, hot reload as for file keys.


def test_a_reissued_chain_for_a_token_key_is_picked_up_without_a_restart(
    token: SoftHsm, tmp_path: Path
) -> None:
    from handshaker.keystore import devca
    from handshaker.keystore.pem import certificates_pem

    store = DirectoryKeyStore(tmp_path / "ks", reload_interval=0)
    store.generate_in_token("web", ["DNS:old.test"], f"{token.uri};object=reissued", "ecdsa-p256")
    assert store.select("old.test", []) is not None
    ca_certificate, ca_key = store.load_or_create_development_ca()
    public_key = store.credential("web").certificate_chain[0].public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    leaf = devca.issue_for_public_key(
        ca_certificate, ca_key, public_key, [devca.parse_san("DNS:new.test")]
    )
    (store.root / "web" / "tls.crt").write_bytes(certificates_pem([leaf]))
    store.reload()
    credential = store.select("new.test", [])
    assert credential is not None and credential.certificate_chain[0] == leaf
    assert isinstance(credential.signer, AsyncKey)
    signature = asyncio.run(credential.signer.sign(SignatureScheme.ECDSA_SECP256R1_SHA256, b"m"))
    _verify(leaf, SignatureScheme.ECDSA_SECP256R1_SHA256, signature, b"m")


def test_a_bad_key_uri_file_is_a_warning_and_the_rest_still_loads(
    store: DirectoryKeyStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "ks"
    root.mkdir()
    for name, uri in (("good", (store.root / "p256" / KEY_URI_FILE).read_text()),
                      ("bad", "pkcs11:token=keystore-tests;object=p256?pin-value=1234\n")):
        (root / name).mkdir()
        (root / name / "tls.crt").write_bytes((store.root / "p256" / "tls.crt").read_bytes())
        (root / name / KEY_URI_FILE).write_text(uri)
    loaded = DirectoryKeyStore(root)
    assert loaded.names() == ["good"]
    assert "key-uri: pin-value is not accepted" in caplog.text
    assert "1234" not in caplog.text


def test_wrapping_a_token_key_out_is_refused(store: DirectoryKeyStore) -> None:
    """Export the way a token allows at all, under a wrapping key: refused (not extractable)."""
    import pkcs11

    uri = hp.Pkcs11Uri.parse((store.root / "rsa" / KEY_URI_FILE).read_text().strip())
    session = hp.admin_session(uri, None, rw=True)
    try:
        wrapping = session.generate_key(
            pkcs11.KeyType.AES, 256, store=False,
            template={pkcs11.Attribute.WRAP: True, pkcs11.Attribute.EXTRACTABLE: False},
        )
        private = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=uri.object)
        with pytest.raises(pkcs11.PKCS11Error) as refused:
            wrapping.wrap_key(private, mechanism=pkcs11.Mechanism.AES_KEY_WRAP_PAD)
        assert type(refused.value).__name__ in ("KeyUnextractable", "KeyNotWrappable")
    finally:
        session.close()


def test_key_types_a_token_cannot_make_are_refused_before_anything_is_written(
    token: SoftHsm, tmp_path: Path
) -> None:
    result = _cli(token, "keys", "generate", "x", "--san", "DNS:x", "--in", token.uri,
                  "--key-type", "ed25519", "--keystore", str(tmp_path / "ks"))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "handshaker: error: key type 'ed25519' cannot be made on a token; "
        "choose one of ecdsa-p256, ecdsa-p384, rsa-2048"
    )
    assert not (tmp_path / "ks").exists()
