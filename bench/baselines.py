"""The engine benchmark's yardsticks: Python's ssl, OpenSSL 4 via pyOpenSSL, and the crypto floor.

Each factory takes the same certificate and key as the engine's and returns a
callable that runs one full TLS 1.3 handshake, counted as bench/engine.py counts
the engine's: one client and one server, both in this process, in memory, from
creating the two connection objects to both sides finishing; contexts, loaded
certificates and trust stores are built once, outside the timed call.

The crypto floor is not a handshake: it is only the public-key operations one
engine handshake needs, done directly with `cryptography` (see floor_factory).

This module must be imported after bench/engine.py has pointed OPENSSL_CONF at
its config file (that file pins Python's ssl to the group and suite, and turns
session tickets off for both OpenSSL builds).
"""

from __future__ import annotations

import atexit
import shutil
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519
from handshaker.tls.groups import binding_or_public
from OpenSSL import SSL
from OpenSSL._util import lib as _openssl_lib

# OpenSSL's names for the groups the benchmark can run on.
OPENSSL_GROUP_NAMES = {"x25519": "X25519", "x25519mlkem768": "X25519MLKEM768"}
SUITE = "TLS_AES_128_GCM_SHA256"
# The TLS 1.2 comparison (tls12_*): ECDHE-ECDSA over X25519 with AES-128-GCM, no tickets.
TLS12_SUITE = "ECDHE-ECDSA-AES128-GCM-SHA256"
SERVER_NAME = "localhost"


