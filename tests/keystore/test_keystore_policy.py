"""Principals and the policy file: typed names, a validated schema, hot reload that keeps the last
good policy, and the policy a fresh keystore starts with."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from handshaker.keystore import (
    EMPTY_POLICY,
    LOCAL,
    DirectoryKeyStore,
    InvalidPolicy,
    InvalidPrincipal,
    Policy,
    Principal,
    PrincipalKind,
    Role,
    parse_policy,
)
from keystore_helpers import IssueLeaf, WriteCredential

# --- principals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("spiffe://prod.example/ns/web", PrincipalKind.SPIFFE, "spiffe://prod.example/ns/web"),
        ("spiffe://prod.example", PrincipalKind.SPIFFE, "spiffe://prod.example"),
        ("dns:web.internal", PrincipalKind.DNS, "web.internal"),
        ("unix:uid=1000", PrincipalKind.UNIX, "uid=1000"),
        ("unix:gid=0", PrincipalKind.UNIX, "gid=0"),
        ("local", PrincipalKind.LOCAL, ""),
        ("anonymous", PrincipalKind.ANONYMOUS, ""),
    ],
)
def test_a_principal_string_parses_to_its_kind_and_back(
    text: str, kind: PrincipalKind, value: str
) -> None:
    principal = Principal.parse(text)
    assert (principal.kind, principal.value) == (kind, value)
    assert str(principal) == text


@pytest.mark.parametrize(
    "text",
    [
        "web.internal",  # no kind
        "dns:spiffe://test/a",  # a DNS name cannot hold a URI
        "dns:Web.Internal",  # not canonical: would never match
        "dns:*.internal",  # a wildcard is not one caller
        "dns:-bad.internal",
        "dns:a..b",
        "dns:",
        "spiffe://UPPER/x",  # trust domains are lowercase
        "spiffe://test/a/../b",
        "spiffe://test/a/",
        "spiffe://test/a?x=1",
        "unix:uid=-1",
        "unix:uid=01",
        "unix:user=root",
        "x509:alice.test",  # the old untyped form
        "LOCAL",
        "",
    ],
)
def test_a_string_that_is_no_principal_is_refused(text: str) -> None:
    with pytest.raises(InvalidPrincipal):
        Principal.parse(text)


def test_a_dns_principal_is_lowercased_when_built_from_a_certificate_name() -> None:
    assert str(Principal.dns("Web.Internal")) == "dns:web.internal"


def test_no_two_kinds_share_a_string_form() -> None:
    forms = {
        str(Principal.spiffe("spiffe://test/a")),
        str(Principal.dns("test.a")),
        str(Principal.unix_uid(1)),
        str(Principal.unix_gid(1)),
        str(LOCAL),
    }
    assert len(forms) == 5


# --- the schema -----------------------------------------------------------------------------

GOOD = """
version = 1

[credentials."web"]
server = ["spiffe://prod/web", "local"]
client = ["dns:batch.internal"]
sign = []

