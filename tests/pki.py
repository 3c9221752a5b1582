"""A throwaway test PKI, generated at test time: CAs, server and client leaves, broken leaves.

Everything here is built once per session (tests/conftest.py caches it) and lives
in memory; `write_pem_files` puts a leaf on disk for peers that only read files.
RSA keys are 2048 bits, the rest are elliptic or EdDSA keys, so building the whole
set takes well under a second.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from handshaker.tls import Credential, PrivateKeySigner

PrivateKey = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

# The server leaf key types, by the name tests parametrise over.
SERVER_KEY_TYPES: tuple[str, ...] = (
    "ecdsa-p256",
    "ecdsa-p384",
    "ecdsa-p521",
    "rsa-2048",
    "rsa-pss",
    "ed25519",
    "ed448",
)
CLIENT_KEY_TYPES: tuple[str, ...] = ("ecdsa-p256", "rsa-2048")

SERVER_NAME = "localhost"
SERVER_IP = "127.0.0.1"

# AlgorithmIdentifier { id-RSASSA-PSS (1.2.840.113549.1.1.10) } with absent
# parameters: RFC 4055 section 3.1, "the parameters MAY be absent ... no
# restriction on the hash and mask generation functions".
_RSASSA_PSS_ALGORITHM = bytes.fromhex("300b06092a864886f70d01010a")
_RSA_ENCRYPTION_OID = bytes.fromhex("06092a864886f70d010101")


def generate_key(key_type: str) -> PrivateKey:
    """A fresh private key of the named type."""
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ecdsa-p521":
        return ec.generate_private_key(ec.SECP521R1())
    if key_type in ("rsa-2048", "rsa-pss"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "ed448":
        return ed448.Ed448PrivateKey.generate()
    raise ValueError(f"unknown key type {key_type!r}")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "handshaker tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _hash_for(issuer_key: PrivateKey) -> hashes.SHA256 | None:
    # EdDSA signs the message itself; a hash argument must be None.
    if isinstance(issuer_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


@dataclass(frozen=True)
class Authority:
    """A CA: its key and certificate, and the CA certificates between it and its root."""

    key: PrivateKey
    certificate: x509.Certificate
    # Intermediates above this CA, nearest first, excluding the root.
    parents: tuple[x509.Certificate, ...] = ()

    @property
    def chain_above_leaf(self) -> tuple[x509.Certificate, ...]:
        """What a leaf issued here sends after itself: every CA but the self-signed root."""
        if self.certificate.issuer == self.certificate.subject:
            return ()
        return (self.certificate, *self.parents)


@dataclass(frozen=True)
class Leaf:
    """An end-entity certificate, its private key and the chain it is sent with."""

    name: str
    key: PrivateKey
    certificate: x509.Certificate
    # Leaf first, then intermediates; never the root.
    chain: tuple[x509.Certificate, ...]
    # The certificate's SubjectPublicKeyInfo says id-RSASSA-PSS instead of rsaEncryption.
    rsa_pss: bool = False
    # PKCS#8 DER of the key as peers should load it (for RSA-PSS, with the PSS OID).
    pkcs8: bytes = field(default=b"", repr=False)

    def credential(self) -> Credential:
        """The engine's view of this leaf."""
        return Credential(
            certificate_chain=self.chain,
            signer=PrivateKeySigner(self.key, rsa_pss_pss=self.rsa_pss),
        )


@dataclass(frozen=True)
class PemFiles:
    """Paths of a leaf written out for a peer that reads PEM files."""

    leaf: Path  # the leaf certificate alone
    chain: Path  # leaf followed by its intermediates
    intermediates: Path  # the intermediates alone (may be empty)
    key: Path  # the private key, unencrypted PKCS#8


def make_authority(
    common_name: str,
    *,
    issuer: Authority | None = None,
    key_type: str = "ecdsa-p256",
    now: datetime.datetime,
) -> Authority:
    """A root CA (issuer None) or an intermediate CA under `issuer`."""
    key = generate_key(key_type)
    subject = _name(common_name)
    signing_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    certificate = builder.sign(signing_key, _hash_for(signing_key))
    parents = issuer.chain_above_leaf if issuer else ()
    return Authority(key=key, certificate=certificate, parents=parents)


