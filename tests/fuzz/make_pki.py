"""Writes the fuzz targets' PKI (tests/fuzz/pki/), once: the files are committed so every
machine replays byte-identical transcripts. Test keys only, used by nothing else.

root (ECDSA P-256) -> server-ecdsa (what the client target validates),
                   -> server-ed25519 (signs deterministically: the server target's own key),
                   -> client (ECDSA P-256, for client authentication).
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PKI = Path(__file__).with_name("pki")
NOT_BEFORE = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(2046, 1, 1, tzinfo=datetime.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def main() -> None:
    PKI.mkdir(exist_ok=True)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("fuzz root"))
        .issuer_name(_name("fuzz root"))
        .public_key(root_key.public_key())
        .serial_number(1)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    (PKI / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
    leaves = (
        ("server-ecdsa", ec.generate_private_key(ec.SECP256R1()), ExtendedKeyUsageOID.SERVER_AUTH),
        ("server-ed25519", ed25519.Ed25519PrivateKey.generate(), ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ec.generate_private_key(ec.SECP256R1()), ExtendedKeyUsageOID.CLIENT_AUTH),
    )
    for serial, (name, key, usage) in enumerate(leaves, start=2):
        leaf = (
            x509.CertificateBuilder()
            .subject_name(_name(f"fuzz {name}"))
            .issuer_name(root.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(NOT_BEFORE)
            .not_valid_after(NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.ExtendedKeyUsage([usage]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
            )
            .sign(root_key, hashes.SHA256())
        )
        (PKI / f"{name}.pem").write_bytes(leaf.public_bytes(Encoding.PEM))
        (PKI / f"{name}.key").write_bytes(
            key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        )


if __name__ == "__main__":
    main()
