"""Who is calling: the caller's Principal, which owns its sessions and which the policy grants.

- Mutual TLS on the gRPC channel: the client certificate's SPIFFE ID (its one
  `spiffe://` URI SAN) as a `spiffe` principal, else its first DNS SAN as a `dns`
  principal. The certificate is parsed here from the PEM gRPC hands over, not from
  gRPC's flat `x509_subject_alternative_name` list, which drops each name's type (a
  DNS SAN "spiffe://x" and a URI SAN "spiffe://x" would look alike there). A
  certificate with neither, with a name that is not valid for its type, or with two
  SPIFFE IDs is refused (UNAUTHENTICATED): there is no principal to give it.
- A Unix socket (`--listen unix:PATH`): the peer's uid and gid from SO_PEERCRED. gRPC
  Python does not expose them (every Unix peer is just "unix:"), so gRPC does not
  listen on PATH: the service's own relay does (unix_relay.py). It reads each
  connection's SO_PEERCRED and relays it to gRPC on a private socket, from a client
  socket bound to `<private dir>/c-UID-GID-N`; gRPC reports that path as the peer, and
  the relay's table (UnixPeers) gives back the uid and gid. The caller is then
  `unix:uid=UID`, and a grant to `unix:gid=GID` (its primary group, as SO_PEERCRED
  reports it; supplementary groups are not looked at) applies to it too. A peer in the
  private directory that the table does not know, or any other Unix peer while the
  relay runs, is refused (UNAUTHENTICATED). PATH is 0600, or 0660 with
  --unix-socket-group, so only the owner (and that group, and root) can connect at all.
- An abstract Unix socket (`unix-abstract:NAME`) is served by gRPC directly, as
  before: it has no file permissions and gRPC reports no credentials, so its callers
  are `local` (anyone on this host, in this network namespace).
- TCP without a client certificate: `local` when the peer address is loopback (that
  is anyone on this host), else `anonymous`.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from dataclasses import dataclass, field

import grpc
from cryptography import x509

from handshaker.keystore import ANONYMOUS, LOCAL, InvalidPrincipal, Principal


class Unauthenticated(Exception):
    """The caller presented a certificate that names no usable principal."""


@functools.lru_cache(maxsize=1024)
def certificate_principal(pem: bytes) -> Principal:
    """The principal a client certificate names; raises Unauthenticated.

    Cached by the certificate's bytes: every unary RPC of a channel presents the same one.
    """
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except (ValueError, x509.InvalidVersion):  # InvalidVersion is not a ValueError
        raise Unauthenticated("the client certificate does not parse") from None
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        raise Unauthenticated(
            "the client certificate has no subjectAltName: a SPIFFE ID (URI) or a DNS name "
            "is needed"
        ) from None
    # The URI scheme compares case-insensitively (RFC 3986 section 3.1); the SPIFFE ID
    # itself must then be spelled canonically, which check_spiffe_id insists on.
    spiffe_ids = [
        uri
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        if uri[:9].lower() == "spiffe://"
    ]
    try:
        if len(spiffe_ids) > 1:
            # An X.509-SVID carries exactly one SPIFFE ID (X509-SVID.md section 2).
            raise Unauthenticated("the client certificate has more than one SPIFFE ID")
        if spiffe_ids:
            return Principal.spiffe(spiffe_ids[0])
        dns_names = san.get_values_for_type(x509.DNSName)
        if dns_names:
            return Principal.dns(dns_names[0])
    except InvalidPrincipal as error:
        raise Unauthenticated(f"the client certificate's name is refused: {error}") from None
    raise Unauthenticated("the client certificate has neither a SPIFFE ID (URI SAN) nor a DNS SAN")


def _is_loopback_peer(peer: str) -> bool:
    # grpc's peer strings: "ipv4:127.0.0.1:5000", "ipv6:[::1]:5000".
    kind, _, address = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return False
    host = address.rpartition(":")[0].strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@dataclass(slots=True)
class UnixPeers:
    """The relay's table: gRPC peer string ("unix:" + a bound path) -> the caller's uid, gid.

    `directory` is the relay's private directory: a peer there is a relayed connection,
    known only while the relay holds it.
    """

    directory: str
    _callers: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, peer: str, uid: int, gid: int) -> None:
        self._callers[peer] = (uid, gid)

    def remove(self, peer: str) -> None:
        self._callers.pop(peer, None)

    def lookup(self, peer: str) -> tuple[int, int] | None:
        return self._callers.get(peer)

    def __len__(self) -> int:
        return len(self._callers)


def unix_caller(uid: int, gid: int) -> Principal:
    """A Unix-socket caller: its uid, with its group's grants."""
    return Principal.unix_uid(uid).with_groups(Principal.unix_gid(gid))


class CallerIdentity:
    """Finds the principal of each RPC's caller.

    `unix_peers`: the relay's table when the service listens on a Unix path (every Unix
    peer is then looked up there); `unix`: who a caller on an abstract Unix socket is.
    """

    def __init__(self, unix: Principal | None = None, unix_peers: UnixPeers | None = None) -> None:
        self.unix = unix if unix is not None else Principal.unix_uid(os.getuid())
        self.unix_peers = unix_peers

    def __call__(self, context: grpc.aio.ServicerContext[object, object]) -> Principal:
        """The caller's principal; raises Unauthenticated."""
        pem = list(context.auth_context().get("x509_pem_cert", ()))
        if pem:
            return certificate_principal(bytes(pem[0]))
        peer = context.peer()
        if peer.startswith(("unix:", "unix-abstract:")):
            return self._unix(peer)
        return LOCAL if _is_loopback_peer(peer) else ANONYMOUS

    def _unix(self, peer: str) -> Principal:
        if self.unix_peers is None:
            # gRPC serves the socket itself (an abstract one): "unix:" for everyone.
            return self.unix
        caller = self.unix_peers.lookup(peer)
        if caller is None:
            # Not through the relay (or no longer): nobody the service can name.
            raise Unauthenticated(f"the Unix-socket peer {peer!r} did not come through the relay")
        return unix_caller(*caller)