def issue_leaf(
    name: str,
    issuer: Authority,
    *,
    key_type: str,
    dns_names: Sequence[str] = (SERVER_NAME,),
    ip_addresses: Sequence[str] = (SERVER_IP,),
    client: bool = False,
    now: datetime.datetime,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Leaf:
    """An end-entity certificate for a server (serverAuth) or a client (clientAuth)."""
    key = generate_key(key_type)
    san: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    san += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(days=1))
        .not_valid_after(not_after or now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),  # TLS 1.2 RSA kex
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    certificate = builder.sign(issuer.key, _hash_for(issuer.key))
    pkcs8 = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    rsa_pss = key_type == "rsa-pss"
    if rsa_pss:
        certificate = _as_rsassa_pss_certificate(certificate, issuer.key)
        pkcs8 = _as_rsassa_pss_pkcs8(pkcs8)
    return Leaf(
        name=name,
        key=key,
        certificate=certificate,
        chain=(certificate, *issuer.chain_above_leaf),
        rsa_pss=rsa_pss,
        pkcs8=pkcs8,
    )


# --- RSASSA-PSS SubjectPublicKeyInfo -------------------------------------------
#
# `cryptography` only builds rsaEncryption keys, so an RSASSA-PSS certificate is
# made by swapping the SubjectPublicKeyInfo algorithm of an rsaEncryption one and
# signing the new TBSCertificate again; the key bits are the same.


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _der_elements(data: bytes) -> list[bytes]:
    """Split concatenated DER TLVs into whole elements (tag, length and value)."""
    elements = []
    offset = 0
    while offset < len(data):
        first_length = data[offset + 1]
        if first_length < 0x80:
            header, length = 2, first_length
        else:
            count = first_length & 0x7F
            header = 2 + count
            length = int.from_bytes(data[offset + 2 : offset + 2 + count], "big")
        elements.append(data[offset : offset + header + length])
        offset += header + length
    return elements


def _der_contents(element: bytes) -> bytes:
    first_length = element[1]
    header = 2 if first_length < 0x80 else 2 + (first_length & 0x7F)
    return element[header:]


def _der_tlv(tag: int, contents: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(contents)) + contents


def _swap_rsa_algorithm(algorithm_identifier: bytes) -> bytes:
    if _RSA_ENCRYPTION_OID not in algorithm_identifier:
        raise ValueError("expected an rsaEncryption AlgorithmIdentifier")
    return _RSASSA_PSS_ALGORITHM


def _as_rsassa_pss_certificate(
    certificate: x509.Certificate, issuer_key: PrivateKey
) -> x509.Certificate:
    # Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    _, signature_algorithm, _ = _der_elements(_der_contents(certificate.public_bytes(Encoding.DER)))
    # TBSCertificate ::= SEQUENCE { version [0], serialNumber, signature, issuer,
    #     validity, subject, subjectPublicKeyInfo, ... extensions [3] }
    tbs_fields = _der_elements(_der_contents(certificate.tbs_certificate_bytes))
    spki_algorithm, subject_public_key = _der_elements(_der_contents(tbs_fields[6]))
    tbs_fields[6] = _der_tlv(0x30, _swap_rsa_algorithm(spki_algorithm) + subject_public_key)
    tbs = _der_tlv(0x30, b"".join(tbs_fields))
    if isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        signature = issuer_key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    else:
        raise ValueError("the RSA-PSS leaf is issued by an ECDSA CA")
    der = _der_tlv(0x30, tbs + signature_algorithm + _der_tlv(0x03, b"\x00" + signature))
    return x509.load_der_x509_certificate(der)


def _as_rsassa_pss_pkcs8(pkcs8: bytes) -> bytes:
    # PrivateKeyInfo ::= SEQUENCE { version, privateKeyAlgorithm, privateKey }
    version, algorithm, private_key = _der_elements(_der_contents(pkcs8))
    return _der_tlv(0x30, version + _swap_rsa_algorithm(algorithm) + private_key)


