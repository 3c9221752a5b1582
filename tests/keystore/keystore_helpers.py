"""Helpers for keystore tests: leaves of each key type and a writer for the cert-manager
folder layout (tls.crt, tls.key, ca.crt)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from handshaker.keystore import devca
from handshaker.tls import Credential, PrivateKeySigner
from handshaker.tls.signer import PrivateKey


@dataclass(frozen=True)
class Leaf:
    key: PrivateKey
    certificate: x509.Certificate
    ca: x509.Certificate

    def credential(self) -> Credential:
        return Credential((self.certificate,), PrivateKeySigner(self.key))

    @property
    def chain_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, traditional: bool = False) -> bytes:
        # Ed25519 and Ed448 have no traditional format: PKCS#8 is their only PEM form.
        has_traditional = isinstance(self.key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
        fmt = (
            serialization.PrivateFormat.TraditionalOpenSSL
            if traditional and has_traditional
            else serialization.PrivateFormat.PKCS8
        )
        return self.key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


# issue_leaf("DNS:a.example", "IP:10.0.0.1", key_type="ecdsa-p256") -> Leaf
IssueLeaf = Callable[..., Leaf]
# write_credential(root, name, leaf, *, traditional=False, ca=False, extra_chain=()) -> folder
WriteCredential = Callable[..., Path]


def make_leaf(
    ca_certificate: x509.Certificate, ca_key: PrivateKey, *sans: str, key_type: str = "ecdsa-p256"
) -> Leaf:
    if key_type == "ed448":
        key: PrivateKey = ed448.Ed448PrivateKey.generate()
    elif key_type == "ecdsa-p521":
        key = ec.generate_private_key(ec.SECP521R1())
    else:
        key = devca.generate_private_key(key_type)
    names = [devca.parse_san(s) for s in sans or ("DNS:localhost",)]
    certificate = devca.issue(ca_certificate, ca_key, key, names)
    return Leaf(key=key, certificate=certificate, ca=ca_certificate)


def write_credential(
    root: Path,
    name: str,
    leaf: Leaf,
    *,
    traditional: bool = False,
    ca: bool = False,
    extra_chain: Sequence[x509.Certificate] = (),
) -> Path:
    """Writes a credential folder the way a mounted cert-manager Secret looks."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    chain = leaf.chain_pem + b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in extra_chain
    )
    replace_file(folder / "tls.key", leaf.key_pem(traditional))
    replace_file(folder / "tls.crt", chain)
    if ca:
        replace_file(folder / "ca.crt", leaf.ca.public_bytes(serialization.Encoding.PEM))
    return folder


def replace_file(path: Path, data: bytes) -> None:
    """Replaces a file by rename, as kubelet and careful tools do (a new inode each time)."""
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_bytes(data)
    os.replace(temporary, path)
