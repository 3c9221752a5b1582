"""The principal a client certificate names: SANs read with their types, refused when ambiguous."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from handshaker.api.identity import (
    CallerIdentity,
    Unauthenticated,
    UnixPeers,
    certificate_principal,
)
from handshaker.keystore import Policy, Principal, Role

_KEY = ec.generate_private_key(ec.SECP256R1())


def certificate(*names: x509.GeneralName) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice.test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


URI = x509.UniformResourceIdentifier
DNS = x509.DNSName


@pytest.mark.parametrize(
    ("names", "principal"),
    [
        ((URI("spiffe://test/alice"),), "spiffe://test/alice"),
        ((DNS("alice.test"), URI("spiffe://test/alice")), "spiffe://test/alice"),  # SPIFFE first
        ((DNS("Alice.Test"),), "dns:alice.test"),
        ((URI("https://alice.test/"), DNS("alice.test")), "dns:alice.test"),  # not a SPIFFE ID
        ((DNS("alice.test"), DNS("bob.test")), "dns:alice.test"),  # the first DNS SAN
    ],
)
def test_a_certificate_names_its_spiffe_id_else_its_first_dns_name(
    names: tuple[x509.GeneralName, ...], principal: str
) -> None:
    assert str(certificate_principal(certificate(*names))) == principal


@pytest.mark.parametrize(
    ("names", "reason"),
    [
        ((), "no subjectAltName"),
        ((x509.IPAddress(ipaddress.ip_address("127.0.0.1")),), "neither"),
        ((URI("https://alice.test/"),), "neither"),
        ((DNS("spiffe://test/alice"),), "not a DNS name"),
        ((DNS("*.test"),), "not a DNS name"),
        ((URI("spiffe://test/a"), URI("spiffe://test/b")), "more than one SPIFFE ID"),
        ((URI("spiffe://Test/alice"),), "not a SPIFFE ID"),
    ],
)
def test_a_certificate_without_one_clear_name_is_unauthenticated(
    names: tuple[x509.GeneralName, ...], reason: str
) -> None:
    with pytest.raises(Unauthenticated) as raised:
        certificate_principal(certificate(*names))
    assert reason in str(raised.value)


class FakeContext:
    """The two things CallerIdentity reads from a grpc.aio.ServicerContext."""

    def __init__(self, peer: str, auth: dict[str, list[bytes]] | None = None) -> None:
        self._peer = peer
        self._auth = auth or {}

    def peer(self) -> str:
        return self._peer

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


@pytest.mark.parametrize(
    ("peer", "principal"),
    [
        ("ipv4:127.0.0.1:40000", "local"),
        ("ipv4:127.8.9.10:40000", "local"),
        ("ipv6:[::1]:40000", "local"),
        ("ipv6:[::ffff:127.0.0.1]:40000", "local"),
        ("ipv4:10.0.0.7:40000", "anonymous"),
        ("ipv6:[2001:db8::1]:40000", "anonymous"),
        ("unix:", "unix:gid=4242"),
    ],
)
def test_a_caller_without_a_certificate_is_named_by_where_it_connects_from(
    peer: str, principal: str
) -> None:
    identity = CallerIdentity(Principal.unix_gid(4242))
    assert str(identity(FakeContext(peer))) == principal  # type: ignore[arg-type]


def test_a_certificate_on_the_channel_wins_over_the_address() -> None:
    pem = certificate(DNS("alice.test"))
    context = FakeContext("ipv4:127.0.0.1:40000", {"x509_pem_cert": [pem]})
    assert str(CallerIdentity()(context)) == "dns:alice.test"  # type: ignore[arg-type]


def test_a_relayed_unix_peer_is_its_uid_with_its_gids_grants() -> None:
    peers = UnixPeers("/run/hs-private")
    peers.add("unix:/run/hs-private/c-1000-100-7", 1000, 100)
    identity = CallerIdentity(unix_peers=peers)
    principal = identity(FakeContext("unix:/run/hs-private/c-1000-100-7"))  # type: ignore[arg-type]
    assert str(principal) == "unix:uid=1000"
    assert principal.grant_names() == ("unix:uid=1000", "unix:gid=100")
    assert principal == Principal.unix_uid(1000)  # the group is no part of who it is
    policy = Policy().grant_credential("web", Principal.unix_gid(100), (Role.SERVER,))
    assert policy.allows_credential(principal, "web", Role.SERVER)
    assert policy.credential_names(principal, Role.SERVER) == {"web"}
    assert not policy.allows_credential(Principal.unix_uid(1000), "web", Role.SERVER)
    assert not policy.allows_credential(principal, "web", Role.CLIENT)


@pytest.mark.parametrize(
    "peer",
    [
        "unix:/run/hs-private/c-1000-100-8",  # in the private directory, not in the table
        "unix:/run/hs-private/c-0-0-1",  # the path names root, but the table decides
        "unix:",  # straight to the private socket, unbound
        "unix:/elsewhere/c-1000-100-7",
    ],
)
def test_a_unix_peer_the_relay_does_not_know_is_unauthenticated(peer: str) -> None:
    peers = UnixPeers("/run/hs-private")
    peers.add("unix:/run/hs-private/c-1000-100-7", 1000, 100)
    with pytest.raises(Unauthenticated, match="relay"):
        CallerIdentity(unix_peers=peers)(FakeContext(peer))  # type: ignore[arg-type]


def test_a_peer_leaves_the_table_with_its_connection() -> None:
    peers = UnixPeers("/run/hs-private")
    peers.add("unix:/run/hs-private/c-1-1-1", 1, 1)
    peers.remove("unix:/run/hs-private/c-1-1-1")
    assert len(peers) == 0
    with pytest.raises(Unauthenticated):
        CallerIdentity(unix_peers=peers)(FakeContext("unix:/run/hs-private/c-1-1-1"))  # type: ignore[arg-type]
