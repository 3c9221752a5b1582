"""Keys on a token: found by label and/or CKA_ID, used as AsyncKeys (ECDSA, RSASSA-PSS,
RSASSA-PKCS1-v1_5, RSA decryption for TLS 1.2), generated, and described."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import PublicKeyAlgorithmOID

from handshaker.tls.sigschemes import ECDSA_SCHEME_FOR_CURVE, SCHEMES, SchemeFamily, schemes_of
from handshaker.tls.tls12 import rsa_kex

from ..base import InvalidCredential
from ..keyops import AsyncKey, KeyOperationError
from .pool import (
    KeyProblem,
    TokenGone,
    TokenPool,
    binding,
    failure_reason,
    has_private_keys,
    load_module,
    pool_for,
)
from .uri import Pkcs11Error, Pkcs11Settings, Pkcs11Uri, module_path_for, read_pin

# The key types `keys generate --in pkcs11:` makes on a token.
TOKEN_KEY_TYPES: tuple[str, ...] = ("ecdsa-p256", "ecdsa-p384", "rsa-2048")

_CURVE_OIDS = {"secp256r1": "1.2.840.10045.3.1.7", "secp384r1": "1.3.132.0.34"}

# RFC 8017 section 9.2 note 1: the DER DigestInfo prefixes for EMSA-PKCS1-v1_5.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def _objects(session: Any, uri: Pkcs11Uri, object_class: Any) -> list[Any]:
    """The token's objects of `object_class` that the URI's object label and/or id name."""
    pkcs11 = binding()
    attrs: dict[Any, Any] = {pkcs11.Attribute.CLASS: object_class}
    if uri.object is not None:
        attrs[pkcs11.Attribute.LABEL] = uri.object
    if uri.id is not None:
        attrs[pkcs11.Attribute.ID] = uri.id
    return list(session.get_objects(attrs))


def _find_private_key(session: Any, uri: Pkcs11Uri) -> Any:
    found = _objects(session, uri, binding().ObjectClass.PRIVATE_KEY)
    if not found:
        if not has_private_keys(session):
            # Not one key where ours was: the token went away (a module may show an empty
            # token rather than none), not this credential's key.
            raise TokenGone(uri.backend, "the token shows no private keys (removed or reset?)")
        raise KeyProblem(uri.backend, f"no private key {_key_label(uri)} on the token")
    if len(found) > 1:
        raise KeyProblem(uri.backend, f"{len(found)} private keys match {_key_label(uri)}")
    return found[0]


def _find_public_key(session: Any, uri: Pkcs11Uri) -> Any:
    found = _objects(session, uri, binding().ObjectClass.PUBLIC_KEY)
    if len(found) != 1:
        raise KeyOperationError(
            uri.backend, f"no single public key {_key_label(uri)} on the token to check against"
        )
    return found[0]


def _key_label(uri: Pkcs11Uri) -> str:
    parts = []
    if uri.object is not None:
        parts.append(f"object={uri.object!r}")
    if uri.id is not None:
        parts.append(f"id={uri.id.hex()}")
    return " ".join(parts) or "(unnamed)"


def public_key_of(public: Any) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The `cryptography` public key of a token public-key object."""
    pkcs11 = binding()
    from pkcs11.util.ec import encode_ec_public_key  # noqa: PLC0415

    if public.key_type == pkcs11.KeyType.RSA:
        modulus = int.from_bytes(public[pkcs11.Attribute.MODULUS], "big")
        exponent = int.from_bytes(public[pkcs11.Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    if public.key_type != pkcs11.KeyType.EC:
        raise Pkcs11Error(f"unsupported key type on the token: {public.key_type!r}")
    key = serialization.load_der_public_key(encode_ec_public_key(public))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Pkcs11Error("unsupported key type on the token")
    return key


def schemes_for_certificate(certificate: x509.Certificate) -> tuple[int, ...]:
    """The signature schemes a token key can make for this leaf, TLS 1.3 ones first.

    ECDSA: the curve's one scheme. RSA: RSASSA-PSS (rsae, or pss for an RSASSA-PSS
    certificate, RFC 8446 section 4.2.3), then PKCS#1 v1.5 for TLS 1.2 (the TLS 1.3
    engine filters those out of its CertificateVerify).
    """
    public_key = certificate.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        scheme = ECDSA_SCHEME_FOR_CURVE.get(public_key.curve.name)
        return (scheme,) if scheme is not None else ()
    if isinstance(public_key, rsa.RSAPublicKey):
        pss_pss = certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSASSA_PSS
        pss = schemes_of(SchemeFamily.RSA_PSS_PSS if pss_pss else SchemeFamily.RSA_PSS_RSAE)
        return pss if pss_pss else (*pss, *schemes_of(SchemeFamily.RSA_PKCS1, tls13_only=False))
    return ()


class Pkcs11Key(AsyncKey):
    """A private key on a token; its operations run on the token pool's threads."""

    __slots__ = ("_cache", "_pool", "_uri")

    def __init__(
        self, uri: Pkcs11Uri, schemes: Sequence[int], pool: TokenPool, *, decrypts: bool = False
    ) -> None:
        super().__init__(
            str(replace(uri, pin_source=None, module_path=None)),
            schemes,
            backend=uri.backend,
            decrypts=decrypts,
        )
        self._uri = uri
        self._pool = pool
        self._cache: dict[int, Any] = {}

    def _private_key(self, session: Any) -> Any:
        # id(session) is stable while the session lives; a reset pool opens new ones.
        cached = self._cache.get(id(session))
        if cached is not None and cached[0] is session:
            return cached[1]
        key = _find_private_key(session, self._uri)
        if len(self._cache) > 64:
            # Entries of sessions closed by pool resets: start again rather than grow.
            self._cache.clear()
        self._cache[id(session)] = (session, key)
        return key

    async def sign(self, scheme: int, message: bytes) -> bytes:
        params = SCHEMES.get(scheme)
        if params is None or params.hash is None or scheme not in self.signature_schemes:
            raise KeyOperationError(
                self.backend, f"this key cannot sign with scheme 0x{scheme:04x}"
            )
        digest = hashes.Hash(params.hash)
        digest.update(message)
        return await self._sign_hashed(scheme, digest.finalize())

    async def sign_digest(self, scheme: int, digest: bytes) -> bytes:
        params = SCHEMES.get(scheme)
        # Any ECDSA scheme's hash with the token key's curve (see AsyncKey.sign_digest).
        ecdsa_key = any(SCHEMES[s].family is SchemeFamily.ECDSA for s in self.signature_schemes)
        if (
            params is None
            or params.hash is None
            or not (
                scheme in self.signature_schemes
                or (ecdsa_key and params.family is SchemeFamily.ECDSA)
            )
        ):
            raise KeyOperationError(
                self.backend, f"this key cannot sign with scheme 0x{scheme:04x}"
            )
        if len(digest) != params.hash.digest_size:
            size = params.hash.digest_size
            raise KeyOperationError(
                self.backend, f"a digest for scheme 0x{scheme:04x} is {size} bytes"
            )
        return await self._sign_hashed(scheme, digest)

    async def _sign_hashed(self, scheme: int, hashed: bytes) -> bytes:
        params = SCHEMES[scheme]
        assert params.hash is not None
        pkcs11 = binding()
        algorithm = params.hash
        family = params.family

        def sign(session: Any) -> bytes:
            key = self._private_key(session)
            if family is SchemeFamily.ECDSA:
                raw = key.sign(hashed, mechanism=pkcs11.Mechanism.ECDSA)
                half = len(raw) // 2
                return encode_dss_signature(
                    int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
                )
            if family in (SchemeFamily.RSA_PSS_RSAE, SchemeFamily.RSA_PSS_PSS):
                hash_mechanism, mgf = _PSS[algorithm.name]
                return bytes(
                    key.sign(
                        hashed,
                        mechanism=pkcs11.Mechanism.RSA_PKCS_PSS,
                        mechanism_param=(
                            getattr(pkcs11.Mechanism, hash_mechanism),
                            getattr(pkcs11.MGF, mgf),
                            algorithm.digest_size,
                        ),
                    )
                )
            if family is SchemeFamily.RSA_PKCS1:
                return bytes(
                    key.sign(
                        _DIGEST_INFO[algorithm.name] + hashed, mechanism=pkcs11.Mechanism.RSA_PKCS
                    )
                )
            raise KeyProblem(self.backend, f"scheme 0x{scheme:04x} is not supported")

        return await self._pool.run(sign)

    async def decrypt(self, ciphertext: bytes) -> bytes:
        """CKM_RSA_PKCS decryption (the TLS 1.2 RSA key exchange, opt-in).

        A ciphertext the token calls invalid (bad padding, wrong length) is b"", not an
        error: the engine turns it into a random premaster secret like every other bad
        one (tls/tls12/rsa_kex.py), so the peer sees the same alert. A token's own timing
        for that answer is the token's; a token that implements implicit rejection
        (returning a synthetic plaintext) leaves nothing to tell apart at all.
        """
        if not self.decrypts:
            raise KeyOperationError(self.backend, "this key may not decrypt")
        pkcs11 = binding()
        # What tokens answer a bad block with: the standard codes, and CKR_GENERAL_ERROR,
        # which SoftHSM2 returns for a bad PKCS#1 padding. Any of them as an error would be
        # a padding oracle (internal_error for bad, bad_record_mac for good), so all three
        # are the empty answer; a token that is really broken fails the next sign instead.
        invalid = (
            pkcs11.exceptions.EncryptedDataInvalid,
            pkcs11.exceptions.EncryptedDataLenRange,
            pkcs11.exceptions.GeneralError,
        )

        def decrypt(session: Any) -> bytes:
            key = self._private_key(session)
            try:
                return bytes(key.decrypt(ciphertext, mechanism=pkcs11.Mechanism.RSA_PKCS))
            except invalid:
                return b""

        return await self._pool.run(decrypt)


_PSS = {
    "sha256": ("SHA256", "SHA256"),
    "sha384": ("SHA384", "SHA384"),
    "sha512": ("SHA512", "SHA512"),
}


def key_for_certificate(
    uri_text: str, certificate: x509.Certificate, *, config: Pkcs11Settings | None = None
) -> Pkcs11Key:
    """An AsyncKey for the token key `uri_text` whose public half is in `certificate`.

    Touches no token: the schemes come from the certificate, so a keystore reload never
    waits on an HSM. `keys import --key-uri` checks the match on the token once.
    """
    uri = Pkcs11Uri.parse(uri_text)
    if not uri.token or not uri.names_a_key:
        raise InvalidCredential(f"{uri_text!r}: a key URI needs token= and object= or id=")
    schemes = schemes_for_certificate(certificate)
    if not schemes:
        raise InvalidCredential(f"{uri.backend}: the certificate's key type cannot sign TLS 1.3")
    # An RSA key may decrypt (the opt-in TLS 1.2 RSA key exchange) when its certificate
    # allows key encipherment; keys generated here have CKA_DECRYPT for RSA.
    public = certificate.public_key()
    decrypts = isinstance(public, rsa.RSAPublicKey) and rsa_kex.allows_key_encipherment(certificate)
    return Pkcs11Key(uri, schemes, pool_for(uri, config), decrypts=decrypts)


# Administration: blocking calls for the CLI (`keys generate --in`, `keys import --key-uri`).


def admin_session(uri: Pkcs11Uri, config: Pkcs11Settings | None, *, rw: bool) -> Any:
    module = load_module(module_path_for(uri, config))
    pkcs11 = binding()
    pin = read_pin(uri)
    try:
        token = module.lib.get_token(token_label=uri.token)
        try:
            return token.open(rw=rw, user_pin=pin)
        except pkcs11.UserAlreadyLoggedIn:
            return token.open(rw=rw)
    except pkcs11.PKCS11Error as error:
        raise Pkcs11Error(f"{uri.backend}: {failure_reason(error)}") from None
    finally:
        del pin


def public_key_on_token(
    uri_text: str, *, config: Pkcs11Settings | None = None
) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The public key the URI's key pair has on the token (to check a certificate against)."""
    uri = Pkcs11Uri.parse(uri_text)
    if not uri.token or not uri.names_a_key:
        raise Pkcs11Error(f"{uri_text!r}: a key URI needs token= and object= or id=")
    pkcs11 = binding()
    session = admin_session(uri, config, rw=False)
    try:
        _find_private_key(session, uri)
        return public_key_of(_find_public_key(session, uri))
    except KeyOperationError as error:
        raise Pkcs11Error(str(error)) from None
    except pkcs11.PKCS11Error as error:
        raise Pkcs11Error(f"{uri.backend}: {failure_reason(error)}") from None
    finally:
        session.close()


def generate_key_pair(
    uri_text: str, label: str, key_type: str, *, config: Pkcs11Settings | None = None
) -> tuple[str, ec.EllipticCurvePublicKey | rsa.RSAPublicKey]:
    """Makes a key pair on the token: private half sensitive and never extractable.

    Returns the URI of the new key (token, object label, a fresh random id) and its
    public key. The label is the URI's object= when it names one, else `label`.
    """
    uri = Pkcs11Uri.parse(uri_text)
    if not uri.token:
        raise Pkcs11Error(f"{uri_text!r}: say which token: pkcs11:token=LABEL")
    if key_type not in TOKEN_KEY_TYPES:
        raise Pkcs11Error(
            f"key type {key_type!r} cannot be made on a token; "
            f"choose one of {', '.join(TOKEN_KEY_TYPES)}"
        )
    pkcs11 = binding()
    object_label = uri.object or label
    key_id = uri.id or secrets.token_bytes(16)
    session = admin_session(uri, config, rw=True)
    try:
        public_key = _generate(session, uri, key_type, object_label, key_id)
    except pkcs11.PKCS11Error as error:
        raise Pkcs11Error(
            f"{uri.backend}: cannot generate the key ({failure_reason(error)})"
        ) from None
    finally:
        session.close()
    made = Pkcs11Uri(
        token=uri.token,
        object=object_label,
        id=key_id,
        serial=uri.serial,
        module_path=uri.module_path,
        pin_source=uri.pin_source,
    )
    return str(made), public_key


def _generate(
    session: Any, uri: Pkcs11Uri, key_type: str, object_label: str, key_id: bytes
) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The key pair made in a read-write session, unless one has the label already."""
    pkcs11 = binding()
    from pkcs11.util.ec import encode_named_curve_parameters  # noqa: PLC0415

    existing = list(
        session.get_objects(
            {
                pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY,
                pkcs11.Attribute.LABEL: object_label,
            }
        )
    )
    if existing:
        raise Pkcs11Error(f"{uri.backend}: a private key labelled {object_label!r} already exists")
    private_template = {
        pkcs11.Attribute.TOKEN: True,
        pkcs11.Attribute.PRIVATE: True,
        pkcs11.Attribute.SENSITIVE: True,
        pkcs11.Attribute.EXTRACTABLE: False,
        pkcs11.Attribute.SIGN: True,
        pkcs11.Attribute.DECRYPT: key_type.startswith("rsa"),
    }
    common: dict[str, Any] = {
        "store": True,
        "label": object_label,
        "id": key_id,
        "private_template": private_template,
    }
    if key_type.startswith("ecdsa"):
        curve = "secp256r1" if key_type == "ecdsa-p256" else "secp384r1"
        public, _ = session.generate_keypair(
            pkcs11.KeyType.EC,
            public_template={
                pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVE_OIDS[curve])
            },
            **common,
        )
    else:
        public, _ = session.generate_keypair(pkcs11.KeyType.RSA, 2048, **common)
    return public_key_of(public)


def key_attributes(
    uri_text: str, names: Sequence[str], *, config: Pkcs11Settings | None = None
) -> dict[str, object]:
    """Reads attributes of the private key (CKA_SENSITIVE, ...): for tests and diagnostics.

    A sensitive attribute the token refuses to reveal is returned as the error's name.
    """
    uri = Pkcs11Uri.parse(uri_text)
    pkcs11 = binding()
    session = admin_session(uri, config, rw=False)
    try:
        key = _find_private_key(session, uri)
        values: dict[str, object] = {}
        for name in names:
            try:
                values[name] = key[getattr(pkcs11.Attribute, name)]
            except pkcs11.PKCS11Error as error:
                values[name] = type(error).__name__
        return values
    finally:
        session.close()
