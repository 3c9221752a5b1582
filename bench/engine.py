"""Benchmark: full TLS 1.3 handshakes through the engine vs OpenSSL, in one run.

Both sides of each handshake run in this process, in memory: an ECDSA P-256
server certificate verified against its trust anchor (name checked), one group
(X25519 unless --group says otherwise) and TLS_AES_128_GCM_SHA256, no session
tickets. One handshake is one client and one server, from creating the two
connection objects to both finishing; configs and contexts are built once.
Contenders, each on the same certificate, group and suite:

- the engine as configured by default (a chain it verified before is
  remembered, see certificates.TrustStore), and with that cache off;
- Python's ssl (the system OpenSSL 3) over MemoryBIO (X25519 only: OpenSSL 3.0
  has no X25519MLKEM768);
- pyOpenSSL on the OpenSSL 4 that `cryptography` bundles, over memory BIOs;
- the crypto floor: only the handshake's key exchange and signatures, straight
  through `cryptography` (bench/baselines.py says what is in it), with and
  without the chain signature that the cache saves.

Rounds alternate between the contenders so that machine noise hits all of
them; each rate is the median round, each ratio the median of the rounds'
ratios. The last line printed is one JSON object.

    python bench/engine.py [--json] [--seconds S] [--rounds N] [--group G]
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Pin Python's ssl to the same group and suite as the engine, and turn session
# tickets off in both OpenSSL builds (pyOpenSSL has no setter for that); OpenSSL
# reads this file when it loads, so it must be set before the imports below.
_OPENSSL_CONF = """openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Ciphersuites = TLS_AES_128_GCM_SHA256
Groups = X25519:P-256
NumTickets = 0
"""
_conf_dir = tempfile.mkdtemp(prefix="handshaker-bench-")
atexit.register(shutil.rmtree, _conf_dir, ignore_errors=True)
Path(_conf_dir, "openssl.cnf").write_text(_OPENSSL_CONF)
os.environ["OPENSSL_CONF"] = str(Path(_conf_dir, "openssl.cnf"))

import ssl  # noqa: E402

from baselines import (  # noqa: E402
    OPENSSL_GROUP_NAMES,
    floor_factory,
    openssl4_handshake_factory,
    ssl_handshake_factory,
)
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
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
    ProtocolVersion,
    ServerConfig,
    ServerConnection,
    compiled,
)
from handshaker.tls.codepoints import Tls12CipherSuite  # noqa: E402
from OpenSSL import SSL  # noqa: E402


def bench_pki() -> tuple[x509.Certificate, x509.Certificate, ec.EllipticCurvePrivateKey]:
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


_ENGINE_GROUPS = {"x25519": NamedGroup.X25519, "x25519mlkem768": NamedGroup.X25519MLKEM768}


def engine_configs(
    ca: x509.Certificate,
    leaf: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    *,
    verified_chain_cache: bool = True,
    group: str = "x25519",
    tls12: bool = False,
) -> tuple[ClientConfig, ServerConfig]:
    """The engine's client and server configs for the benchmark's certificate, group and suite
    (tls12: TLS 1.2 only, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)."""
    named_group = _ENGINE_GROUPS[group]
    versions: dict[str, object] = {}
    if tls12:
        # RFC 8422 section 5.1: the ECDSA certificate's curve must be in supported_groups.
        versions = {
            "supported_groups": (named_group, NamedGroup.SECP256R1),
            "max_version": ProtocolVersion.TLS1_2,
            "tls12_cipher_suites": (Tls12CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,),
        }
    client_config = ClientConfig(
        verified_chain_cache_size=256 if verified_chain_cache else 0,
        server_name="localhost",
        trust_anchors=(ca,),
        cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,),
        key_share_groups=(named_group,),
        **{"supported_groups": (named_group,), **versions},  # type: ignore[arg-type]
    )
    server_config = ServerConfig(
        credential=Credential((leaf,), PrivateKeySigner(key)),
        cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,),
        **{"supported_groups": (named_group,), **versions},  # type: ignore[arg-type]
    )
    return client_config, server_config


def engine_handshake_factory(
    ca: x509.Certificate,
    leaf: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    *,
    verified_chain_cache: bool = True,
    group: str = "x25519",
    tls12: bool = False,
) -> Callable[[], None]:
    """The engine's client and server, both in this process, one full handshake a call."""
    client_config, server_config = engine_configs(
        ca, leaf, key, verified_chain_cache=verified_chain_cache, group=group, tls12=tls12
    )

    def handshake() -> None:
        client = ClientConnection(client_config)
        server = ServerConnection(server_config)
        server.receive_data(client.data_to_send())
        client.receive_data(server.data_to_send())
        server.receive_data(client.data_to_send())
        if tls12:  # TLS 1.2's last flight is the server's ChangeCipherSpec and Finished
            client.receive_data(server.data_to_send())
        if not (
            isinstance(client.next_event(), HandshakeComplete)
            and isinstance(server.next_event(), HandshakeComplete)
        ):
            raise RuntimeError("engine handshake did not complete")

    return handshake


def _rate(handshake: Callable[[], object], seconds: float) -> float:
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


def _ssl_has_group(group: str) -> bool:
    # The system OpenSSL 3.0 behind Python's ssl predates X25519MLKEM768 (3.5).
    return group == "x25519" or ssl.OPENSSL_VERSION_INFO >= (3, 5)


