"""CertificateValidator: a verdict on a peer's chain against the keystore's trust bundles.

An in-process service over a memory keystore holding the test PKI's root as "default",
a restricted bundle, and the host's CA store as "system" (pointed at a file of ours
through SSL_CERT_FILE, as OpenSSL reads it). Verdicts are checked for every way a chain
can be wrong, and requests for every way they can be malformed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.protobuf.timestamp_pb2 import Timestamp
from handshaker.api import ConfigFactory
from handshaker.api.validator import CertificateValidatorServicer
from handshaker.keystore import EMPTY_POLICY, LOCAL, MemoryKeyStore
from handshaker_wire.v1 import keyless_pb2 as kpb
from handshaker_wire.v1 import keyless_pb2_grpc as kpb_grpc
from pki import Authority, Leaf, TestPKI, pem

SERVER = kpb.PURPOSE_SERVER_AUTH
CLIENT = kpb.PURPOSE_CLIENT_AUTH
BAD_CERTIFICATE, CERTIFICATE_EXPIRED, UNKNOWN_CA = 42, 45, 48


def _der(*certificates: x509.Certificate) -> list[bytes]:
    return [c.public_bytes(Encoding.DER) for c in certificates]


def _spiffe_leaf(issuer: Authority, uri: str, *, client: bool) -> tuple[x509.Certificate, ...]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "workload")]))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
        .sign(issuer.key, hashes.SHA256())
    )
    return (leaf, *issuer.chain_above_leaf)


@contextlib.asynccontextmanager
async def _validator(pki: TestPKI) -> AsyncIterator[kpb_grpc.CertificateValidatorStub]:
    policy = EMPTY_POLICY.grant_trust_bundle("partners", LOCAL.__class__.parse("dns:other.test"))
    store = MemoryKeyStore(
        {},
        {"default": (pki.root.certificate,), "partners": (pki.unrelated_root.certificate,)},
        policy=policy,
    )
    server = grpc.aio.server()
    kpb_grpc.add_CertificateValidatorServicer_to_server(  # type: ignore[no-untyped-call]
        CertificateValidatorServicer(store, ConfigFactory(store).trust_store), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield kpb_grpc.CertificateValidatorStub(channel)  # type: ignore[no-untyped-call]
    finally:
        await channel.close()
        await server.stop(None)


Check = Callable[[kpb_grpc.CertificateValidatorStub], Coroutine[Any, Any, None]]


def _run(pki: TestPKI, check: Check) -> None:
    async def main() -> None:
        async with _validator(pki) as stub:
            await check(stub)

    asyncio.run(main())


def _chain(leaf: Leaf) -> list[bytes]:
    return _der(*leaf.chain)


def test_a_good_server_chain_is_valid_with_its_path_to_the_anchor(pki: TestPKI) -> None:
    async def check(stub: kpb_grpc.CertificateValidatorStub) -> None:
        leaf = pki.servers["ecdsa-p256"]
        for identity in ({"dns_name": "localhost"}, {"ip_address": "127.0.0.1"}):
            answer = await stub.ValidateChain(
                kpb.ValidateChainRequest(certificate_chain=_chain(leaf), purpose=SERVER, **identity)
            )
            assert answer.verdict == kpb.VERDICT_VALID, answer.reason
            assert list(answer.verified_path) == _der(
                leaf.certificate, pki.intermediate.certificate, pki.root.certificate
            )
            assert answer.alert == 0 and not answer.reason

    _run(pki, check)


def test_each_bad_chain_gets_its_alert_and_a_reason(pki: TestPKI) -> None:
    async def check(stub: kpb_grpc.CertificateValidatorStub) -> None:
        leaf = pki.servers["ecdsa-p256"]
        cases = [
            ("wrong name", _chain(leaf), {"dns_name": "example.com"}, BAD_CERTIFICATE),
            ("wrong ip", _chain(leaf), {"ip_address": "192.0.2.9"}, BAD_CERTIFICATE),
            ("unknown CA", _chain(pki.untrusted), {"dns_name": "localhost"}, UNKNOWN_CA),
            ("expired", _chain(pki.expired), {"dns_name": "localhost"}, CERTIFICATE_EXPIRED),
            ("no intermediate", _der(leaf.certificate), {"dns_name": "localhost"}, UNKNOWN_CA),
            ("not DER", [b"\x30\x03\x02\x01\x00"], {"dns_name": "localhost"}, BAD_CERTIFICATE),
            (
                "a client certificate as a server's",
                _chain(pki.clients["ecdsa-p256"]),
                {"dns_name": "localhost"},
                BAD_CERTIFICATE,
            ),
        ]
        for what, chain, identity, alert in cases:
            answer = await stub.ValidateChain(
                kpb.ValidateChainRequest(certificate_chain=chain, purpose=SERVER, **identity)
            )
            assert answer.verdict == kpb.VERDICT_INVALID, what
            assert answer.alert == alert, (what, answer.alert, answer.reason)
            assert answer.reason and not answer.verified_path, what

    _run(pki, check)


def test_validation_time_is_the_callers_to_choose(pki: TestPKI) -> None:
    async def check(stub: kpb_grpc.CertificateValidatorStub) -> None:
        leaf = pki.servers["ecdsa-p256"]
        later = Timestamp()
        later.FromDatetime(datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3650))
        answer = await stub.ValidateChain(
            kpb.ValidateChainRequest(
                certificate_chain=_chain(leaf),
                purpose=SERVER,
                dns_name="localhost",
                validation_time=later,
            )
        )
        assert answer.verdict == kpb.VERDICT_INVALID and answer.alert == CERTIFICATE_EXPIRED
        # A time in its validity, and one before it.
        for when, verdict in (
            (datetime.timedelta(days=1), kpb.VERDICT_VALID),
            (datetime.timedelta(days=-30), kpb.VERDICT_INVALID),
        ):
            stamp = Timestamp()
            stamp.FromDatetime(datetime.datetime.now(datetime.UTC) + when)
            answer = await stub.ValidateChain(
                kpb.ValidateChainRequest(
                    certificate_chain=_chain(leaf),
                    purpose=SERVER,
                    dns_name="localhost",
                    validation_time=stamp,
                )
            )
            assert answer.verdict == verdict, (when, answer.reason)

    _run(pki, check)


def test_client_chains_with_and_without_an_expected_identity(pki: TestPKI) -> None:
    async def check(stub: kpb_grpc.CertificateValidatorStub) -> None:
        client = pki.clients["ecdsa-p256"]
        answer = await stub.ValidateChain(
            kpb.ValidateChainRequest(certificate_chain=_chain(client), purpose=CLIENT)
        )
        assert answer.verdict == kpb.VERDICT_VALID, answer.reason
        # A server leaf (serverAuth only) is not a client's.
        answer = await stub.ValidateChain(
            kpb.ValidateChainRequest(
                certificate_chain=_chain(pki.servers["rsa-2048"]), purpose=CLIENT
            )
        )
        assert answer.verdict == kpb.VERDICT_INVALID and answer.alert == BAD_CERTIFICATE
        spiffe = "spiffe://prod.test/ns/web/sa/api"
        workload = _der(*_spiffe_leaf(pki.intermediate, spiffe, client=True))
        answer = await stub.ValidateChain(
            kpb.ValidateChainRequest(certificate_chain=workload, purpose=CLIENT, spiffe_id=spiffe)
        )
        assert answer.verdict == kpb.VERDICT_VALID, answer.reason
        answer = await stub.ValidateChain(
            kpb.ValidateChainRequest(
                certificate_chain=workload, purpose=CLIENT, spiffe_id="spiffe://prod.test/other"
            )
        )
        assert answer.verdict == kpb.VERDICT_INVALID and answer.alert == BAD_CERTIFICATE
        assert "spiffe://prod.test/other" in answer.reason

    _run(pki, check)


def test_a_server_known_by_its_spiffe_id(pki: TestPKI) -> None:
    async def check(stub: kpb_grpc.CertificateValidatorStub) -> None:
        spiffe = "spiffe://prod.test/ns/db/sa/postgres"
        server = _der(*_spiffe_leaf(pki.intermediate, spiffe, client=False))
        answer = await stub.ValidateChain(
            kpb.ValidateChainRequest(certificate_chain=server, purpose=SERVER, spiffe_id=spiffe)
        )
        assert answer.verdict == kpb.VERDICT_VALID, answer.reason
        # clientAuth-only EKU: not a server, whatever it is named.
        client = _der(*_spiffe_leaf(pki.intermediate, spiffe, client=True))
        answer = await stub.ValidateChain(
            kpb.ValidateChainRequest(certificate_chain=client, purpose=SERVER, spiffe_id=spiffe)
        )
        assert answer.verdict == kpb.VERDICT_INVALID and answer.alert == BAD_CERTIFICATE

    _run(pki, check)


def test_the_system_bundle_is_the_hosts_ca_store(
    pki: TestPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "ca-certificates.crt"
    # As a distribution's file: our anchor among others, one of which does not parse.
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    store.write_bytes(pem(pki.unrelated_root.certificate) + broken + pem(pki.root.certificate))
    monkeypatch.setenv("SSL_CERT_FILE", str(store))

    async def check(stub: kpb_grpc.CertificateValidatorStub) -> None:
        for leaf in (pki.servers["ecdsa-p256"], pki.untrusted):
            answer = await stub.ValidateChain(
                kpb.ValidateChainRequest(
                    certificate_chain=_chain(leaf),
                    purpose=SERVER,
                    dns_name="localhost",
                    trust_bundle="system",
                )
            )
            assert answer.verdict == kpb.VERDICT_VALID, answer.reason
        # The keystore's "default" does not trust the unrelated root.
        answer = await stub.ValidateChain(
            kpb.ValidateChainRequest(
                certificate_chain=_chain(pki.untrusted), purpose=SERVER, dns_name="localhost"
            )
        )
        assert answer.alert == UNKNOWN_CA

    _run(pki, check)


@pytest.mark.parametrize(
    ("fields", "code", "start"),
    [
        (
            {"purpose": SERVER, "dns_name": "localhost"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "certificate_chain",
        ),
        (
            {"certificate_chain": [b"x"] * 17, "purpose": SERVER, "dns_name": "a.test"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "certificate_chain",
        ),
        (
            {"certificate_chain": [b"x"], "dns_name": "a.test"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "purpose",
        ),
        (
            {"certificate_chain": [b"x"], "purpose": SERVER},
            grpc.StatusCode.INVALID_ARGUMENT,
            "expected_identity",
        ),
        (
            {"certificate_chain": [b"x"], "purpose": SERVER, "dns_name": "bad name!"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "dns_name",
        ),
        (
            {"certificate_chain": [b"x"], "purpose": SERVER, "ip_address": "300.1.1.1"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "ip_address",
        ),
        (
            {"certificate_chain": [b"x"], "purpose": CLIENT, "spiffe_id": "https://x"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "spiffe_id",
        ),
        (
            {"certificate_chain": [b"x"], "purpose": CLIENT, "trust_bundle": "nosuch"},
            grpc.StatusCode.NOT_FOUND,
            "trust_bundle",
        ),
        (
            {"certificate_chain": [b"x"], "purpose": CLIENT, "trust_bundle": "partners"},
            grpc.StatusCode.PERMISSION_DENIED,
            "local may not use the trust bundle 'partners'",
        ),
    ],
)
def test_a_bad_request_gets_a_status_naming_the_field(
    pki: TestPKI, fields: dict[str, Any], code: grpc.StatusCode, start: str
) -> None:
    async def check(stub: kpb_grpc.CertificateValidatorStub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ValidateChain(kpb.ValidateChainRequest(**fields))
        assert raised.value.code() == code
        assert (raised.value.details() or "").startswith(start), raised.value.details()

    _run(pki, check)
