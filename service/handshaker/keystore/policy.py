"""The authorization policy: which principals may use which credentials and trust bundles.

The policy is a TOML file in the keystore (`policy.toml`), validated whole at load: an
unknown key, a wrong type, a name that cannot be a credential or a string that is not a
principal is an InvalidPolicy naming the file and the place, never a partial policy.

    version = 1

    [credentials."web"]                    # a credential, by its keystore name
    server = ["spiffe://prod/web", "local"]  # may serve with it (server role)
    client = ["dns:batch.internal"]          # may present it as a client certificate
    sign = []                                # KeyOperations.Sign (keyless callers)
    decrypt = []                             # KeyOperations.Decrypt (TLS 1.2 RSA)

    [trust_bundles]
    "partners" = ["spiffe://prod/web"]       # may validate peers against this bundle

Default deny: a credential or trust bundle the policy does not name is used by nobody,
with two exceptions: the trust bundles "default" (what a client that names no bundle
gets) and "system" (the host's CA store) are open to every caller, because they hold
only public anchors and refusing them would fail every plain client-role handshake.
Listing one under [trust_bundles] restricts it.

This module knows nothing of gRPC or of the directory layout; the directory keystore
reloads the file and the service asks `allows_*` per request.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from .base import KeystoreError
from .principals import InvalidPrincipal, Principal

POLICY_FILE = "policy.toml"
POLICY_VERSION = 1
# The bundle a client gets when it names none (layout.DEFAULT_TRUST_BUNDLE), and the
# host's CA store (system_bundle.py): public anchors, open to every caller unless listed.
OPEN_TRUST_BUNDLES = frozenset({"default", "system"})

# The same rule as layout.check_name, repeated here so this module has no layout import.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Role(Enum):
    """What a principal may do with a credential."""

    SERVER = "server"
    CLIENT = "client"
    # Keyless operations (KeyOperations.Sign / Decrypt): separate from the handshake roles,
    # since signing arbitrary bytes with a key is more than serving handshakes with it.
    SIGN = "sign"
    DECRYPT = "decrypt"


ROLE_NAMES = tuple(role.value for role in Role)


class InvalidPolicy(KeystoreError, ValueError):
    """The policy file does not parse or does not follow the schema."""


class AccessDenied(KeystoreError, PermissionError):
    """The policy does not let this principal use that credential or trust bundle."""


@dataclass(frozen=True, slots=True)
class Policy:
    """An immutable policy; edits return a new one. Principals are kept in string form."""

    # credential name -> role -> principals
    credentials: Mapping[str, Mapping[Role, frozenset[str]]] = field(default_factory=dict)
    # trust bundle name -> principals
    trust_bundles: Mapping[str, frozenset[str]] = field(default_factory=dict)

    # Questions the service asks.

    def allows_credential(self, principal: Principal, name: str, role: Role) -> bool:
        roles = self.credentials.get(name)
        if roles is None:
            return False
        granted = roles.get(role, frozenset())
        return any(who in granted for who in principal.grant_names())

    def allows_trust_bundle(self, principal: Principal, name: str) -> bool:
        granted = self.trust_bundles.get(name)
        if granted is None:
            return name in OPEN_TRUST_BUNDLES
        return any(who in granted for who in principal.grant_names())

    def credential_names(self, principal: Principal, role: Role) -> frozenset[str]:
        """The credentials `principal` may use in `role`."""
        names = principal.grant_names()
        return frozenset(
            name
            for name, roles in self.credentials.items()
            if any(who in roles.get(role, ()) for who in names)
        )

    def check_credential(self, principal: Principal, name: str, role: Role) -> None:
        if not self.allows_credential(principal, name, role):
            raise AccessDenied(
                f"{principal} may not use the credential {name!r} in the {role.value} role"
            )

    def check_trust_bundle(self, principal: Principal, name: str) -> None:
        if not self.allows_trust_bundle(principal, name):
            raise AccessDenied(f"{principal} may not use the trust bundle {name!r}")

    # Edits (the CLI's `keys allow|deny`, and --allow on generate/import).

    def grant_credential(self, name: str, principal: Principal, roles: Iterable[Role]) -> Policy:
        return self._edit_credential(name, principal, roles, add=True)

    def revoke_credential(self, name: str, principal: Principal, roles: Iterable[Role]) -> Policy:
        return self._edit_credential(name, principal, roles, add=False)

    def grant_trust_bundle(self, name: str, principal: Principal) -> Policy:
        granted = self.trust_bundles.get(name, frozenset()) | {str(principal)}
        return Policy(self.credentials, {**self.trust_bundles, name: granted})

    def revoke_trust_bundle(self, name: str, principal: Principal) -> Policy:
        if name not in self.trust_bundles:
            return self
        granted = self.trust_bundles[name] - {str(principal)}
        return Policy(self.credentials, {**self.trust_bundles, name: granted})

    def _edit_credential(
        self, name: str, principal: Principal, roles: Iterable[Role], *, add: bool
    ) -> Policy:
        _check_policy_name(name, "credential")
        who = str(principal)
        current = dict(self.credentials.get(name, {}))
        for role in roles:
            principals = current.get(role, frozenset())
            current[role] = principals | {who} if add else principals - {who}
        # Empty grants are dropped: for a credential, absent already means nobody. (A
        # trust bundle's empty list is kept: absent would reopen the "default" bundle.)
        current = {role: principals for role, principals in current.items() if principals}
        credentials = {**self.credentials, name: current}
        if not current:
            del credentials[name]
        return Policy(credentials, self.trust_bundles)

    # The file.

    def to_toml(self) -> str:
        """The policy as TOML that parse_policy reads back to an equal policy."""
        lines = [
            "# handshaker authorization policy (README: Security). Reloaded when it changes;",
            "# a file that does not validate is logged and the last good policy stays.",
            f"version = {POLICY_VERSION}",
        ]
        for name in sorted(self.credentials):
            lines += ["", f"[credentials.{_toml_string(name)}]"]
            roles = self.credentials[name]
            for role in Role:
                if role in roles:
                    lines.append(f"{role.value} = {_toml_array(roles[role])}")
        if self.trust_bundles:
            lines += ["", "[trust_bundles]"]
            for name in sorted(self.trust_bundles):
                lines.append(f"{_toml_string(name)} = {_toml_array(self.trust_bundles[name])}")
        return "\n".join(lines) + "\n"


EMPTY_POLICY = Policy()


def parse_policy(text: str, *, source: str = POLICY_FILE) -> Policy:
    """The policy in `text`; raises InvalidPolicy saying where and why."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidPolicy(f"{source}: not valid TOML: {error}") from None
    _only_keys(document, {"version", "credentials", "trust_bundles"}, source)
    version = document.get("version", POLICY_VERSION)
    if type(version) is not int or version != POLICY_VERSION:
        raise InvalidPolicy(f"{source}: version must be {POLICY_VERSION}")

    credentials: dict[str, dict[Role, frozenset[str]]] = {}
    for name, roles in _table(document, "credentials", source).items():
        where = f"credentials.{name}"
        _check_policy_name(name, "credential", source)
        if not isinstance(roles, dict):
            raise InvalidPolicy(f"{source}: {where} must be a table of roles")
        _only_keys(roles, set(ROLE_NAMES), f"{source}: {where}")
        credentials[name] = {
            Role(role): _principals(principals, f"{source}: {where}.{role}")
            for role, principals in roles.items()
        }
    trust_bundles: dict[str, frozenset[str]] = {}
    for name, principals in _table(document, "trust_bundles", source).items():
        _check_policy_name(name, "trust bundle", source)
        trust_bundles[name] = _principals(principals, f"{source}: trust_bundles.{name}")
    return Policy(credentials, trust_bundles)


def _table(document: dict[str, object], key: str, source: str) -> dict[str, object]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise InvalidPolicy(f"{source}: {key} must be a table")
    return value


def _only_keys(table: dict[str, object], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InvalidPolicy(
            f"{where}: unknown key {unknown[0]!r} (expected one of {', '.join(sorted(allowed))})"
        )


def _principals(value: object, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidPolicy(f"{where} must be a list of principal strings")
    principals = []
    for index, text in enumerate(value):
        try:
            principals.append(str(Principal.parse(text)))
        except InvalidPrincipal as error:
            raise InvalidPolicy(f"{where}[{index}]: {error}") from None
    return frozenset(principals)


def _check_policy_name(name: str, what: str, source: str = POLICY_FILE) -> None:
    if not _NAME.match(name):
        raise InvalidPolicy(f"{source}: {name!r} is not a valid {what} name")


def _toml_string(text: str) -> str:
    # Names and principals are validated to printable ASCII without quotes or
    # backslashes, but escape anyway so the writer never produces a different document.
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def _toml_array(values: Iterable[str]) -> str:
    return "[" + ", ".join(_toml_string(v) for v in sorted(values)) + "]"