def measure(group: str, seconds: float, rounds: int, *, verbose: bool) -> dict[str, list[float]]:
    """Handshakes/s of each contender in every round (interleaved); [] for one that cannot run."""
    ca, leaf, key = bench_pki()
    contenders: dict[str, Callable[[], object]] = {
        "engine": engine_handshake_factory(ca, leaf, key, group=group),
        # Every chain built and its CA signature checked, as OpenSSL does on every handshake.
        "engine_without_chain_cache": engine_handshake_factory(
            ca, leaf, key, verified_chain_cache=False, group=group
        ),
        "openssl4": openssl4_handshake_factory(ca, leaf, key, group),
        # The cache saves the engine the chain signature; the floor without it has it.
        "floor": floor_factory(ca, leaf, key, group, verify_chain=False),
        "floor_without_chain_cache": floor_factory(ca, leaf, key, group, verify_chain=True),
    }
    if _ssl_has_group(group):
        contenders["ssl"] = ssl_handshake_factory(ca, leaf, key)
    if group == "x25519":
        # TLS 1.2 (ECDHE-ECDSA, X25519, AES-128-GCM), same certificate, same run.
        contenders["tls12_engine"] = engine_handshake_factory(ca, leaf, key, tls12=True)
        contenders["tls12_ssl"] = ssl_handshake_factory(ca, leaf, key, tls12=True)
        contenders["tls12_openssl4"] = openssl4_handshake_factory(ca, leaf, key, tls12=True)
    for warm_up in contenders.values():
        for _ in range(50):
            warm_up()
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for round_number in range(rounds):
        for name, handshake in contenders.items():
            rates[name].append(_rate(handshake, seconds))
        if verbose:
            figures = ", ".join(f"{name} {r[-1]:.0f}/s" for name, r in rates.items())
            print(f"round {round_number + 1}: {figures}", file=sys.stderr)
    for name in ("ssl", "tls12_engine", "tls12_ssl", "tls12_openssl4"):
        rates.setdefault(name, [])
    return rates


def _per_s(rates: list[float]) -> float | None:
    return round(statistics.median(rates), 1) if rates else None


def _ms(rates: list[float]) -> float | None:
    return round(1000 / statistics.median(rates), 3) if rates else None


def _ratio(numerator: list[float], denominator: list[float]) -> float | None:
    # The median of each round's ratio: a round's contenders ran seconds apart,
    # so a slow spell on the shared machine mostly cancels out of each pair.
    if not numerator or not denominator:
        return None
    pairs = [a / b for a, b in zip(numerator, denominator, strict=True)]
    return round(statistics.median(pairs), 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds for each contender")
    parser.add_argument(
        "--group", choices=sorted(OPENSSL_GROUP_NAMES), default="x25519", help="key exchange"
    )
    args = parser.parse_args(argv)

    rates = measure(args.group, args.seconds, args.rounds, verbose=not args.json)
    engine, uncached = rates["engine"], rates["engine_without_chain_cache"]
    result = {
        "benchmark": "tls13_full_handshake_both_sides_in_process",
        "group": args.group,
        "cipher_suite": "TLS_AES_128_GCM_SHA256",
        "certificate": "ecdsa_secp256r1_sha256, verified against its trust anchor",
        "engine_handshakes_per_s": _per_s(engine),
        "ssl_handshakes_per_s": _per_s(rates["ssl"]),
        "engine_ms_per_handshake": _ms(engine),
        "ssl_ms_per_handshake": _ms(rates["ssl"]),
        "ratio": _ratio(engine, rates["ssl"]),
        "engine_without_chain_cache_handshakes_per_s": _per_s(uncached),
        "ratio_without_chain_cache": _ratio(uncached, rates["ssl"]),
        "openssl4_handshakes_per_s": _per_s(rates["openssl4"]),
        "openssl4_ms_per_handshake": _ms(rates["openssl4"]),
        "ratio_openssl4": _ratio(engine, rates["openssl4"]),
        "ratio_openssl4_without_chain_cache": _ratio(uncached, rates["openssl4"]),
        "floor_handshakes_per_s": _per_s(rates["floor"]),
        "floor_ms_per_handshake": _ms(rates["floor"]),
        "ratio_floor": _ratio(engine, rates["floor"]),
        "floor_without_chain_cache_handshakes_per_s": _per_s(rates["floor_without_chain_cache"]),
        "ratio_floor_without_chain_cache": _ratio(uncached, rates["floor_without_chain_cache"]),
        "floor_includes": (
            "client keygen, server keygen+exchange, client exchange"
            + (" (ML-KEM-768 keygen/encap/decap + X25519)" if args.group != "x25519" else "")
            + ", ECDSA P-256 CertificateVerify sign+verify;"
            " without cache also the CA's ECDSA signature over the leaf"
        ),
        "tls12_engine_handshakes_per_s": _per_s(rates["tls12_engine"]),
        "tls12_ssl_handshakes_per_s": _per_s(rates["tls12_ssl"]),
        "tls12_openssl4_handshakes_per_s": _per_s(rates["tls12_openssl4"]),
        "tls12_engine_ms_per_handshake": _ms(rates["tls12_engine"]),
        "tls12_ratio": _ratio(rates["tls12_engine"], rates["tls12_ssl"]),
        "tls12_ratio_openssl4": _ratio(rates["tls12_engine"], rates["tls12_openssl4"]),
        "tls12_suite": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 over X25519, no tickets",
        "rounds": args.rounds,
        "round_seconds": args.seconds,
        "ssl_library": ssl.OPENSSL_VERSION,
        "openssl4_library": SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode(),
        "python": sys.version.split()[0],
        "engine_build": compiled.DESCRIPTION,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