[trust_bundles]
"partners" = ["spiffe://prod/web"]
"""


def test_a_policy_grants_exactly_what_it_names() -> None:
    policy = parse_policy(GOOD)
    web = Principal.spiffe("spiffe://prod/web")
    batch = Principal.dns("batch.internal")
    assert policy.allows_credential(web, "web", Role.SERVER)
    assert policy.allows_credential(LOCAL, "web", Role.SERVER)
    assert not policy.allows_credential(web, "web", Role.CLIENT)
    assert policy.allows_credential(batch, "web", Role.CLIENT)
    assert not policy.allows_credential(batch, "web", Role.SIGN)
    assert not policy.allows_credential(LOCAL, "other", Role.SERVER)  # default deny
    assert policy.credential_names(LOCAL, Role.SERVER) == {"web"}
    assert policy.allows_trust_bundle(web, "partners")
    assert not policy.allows_trust_bundle(LOCAL, "partners")
    assert not policy.allows_trust_bundle(LOCAL, "dev-ca")  # not named: nobody


def test_the_default_trust_bundle_is_open_until_the_policy_names_it() -> None:
    assert EMPTY_POLICY.allows_trust_bundle(LOCAL, "default")
    restricted = parse_policy('[trust_bundles]\n"default" = ["dns:a.internal"]\n')
    assert not restricted.allows_trust_bundle(LOCAL, "default")
    assert restricted.allows_trust_bundle(Principal.dns("a.internal"), "default")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = 1\nallow = []\n", "unknown key 'allow'"),
        ("version = 2\n", "version must be 1"),
        ('version = "1"\n', "version must be 1"),
        ('[credentials."web"]\nservre = ["local"]\n', "credentials.web: unknown key 'servre'"),
        ('[credentials."web"]\nserver = "local"\n', "credentials.web.server must be a list"),
        ('[credentials."web"]\nserver = [1]\n', "credentials.web.server must be a list"),
        ('[credentials."web"]\nserver = ["x509:alice"]\n', "credentials.web.server[0]"),
        (
            '[credentials."web"]\nserver = ["local", "dns:a_b"]\n',
            "server[1]: 'a_b' is not a DNS name",
        ),
        ('credentials = ["web"]\n', "credentials must be a table"),
        ('[credentials]\nweb = ["local"]\n', "credentials.web must be a table of roles"),
        ('[credentials."../etc"]\nserver = []\n', "'../etc' is not a valid credential name"),
        ('[trust_bundles]\n"p" = "local"\n', "trust_bundles.p must be a list"),
        ("[credentials\n", "not valid TOML"),
    ],
)
def test_a_policy_that_breaks_the_schema_is_refused_saying_where(text: str, message: str) -> None:
    with pytest.raises(InvalidPolicy) as raised:
        parse_policy(text, source="/ks/policy.toml")
    assert str(raised.value).startswith("/ks/policy.toml: ")
    assert message in str(raised.value)


def test_the_written_policy_reads_back_equal() -> None:
    policy = parse_policy(GOOD)
    edited = policy.grant_credential("a.b-c_d", Principal.unix_uid(7), (Role.DECRYPT,))
    assert parse_policy(edited.to_toml()) == edited


def test_revoking_every_role_removes_the_credential_entry() -> None:
    policy = EMPTY_POLICY.grant_credential("web", LOCAL, (Role.SERVER, Role.CLIENT))
    assert policy.revoke_credential("web", LOCAL, tuple(Role)) == EMPTY_POLICY


def test_revoking_a_trust_bundle_keeps_its_empty_entry_so_default_stays_closed() -> None:
    policy = EMPTY_POLICY.grant_trust_bundle("default", LOCAL).revoke_trust_bundle("default", LOCAL)
    assert not policy.allows_trust_bundle(LOCAL, "default")


# --- in the directory keystore ----------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_fresh_keystore_lets_local_and_our_uid_use_the_development_pieces_only(
    tmp_path: Path,
) -> None:
    store = DirectoryKeyStore(tmp_path / "ks")
    store.ensure_development_ca()
    store.generate("web", ["DNS:web.test"])
    policy = store.policy()
    for principal in (LOCAL, Principal.unix_uid(os.getuid())):
        assert policy.allows_credential(principal, "localhost", Role.SERVER)
        assert policy.allows_credential(principal, "localhost", Role.CLIENT)
        assert policy.allows_trust_bundle(principal, "dev-ca")
        assert not policy.allows_credential(principal, "web", Role.SERVER)
        assert not policy.allows_credential(principal, "localhost", Role.SIGN)
    assert not policy.allows_credential(
        Principal.unix_uid(os.getuid() + 1), "localhost", Role.SERVER
    )


def test_a_keystore_without_a_policy_file_denies_everything(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> None:
    write(tmp_path, "a", issue_leaf("DNS:a.example"))
    store = DirectoryKeyStore(tmp_path)
    assert store.policy() == EMPTY_POLICY


def test_a_changed_policy_is_reloaded_and_a_broken_one_keeps_the_last_good(
    tmp_path: Path,
    issue_leaf: IssueLeaf,
    write: WriteCredential,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write(tmp_path, "a", issue_leaf("DNS:a.example"))
    store = DirectoryKeyStore(tmp_path, reload_interval=0)
    store.write_policy(EMPTY_POLICY.grant_credential("a", LOCAL, (Role.SERVER,)))
    assert store.policy().allows_credential(LOCAL, "a", Role.SERVER)

    with caplog.at_level(logging.WARNING, logger="handshaker.keystore"):
        (tmp_path / "policy.toml").write_text('[credentials."a"]\nserver = ["nobody"]\n')
        assert store.policy().allows_credential(LOCAL, "a", Role.SERVER)
        store.policy()  # a second look logs nothing new
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "policy.toml" in warnings[0] and "'nobody' is not a principal" in warnings[0]
    assert "keeping the previous version" in warnings[0]

    (tmp_path / "policy.toml").write_text('[credentials."a"]\nclient = ["local"]\n')
    assert not store.policy().allows_credential(LOCAL, "a", Role.SERVER)
    assert store.policy().allows_credential(LOCAL, "a", Role.CLIENT)


def test_deleting_the_policy_file_denies_everything_again(tmp_path: Path) -> None:
    clock = FakeClock()
    store = DirectoryKeyStore(tmp_path, reload_interval=1.0, clock=clock)
    store.write_policy(EMPTY_POLICY.grant_credential("a", LOCAL, (Role.SERVER,)))
    assert store.policy() != EMPTY_POLICY
    (tmp_path / "policy.toml").unlink()
    clock.now += 2
    assert store.policy() == EMPTY_POLICY


def test_an_edit_refuses_to_overwrite_a_policy_that_does_not_validate(tmp_path: Path) -> None:
    store = DirectoryKeyStore(tmp_path)
    (tmp_path / "policy.toml").write_text("version = 7\n")

    def grant(policy: Policy) -> Policy:
        return policy.grant_credential("a", LOCAL, (Role.SERVER,))

    with pytest.raises(InvalidPolicy):
        store.edit_policy(grant)
    assert (tmp_path / "policy.toml").read_text() == "version = 7\n"


def test_sni_selection_skips_credentials_the_filter_refuses(
    tmp_path: Path, issue_leaf: IssueLeaf, write: WriteCredential
) -> None:
    write(tmp_path, "a", issue_leaf("DNS:a.example"))
    write(tmp_path, "b", issue_leaf("DNS:b.example"))
    (tmp_path / "default").write_text("b\n")
    store = DirectoryKeyStore(tmp_path)
    assert store.select("a.example", (), lambda name: name != "a") is store.credential("b")
    assert store.select("a.example", (), lambda name: False) is None
