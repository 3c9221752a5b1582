"""Who is calling: the caller's Principal, which owns its sessions and which the policy grants.

- Mutual TLS on the gRPC channel: the client certificate's SPIFFE ID (its one
  `spiffe://` URI SAN) as a `spiffe` principal, else its first DNS SAN as a `dns`
  principal. The certificate is parsed here from the PEM gRPC hands over, not from
  gRPC's flat `x509_subject_alternative_name` list, which drops each name's type (a
  DNS SAN "spiffe://x" and a URI SAN "spiffe://x" would look alike there). A
  certificate with neither, with a name that is not valid for its type, or with two
  SPIFFE IDs is refused (UNAUTHENTICATED): there is no principal to give it.
- A Unix socket: gRPC Python does not expose the peer's SO_PEERCRED (the peer is
  just "unix:", and grpc core keeps the credentials to itself), so the service
  cannot tell one local uid from another. server.py makes the socket owner-only
  (0600) instead, or owner-and-group (0660) with --unix-socket-group, and every
  caller on it is the principal of whoever can open it: `unix:uid=OWN_UID`, or
  `unix:gid=GROUP` when the group may connect too. An abstract socket has no file
  permissions, so its callers are `local`.
- TCP without a client certificate: `local` when the peer address is loopback (that
  is anyone on this host), else `anonymous`.
"""

from __future__ import annotations

import functools
import ipaddress
import os

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


class CallerIdentity:
    """Finds the principal of each RPC's caller; `unix` is who may open the Unix socket."""

    def __init__(self, unix: Principal | None = None) -> None:
        self.unix = unix if unix is not None else Principal.unix_uid(os.getuid())

    def __call__(self, context: grpc.aio.ServicerContext[object, object]) -> Principal:
        """The caller's principal; raises Unauthenticated."""
        pem = list(context.auth_context().get("x509_pem_cert", ()))
        if pem:
            return certificate_principal(bytes(pem[0]))
        peer = context.peer()
        # grpc reports "unix:" for path and abstract sockets alike; the server, which
        # knows which one it listens on, chose `unix` accordingly.
        if peer.startswith(("unix:", "unix-abstract:")):
            return self.unix
        return LOCAL if _is_loopback_peer(peer) else ANONYMOUS