def _pem_files(
    ca: x509.Certificate, leaf: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Path:
    """A fresh folder with cert.pem, key.pem and ca.pem, for the OpenSSL-based peers."""
    folder = Path(tempfile.mkdtemp(prefix="handshaker-bench-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    (folder / "cert.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return folder


def ssl_handshake_factory(
    ca: x509.Certificate,
    leaf: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    *,
    tls12: bool = False,
) -> Callable[[], None]:
    """Python's ssl (the system OpenSSL) over MemoryBIO; group and suite come from OPENSSL_CONF
    (TLS 1.2: pinned here to TLS12_SUITE, tickets off as the engine has none)."""
    folder = _pem_files(ca, leaf, key)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server_context.num_tickets = 0  # the engine sends no tickets either
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(folder / "ca.pem")
    expected = SUITE
    for context in (server_context, client_context):
        if tls12:
            context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers(TLS12_SUITE)
            context.options |= ssl.OP_NO_TICKET
            expected = TLS12_SUITE
        else:
            context.minimum_version = ssl.TLSVersion.TLSv1_3

    def handshake() -> None:
        c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
        client = client_context.wrap_bio(c_in, c_out, server_hostname=SERVER_NAME)
        server = server_context.wrap_bio(s_in, s_out, server_side=True)
        client_done = server_done = False
        while not (client_done and server_done):
            if not client_done:
                try:
                    client.do_handshake()
                    client_done = True
                except ssl.SSLWantReadError:
                    pass
            s_in.write(c_out.read())
            if not server_done:
                try:
                    server.do_handshake()
                    server_done = True
                except ssl.SSLWantReadError:
                    pass
            c_in.write(s_out.read())
        cipher = client.cipher()
        if cipher is None or cipher[0] != expected:
            raise RuntimeError(f"ssl negotiated {cipher}, not {expected}")

    return handshake


def _pyopenssl_context(group: str, *, server: bool, tls12: bool = False) -> SSL.Context:
    context = SSL.Context(SSL.TLS_METHOD)
    if tls12:
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_max_proto_version(SSL.TLS1_2_VERSION)
        context.set_cipher_list(TLS12_SUITE.encode())
        context.set_options(SSL.OP_NO_TICKET)
    else:
        context.set_min_proto_version(SSL.TLS1_3_VERSION)
    # pyOpenSSL has no setters for these; the cffi bindings it uses (cryptography's) do.
    # TLS 1.2: P-256 too, the ECDSA certificate's curve (RFC 8422 section 5.1).
    curves = f"{group}:P-256" if tls12 else group
    if _openssl_lib.SSL_CTX_set1_curves_list(context._context, curves.encode()) != 1:
        raise RuntimeError(f"OpenSSL 4 refused group {group}")
    if _openssl_lib.SSL_CTX_set_ciphersuites(context._context, SUITE.encode()) != 1:
        raise RuntimeError(f"OpenSSL 4 refused suite {SUITE}")
    if not server:
        context.set_verify(SSL.VERIFY_PEER)
        # OpenSSL checks the name while it verifies the chain, as Python's ssl
        # (check_hostname) and the engine (server_name) do.
        param = _openssl_lib.SSL_CTX_get0_param(context._context)
        if _openssl_lib.X509_VERIFY_PARAM_set1_host(param, SERVER_NAME.encode(), 0) != 1:
            raise RuntimeError("OpenSSL 4 refused the server name")
    return context


def _openssl4_contexts(
    ca: x509.Certificate,
    leaf: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    openssl_group: str,
    tls12: bool,
) -> tuple[SSL.Context, SSL.Context]:
    """pyOpenSSL's client context (trusting `ca`) and server context (`leaf` and `key`)."""
    folder = _pem_files(ca, leaf, key)
    server_context = _pyopenssl_context(openssl_group, server=True, tls12=tls12)
    server_context.use_certificate_chain_file(str(folder / "cert.pem"))
    server_context.use_privatekey_file(str(folder / "key.pem"))
    server_context.check_privatekey()
    client_context = _pyopenssl_context(openssl_group, server=False, tls12=tls12)
    client_context.load_verify_locations(str(folder / "ca.pem"))
    return client_context, server_context


def openssl4_handshake_factory(
    ca: x509.Certificate,
    leaf: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    group: str = "x25519",
    *,
    tls12: bool = False,
) -> Callable[[], object]:
    """pyOpenSSL on the OpenSSL that `cryptography` bundles, both sides over memory BIOs.

    The client verifies the chain against ca.pem, checks the name and sends SNI;
    the server sends no session tickets (NumTickets = 0 in OPENSSL_CONF, as
    pyOpenSSL cannot set it), like the engine and the ssl baseline. One checked
    handshake runs here: the group is asked for once, outside the timed loop.
    """
    openssl_group = OPENSSL_GROUP_NAMES[group]
    client_context, server_context = _openssl4_contexts(ca, leaf, key, openssl_group, tls12)
    expected = TLS12_SUITE if tls12 else SUITE
    host_name = SERVER_NAME.encode()

    def handshake() -> SSL.Connection:
        client = SSL.Connection(client_context)
        client.set_tlsext_host_name(host_name)
        client.set_connect_state()
        server = SSL.Connection(server_context)
        server.set_accept_state()
        client_done = server_done = False
        while not (client_done and server_done):
            if not client_done:
                try:
                    client.do_handshake()
                    client_done = True
                except SSL.WantReadError:
                    pass
            # try/except rather than contextlib.suppress: no extra call in the timed loop.
            try:  # noqa: SIM105
                server.bio_write(client.bio_read(65536))
            except SSL.WantReadError:
                pass  # nothing to pass on
            if not server_done:
                try:
                    server.do_handshake()
                    server_done = True
                except SSL.WantReadError:
                    pass
            try:  # noqa: SIM105
                client.bio_write(server.bio_read(65536))
            except SSL.WantReadError:
                pass
        if client.get_cipher_name() != expected:
            raise RuntimeError(f"OpenSSL 4 negotiated {client.get_cipher_name()}, not {expected}")
        return client

    negotiated = handshake().get_group_name()
    if (negotiated or "").lower() != group:
        raise RuntimeError(f"OpenSSL 4 negotiated group {negotiated}, not {openssl_group}")
    return handshake


def _floor_exchange(group: str) -> Callable[[], None]:
    """The floor's key exchange for `group`, through the bindings the public constructors
    call after their backend check, as the engine calls them (groups.binding_or_public):
    the floor has no per-call overhead the engine is spared."""
    if group not in OPENSSL_GROUP_NAMES:
        raise ValueError(f"no floor for group {group}")
    generate_x25519 = binding_or_public(
        x25519.X25519PrivateKey.generate, "x25519.generate_key", True
    )
    load_x25519 = binding_or_public(
        x25519.X25519PublicKey.from_public_bytes, "x25519.from_public_bytes", True
    )

    def exchange_x25519() -> None:
        client_key = generate_x25519()
        client_share = client_key.public_key().public_bytes_raw()
        server_key = generate_x25519()
        server_share = server_key.public_key().public_bytes_raw()
        server_key.exchange(load_x25519(client_share))
        client_key.exchange(load_x25519(server_share))

    if group != "x25519mlkem768":
        return exchange_x25519
    generate_mlkem = binding_or_public(
        mlkem.MLKEM768PrivateKey.generate, "mlkem.generate_mlkem768_key", True
    )
    load_mlkem = binding_or_public(
        mlkem.MLKEM768PublicKey.from_public_bytes, "mlkem.from_mlkem768_public_bytes", True
    )

    def exchange_hybrid() -> None:
        client_kem = generate_mlkem()
        encapsulation_key = client_kem.public_key().public_bytes_raw()
        _, ciphertext = load_mlkem(encapsulation_key).encapsulate()
        client_kem.decapsulate(ciphertext)
        exchange_x25519()

    return exchange_hybrid


def floor_factory(
    ca: x509.Certificate,
    leaf: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    group: str = "x25519",
    *,
    verify_chain: bool = True,
) -> Callable[[], None]:
    """The public-key operations of one engine handshake, straight through `cryptography`.

    Included: the client's key-share generation, the server's key generation and
    exchange (for X25519MLKEM768 also ML-KEM-768 key generation, encapsulation and
    decapsulation), the client's exchange, peer shares loaded from bytes as they
    arrive on the wire; the server's ECDSA P-256 CertificateVerify signature and
    the client's check of it; and, with `verify_chain`, the one chain signature
    the engine's verifier checks (the CA's over the leaf; a trust anchor's own
    signature is not checked). Left out: parsing certificates, path building,
    hashing the transcript, HKDF and AEAD, and all protocol work.
    """
    ca_public_key = ca.public_key()
    leaf_public_key = leaf.public_key()
    if not isinstance(ca_public_key, ec.EllipticCurvePublicKey) or not isinstance(
        leaf_public_key, ec.EllipticCurvePublicKey
    ):
        raise TypeError("the floor is written for an ECDSA chain")
    algorithm = ec.ECDSA(hashes.SHA256())
    tbs = leaf.tbs_certificate_bytes
    certificate_signature = leaf.signature
    # 64 spaces, the context string, a zero byte and a SHA-256 transcript hash.
    content = b" " * 64 + b"TLS 1.3, server CertificateVerify\x00" + bytes(32)

    exchange = _floor_exchange(group)

    def handshake() -> None:
        exchange()
        if verify_chain:
            ca_public_key.verify(certificate_signature, tbs, algorithm)
        leaf_public_key.verify(key.sign(content, algorithm), content, algorithm)

    return handshake