@dataclass(frozen=True)
class PkiFiles:
    """A PKI written out as PEM files for peers that read files."""

    directory: Path
    root_ca: Path  # the trusted root
    unrelated_root_ca: Path  # the root of the untrusted leaf's chain
    leaves: dict[str, PemFiles]

    def __getitem__(self, leaf: Leaf) -> PemFiles:
        return self.leaves[leaf.name]


# --- the session's PKI ---------------------------------------------------------


@dataclass(frozen=True)
class TestPKI:
    """Every certificate the interop tests use."""

    __test__ = False  # not a test class, whatever its name

    root: Authority
    intermediate: Authority
    # Server leaves by key type, issued by the intermediate, sent leaf+intermediate.
    servers: dict[str, Leaf]
    # Client leaves by key type, issued by the intermediate.
    clients: dict[str, Leaf]
    expired: Leaf
    wrong_name: Leaf
    # A leaf whose chain ends at `unrelated_root`, which nobody trusts.
    untrusted: Leaf
    unrelated_root: Authority


def build_pki(now: datetime.datetime | None = None) -> TestPKI:
    """Generate the whole test PKI."""
    now = now or datetime.datetime.now(datetime.UTC)
    root = make_authority("handshaker test root", now=now)
    intermediate = make_authority("handshaker test intermediate", issuer=root, now=now)
    servers = {
        key_type: issue_leaf(f"server {key_type}", intermediate, key_type=key_type, now=now)
        for key_type in SERVER_KEY_TYPES
    }
    clients = {
        key_type: issue_leaf(
            f"client {key_type}",
            intermediate,
            key_type=key_type,
            dns_names=(),
            ip_addresses=(),
            client=True,
            now=now,
        )
        for key_type in CLIENT_KEY_TYPES
    }
    expired = issue_leaf(
        "server expired",
        intermediate,
        key_type="ecdsa-p256",
        now=now,
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    wrong_name = issue_leaf(
        "server wrong name",
        intermediate,
        key_type="ecdsa-p256",
        dns_names=("not-localhost.example",),
        ip_addresses=("192.0.2.1",),
        now=now,
    )
    unrelated_root = make_authority("unrelated root", now=now)
    unrelated_intermediate = make_authority(
        "unrelated intermediate", issuer=unrelated_root, now=now
    )
    untrusted = issue_leaf(
        "server untrusted", unrelated_intermediate, key_type="ecdsa-p256", now=now
    )
    return TestPKI(
        root=root,
        intermediate=intermediate,
        servers=servers,
        clients=clients,
        expired=expired,
        wrong_name=wrong_name,
        untrusted=untrusted,
        unrelated_root=unrelated_root,
    )


def pem(*certificates: x509.Certificate) -> bytes:
    """Certificates as concatenated PEM blocks."""
    return b"".join(c.public_bytes(Encoding.PEM) for c in certificates)


def key_pem(leaf: Leaf) -> bytes:
    """The leaf's private key as an unencrypted PKCS#8 PEM block."""
    lines = textwrap.wrap(base64.b64encode(leaf.pkcs8).decode(), 64)
    body = "".join(f"{line}\n" for line in lines)
    return f"-----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY-----\n".encode()


def write_ca_file(directory: Path, name: str, *certificates: x509.Certificate) -> Path:
    """Write trust anchors as one PEM file."""
    path = directory / f"{name}.pem"
    path.write_bytes(pem(*certificates))
    return path


def write_pem_files(directory: Path, leaf: Leaf) -> PemFiles:
    """Write a leaf, its chain and its key as PEM files named after the leaf."""
    stem = leaf.name.replace(" ", "-")
    files = PemFiles(
        leaf=directory / f"{stem}.crt",
        chain=directory / f"{stem}.chain.crt",
        intermediates=directory / f"{stem}.intermediates.crt",
        key=directory / f"{stem}.key",
    )
    files.leaf.write_bytes(pem(leaf.certificate))
    files.chain.write_bytes(pem(*leaf.chain))
    files.intermediates.write_bytes(pem(*leaf.chain[1:]))
    files.key.write_bytes(key_pem(leaf))
    files.key.chmod(0o600)
    return files
