"""Benchmark: full TLS 1.3 handshakes through the engine vs Python's ssl, in one run.

Both sides of each handshake run in this process, in memory: an ECDSA P-256
server certificate verified against its trust anchor, X25519, and
TLS_AES_128_GCM_SHA256, for the engine and for Python's ssl (OpenSSL) over
MemoryBIO alike. The engine runs twice: as configured by default (a chain it
verified before is remembered, see certificates.TrustStore) and with that
cache off. Rounds alternate between the contenders so that machine noise hits
all of them; each figure is the median round. The last line printed is one
JSON object.

    python bench/engine.py [--json] [--seconds S] [--rounds N]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Pin Python's ssl to the same group and suite as the engine; OpenSSL reads this
# when the ssl module loads, so it must be set before the import below.
_OPENSSL_CONF = """openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Ciphersuites = TLS_AES_128_GCM_SHA256
Groups = X25519
"""
_conf_dir = tempfile.mkdtemp(prefix="handshaker-bench-")
Path(_conf_dir, "openssl.cnf").write_text(_OPENSSL_CONF)
os.environ["OPENSSL_CONF"] = str(Path(_conf_dir, "openssl.cnf"))

import ssl  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402
from handshaker.tls import (  # noqa: E402
    CipherSuite,
    ClientConfig,
    ClientConnection,
    Credential,
    HandshakeComplete,
    NamedGroup,
    PrivateKeySigner,
    ServerConfig,
    ServerConnection,
)


def _pki() -> tuple[x509.Certificate, x509.Certificate, ec.EllipticCurvePrivateKey]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca, leaf, key


def engine_handshake_factory(
    ca: x509.Certificate,
    leaf: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    *,
    verified_chain_cache: bool = True,
) -> Callable[[], None]:
    client_config = ClientConfig(
        verified_chain_cache_size=256 if verified_chain_cache else 0,
        server_name="localhost",
        trust_anchors=(ca,),
        cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,),
        supported_groups=(NamedGroup.X25519,),
        key_share_groups=(NamedGroup.X25519,),
    )
    server_config = ServerConfig(
        credential=Credential((leaf,), PrivateKeySigner(key)),
        cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,),
        supported_groups=(NamedGroup.X25519,),
    )

    def handshake() -> None:
        client = ClientConnection(client_config)
        server = ServerConnection(server_config)
        server.receive_data(client.data_to_send())
        client.receive_data(server.data_to_send())
        server.receive_data(client.data_to_send())
        if not (
            isinstance(client.next_event(), HandshakeComplete)
            and isinstance(server.next_event(), HandshakeComplete)
        ):
            raise RuntimeError("engine handshake did not complete")

    return handshake


def ssl_handshake_factory(
    ca: x509.Certificate, leaf: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Callable[[], None]:
    folder = Path(tempfile.mkdtemp(prefix="handshaker-bench-"))
    (folder / "cert.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.minimum_version = ssl.TLSVersion.TLSv1_3
    server_context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server_context.num_tickets = 0  # the engine sends no tickets either
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.minimum_version = ssl.TLSVersion.TLSv1_3
    client_context.load_verify_locations(folder / "ca.pem")

    def handshake() -> None:
        c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
        client = client_context.wrap_bio(c_in, c_out, server_hostname="localhost")
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
        if cipher is None or cipher[0] != "TLS_AES_128_GCM_SHA256":
            raise RuntimeError(f"ssl negotiated {cipher}, not TLS_AES_128_GCM_SHA256")

    return handshake


def _rate(handshake: Callable[[], None], seconds: float) -> float:
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            handshake()
        count += 20
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds for each contender")
    args = parser.parse_args(argv)

    ca, leaf, key = _pki()
    engine = engine_handshake_factory(ca, leaf, key)
    # The same handshake with the verified-chain cache off: every chain is built
    # and its CA signature checked, as Python's ssl does on every handshake.
    engine_uncached = engine_handshake_factory(ca, leaf, key, verified_chain_cache=False)
    baseline = ssl_handshake_factory(ca, leaf, key)
    for warm_up in (engine, engine_uncached, baseline):
        for _ in range(50):
            warm_up()
    engine_rates: list[float] = []
    uncached_rates: list[float] = []
    ssl_rates: list[float] = []
    for round_number in range(args.rounds):
        engine_rates.append(_rate(engine, args.seconds))
        uncached_rates.append(_rate(engine_uncached, args.seconds))
        ssl_rates.append(_rate(baseline, args.seconds))
        if not args.json:
            print(
                f"round {round_number + 1}: engine {engine_rates[-1]:.0f}/s, "
                f"engine without chain cache {uncached_rates[-1]:.0f}/s, "
                f"ssl {ssl_rates[-1]:.0f}/s",
                file=sys.stderr,
            )
    engine_rate = statistics.median(engine_rates)
    uncached_rate = statistics.median(uncached_rates)
    ssl_rate = statistics.median(ssl_rates)
    result = {
        "benchmark": "tls13_full_handshake_both_sides_in_process",
        "group": "x25519",
        "cipher_suite": "TLS_AES_128_GCM_SHA256",
        "certificate": "ecdsa_secp256r1_sha256, verified against its trust anchor",
        "engine_handshakes_per_s": round(engine_rate, 1),
        "ssl_handshakes_per_s": round(ssl_rate, 1),
        "engine_ms_per_handshake": round(1000 / engine_rate, 3),
        "ssl_ms_per_handshake": round(1000 / ssl_rate, 3),
        "ratio": round(engine_rate / ssl_rate, 3),
        "engine_without_chain_cache_handshakes_per_s": round(uncached_rate, 1),
        "ratio_without_chain_cache": round(uncached_rate / ssl_rate, 3),
        "rounds": args.rounds,
        "round_seconds": args.seconds,
        "ssl_library": ssl.OPENSSL_VERSION,
        "python": sys.version.split()[0],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
