"""Principals: who a caller is, as a typed (kind, value) pair with one unambiguous string form.

This module only names and parses principals; it knows nothing of gRPC (api/identity.py
finds the caller's principal) and nothing of what a principal may do (policy.py).

    kind      string form              from
    spiffe    spiffe://domain/path     the URI SAN of a client certificate (a SPIFFE ID)
    dns       dns:name.example         else the first DNS SAN of a client certificate
    unix      unix:uid=N, unix:gid=N   a Unix-socket caller: unix:uid= of its uid (from
                                       SO_PEERCRED, see api/identity.py), and a grant to
                                       unix:gid= of its gid applies to it too
    local     local                    loopback TCP without a client certificate: anyone
                                       on this host
    anonymous anonymous                TCP without a client certificate from another host
                                       (only with --insecure or TLS without --tls-client-ca)

Every value is validated for its kind, so no string can pose as another kind: a DNS SAN
"spiffe://test/a" is not a DNS name and is refused, and the string forms of two different
principals never coincide ("dns:" and "unix:" prefix their values, a SPIFFE ID carries its
own scheme, and neither a DNS name nor a SPIFFE ID can contain the other's separators).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum


class PrincipalKind(Enum):
    SPIFFE = "spiffe"
    DNS = "dns"
    UNIX = "unix"
    LOCAL = "local"
    ANONYMOUS = "anonymous"


class InvalidPrincipal(ValueError):
    """A string that is not a principal, or a value that is not valid for its kind."""


# RFC 1123 host names: letters, digits and hyphens, no hyphen at either end of a label.
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# The SPIFFE ID spec (SPIFFE-ID.md section 2): a lowercase trust domain of letters, digits,
# '.', '-' and '_'; path segments of letters, digits, '.', '-' and '_', never "." or "..".
_SPIFFE_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+$")
_SPIFFE_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
_SPIFFE_MAX_LENGTH = 2048
_UNIX = re.compile(r"^(uid|gid)=(0|[1-9][0-9]{0,9})$")


def check_dns_name(name: str) -> str:
    """`name` lowercased, if it is a fully qualified host name (no wildcard, no trailing dot)."""
    lowered = name.lower()
    if not lowered or len(lowered) > 253 or not lowered.isascii():
        raise InvalidPrincipal(f"{name!r} is not a DNS name")
    labels = lowered.split(".")
    if not all(_DNS_LABEL.match(label) for label in labels):
        raise InvalidPrincipal(f"{name!r} is not a DNS name (letters, digits, '-' and '.' only)")
    return lowered


def check_spiffe_id(uri: str) -> str:
    """`uri` if it is a valid SPIFFE ID."""
    if len(uri) > _SPIFFE_MAX_LENGTH or not uri.startswith("spiffe://"):
        raise InvalidPrincipal(f"{uri!r} is not a SPIFFE ID")
    domain, slash, path = uri[len("spiffe://") :].partition("/")
    if not _SPIFFE_TRUST_DOMAIN.match(domain):
        raise InvalidPrincipal(f"{uri!r} is not a SPIFFE ID (bad trust domain)")
    if slash:
        segments = path.split("/")
        if not all(_SPIFFE_SEGMENT.match(s) and s not in (".", "..") for s in segments):
            raise InvalidPrincipal(f"{uri!r} is not a SPIFFE ID (bad path)")
    return uri


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller identity. Build it with the constructors below or parse(), which validate."""

    kind: PrincipalKind
    value: str = ""
    # Principals whose grants apply to this caller too (a Unix caller's group). Not part
    # of the identity: the string form, equality and session ownership ignore them.
    groups: tuple[Principal, ...] = field(default=(), compare=False)

    def grant_names(self) -> tuple[str, ...]:
        """The string forms a policy grant may name to apply to this caller: its own first."""
        if not self.groups:
            return (str(self),)
        return (str(self), *(str(group) for group in self.groups))

    def with_groups(self, *groups: Principal) -> Principal:
        return Principal(self.kind, self.value, tuple(groups))

    def __str__(self) -> str:
        if self.kind is PrincipalKind.SPIFFE:
            return self.value  # a SPIFFE ID is already "spiffe:" + "//domain/path"
        if self.kind in (PrincipalKind.LOCAL, PrincipalKind.ANONYMOUS):
            return str(self.kind.value)
        return f"{self.kind.value}:{self.value}"

    @classmethod
    def spiffe(cls, spiffe_id: str) -> Principal:
        return cls(PrincipalKind.SPIFFE, check_spiffe_id(spiffe_id))

    @classmethod
    def dns(cls, name: str) -> Principal:
        return cls(PrincipalKind.DNS, check_dns_name(name))

    @classmethod
    def unix_uid(cls, uid: int) -> Principal:
        return cls(PrincipalKind.UNIX, f"uid={uid}")

    @classmethod
    def unix_gid(cls, gid: int) -> Principal:
        return cls(PrincipalKind.UNIX, f"gid={gid}")

    @classmethod
    def parse(cls, text: str) -> Principal:
        """The principal whose string form is `text`; raises InvalidPrincipal."""
        if text == "local":
            return LOCAL
        if text == "anonymous":
            return ANONYMOUS
        if text.startswith("spiffe://"):
            return cls.spiffe(text)
        kind, colon, value = text.partition(":")
        if colon and kind == "dns":
            return cls.dns(value) if value == value.lower() else _not_canonical(text)
        if colon and kind == "unix":
            if not _UNIX.match(value):
                raise InvalidPrincipal(f"{text!r}: a Unix principal is unix:uid=N or unix:gid=N")
            return cls(PrincipalKind.UNIX, value)
        raise InvalidPrincipal(
            f"{text!r} is not a principal: use spiffe://DOMAIN/PATH, dns:NAME, unix:uid=N, "
            "unix:gid=N, local or anonymous"
        )


def _not_canonical(text: str) -> Principal:
    # A policy that says dns:Web.Example would never match (names compare lowercased);
    # refusing it says so instead of silently granting nothing.
    raise InvalidPrincipal(f"{text!r}: write DNS names in lowercase")


LOCAL = Principal(PrincipalKind.LOCAL)
ANONYMOUS = Principal(PrincipalKind.ANONYMOUS)
