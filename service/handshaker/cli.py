"""The `handshaker` command: run the service, manage its keystore, and try TLS through it.

Errors on bad input are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .keystore import (
    DEFAULT_KEY_TYPE,
    KEY_TYPES,
    ROLE_NAMES,
    DirectoryKeyStore,
    KeystoreError,
    Policy,
    Principal,
    Role,
    describe,
)
from .tls.config import Credential

PROG = "handshaker"
PKCS11_PIN_ENV = "HANDSHAKER_PKCS11_PIN"

log = logging.getLogger("handshaker.cli")


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def default_keystore_path() -> Path:
    """$HANDSHAKER_KEYSTORE, else $XDG_DATA_HOME/handshaker/keystore, else ~/.local/share/..."""
    configured = os.environ.get("HANDSHAKER_KEYSTORE")
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "handshaker" / "keystore"


def _add_keystore_option(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: given at both `keys` and `keys list` levels, the inner parser's
    # default would otherwise overwrite the outer value.
    parser.add_argument(
        "--keystore",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="keystore directory, or dir:DIR (default: $HANDSHAKER_KEYSTORE, else "
        "$XDG_DATA_HOME/handshaker/keystore, else ~/.local/share/handshaker/keystore); "
        "`serve` also takes memory: and the URIs of keystore plugins",
    )


def _keystore_path(args: argparse.Namespace) -> Path:
    text: str | None = getattr(args, "keystore", None)
    if text is None:
        return default_keystore_path()
    scheme, colon, rest = text.partition(":")
    if colon and scheme == "dir":
        return Path(rest).expanduser()
    if colon and scheme.isalpha() and len(scheme) > 1:
        # Other schemes (memory:, plugins) are for `serve`; `keys` edits a directory.
        raise CommandError(f"--keystore {text}: `keys` commands need a directory (dir:PATH)")
    return Path(text).expanduser()


def _configure_pkcs11(args: argparse.Namespace) -> None:
    module = getattr(args, "pkcs11_module", None)
    if module is None:
        return
    from .keystore import pkcs11  # noqa: PLC0415 (the optional binding, only when asked for)

    pkcs11.configure(pkcs11.Pkcs11Settings(module_path=module, sessions=1))


def _add_pkcs11_module_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pkcs11-module",
        metavar="PATH",
        help="PKCS#11 module for key URIs without module-path (default: SoftHSM2's, if found). "
        f"The PIN comes from the URI's pin-source=file:PATH or ${PKCS11_PIN_ENV}",
    )


# `handshaker keys ...`

# What --allow on generate/import and `keys allow` without --role grant: TLS use in
# both roles, not the keyless operations.
TLS_ROLES = (Role.SERVER, Role.CLIENT)


def _principals(texts: Sequence[str] | None) -> list[Principal]:
    """Parsed before anything is written, so a typo changes nothing."""
    return [Principal.parse(text) for text in texts or ()]


def _grant_all(store: DirectoryKeyStore, name: str, principals: Sequence[Principal]) -> None:
    if not principals:
        return

    def grant(policy: Policy) -> Policy:
        for principal in principals:
            policy = policy.grant_credential(name, principal, TLS_ROLES)
        return policy

    store.edit_policy(grant)
    print(
        f"allowed {', '.join(map(str, principals))} to use {name} (server, client)",
        file=sys.stderr,
    )


def _cmd_keys_generate(args: argparse.Namespace) -> int:
    principals = _principals(args.allow)
    store = DirectoryKeyStore(_keystore_path(args))
    if principals:
        store.read_policy_file()  # a broken policy fails now, before a credential is stored
    where = ""
    if args.token_uri is not None:
        _configure_pkcs11(args)
        credential, key_uri = store.generate_in_token(
            args.name, args.san, args.token_uri, args.key_type, replace=args.replace
        )
        where = f" (key on the token: {key_uri})"
    else:
        credential = store.generate(args.name, args.san, args.key_type, replace=args.replace)
    if args.default:
        store.set_default(args.name)
    info = describe(args.name, credential)
    print(
        f"generated {info.name}: {info.key_type}, {', '.join(info.sans)}, "
        f"valid until {_utc(info.not_after)}, issued by the development CA "
        f"({store.development_ca_path}){where}"
    )
    _grant_all(store, args.name, principals)
    return 0


def _roles(args: argparse.Namespace, default: Sequence[Role]) -> tuple[Role, ...]:
    return tuple(Role(r) for r in args.role) if args.role else tuple(default)


def _cmd_keys_allow(args: argparse.Namespace) -> int:
    principal = Principal.parse(args.principal)
    store = DirectoryKeyStore(_keystore_path(args))
    # The policy file first: reading the keystore would also log a broken one.
    store.read_policy_file()
    if args.trust_bundle:
        if args.role:
            raise CommandError("--role is for credentials; a trust bundle is only used")
        if args.name not in store.trust_bundle_names():
            raise CommandError(f"no trust bundle named {args.name!r} in {store.root}")
        store.edit_policy(lambda policy: policy.grant_trust_bundle(args.name, principal))
        print(f"allowed {principal} to use the trust bundle {args.name}")
        return 0
    if args.name not in store.names():
        raise CommandError(f"no credential named {args.name!r} in {store.root}")
    roles = _roles(args, TLS_ROLES)
    store.edit_policy(lambda policy: policy.grant_credential(args.name, principal, roles))
    print(f"allowed {principal} to use {args.name} ({', '.join(r.value for r in roles)})")
    return 0


def _cmd_keys_deny(args: argparse.Namespace) -> int:
    principal = Principal.parse(args.principal)
    store = DirectoryKeyStore(_keystore_path(args))
    if args.trust_bundle:
        if args.role:
            raise CommandError("--role is for credentials; a trust bundle is only used")
        store.edit_policy(lambda policy: policy.revoke_trust_bundle(args.name, principal))
        print(f"denied {principal} the trust bundle {args.name}")
        return 0
    roles = _roles(args, tuple(Role))
    store.edit_policy(lambda policy: policy.revoke_credential(args.name, principal, roles))
    print(f"denied {principal} {args.name} ({', '.join(r.value for r in roles)})")
    return 0


def _cmd_keys_policy(args: argparse.Namespace) -> int:
    store = DirectoryKeyStore(_keystore_path(args))
    path = store.policy_path
    if not path.exists():
        print(f"no policy at {path}: nobody may use any credential", file=sys.stderr)
        return 0
    # Validated as the service would, so a file that does not validate says why here.
    store.read_policy_file()
    sys.stdout.write(path.read_text(encoding="utf-8"))
    return 0


def _cmd_keys_import(args: argparse.Namespace) -> int:
    principals = _principals(args.allow)
    if (args.key is None) == (args.key_uri is None):
        raise CommandError("give exactly one of --key KEY.pem and --key-uri URI")
    chain_pem = _read_input(args.cert, "certificate chain")
    ca_pem = _read_input(args.ca, "CA bundle") if args.ca is not None else None
    store = DirectoryKeyStore(_keystore_path(args))
    if principals:
        store.read_policy_file()  # a broken policy fails now, before a credential is stored
    if args.key_uri is not None:
        credential = _import_key_uri(args, store, chain_pem, ca_pem)
    else:
        key_pem = _read_input(args.key, "private key")
        credential = store.import_credential(
            args.name, chain_pem, key_pem, ca_pem=ca_pem, replace=args.replace
        )
    if args.default:
        store.set_default(args.name)
    info = describe(args.name, credential)
    print(f"imported {info.name}: {info.key_type}, {', '.join(info.sans) or info.subject}")
    _grant_all(store, args.name, principals)
    return 0


def _import_key_uri(
    args: argparse.Namespace, store: DirectoryKeyStore, chain_pem: bytes, ca_pem: bytes | None
) -> Credential:
    """Checks on the token that the key matches the leaf, then stores the chain and the URI."""
    from .keystore import load_certificates, pkcs11  # noqa: PLC0415 (the optional binding)
    from .keystore.pem import public_key_matches  # noqa: PLC0415

    _configure_pkcs11(args)
    leaf = load_certificates(chain_pem, source=f"{args.name} certificate chain")[0]
    public_key = pkcs11.public_key_on_token(args.key_uri)
    if not public_key_matches(public_key, leaf):
        raise CommandError(
            f"the key {args.key_uri} on the token does not match the leaf certificate "
            f"({leaf.subject.rfc4514_string() or 'empty subject'})"
        )
    return store.import_key_uri(
        args.name, chain_pem, args.key_uri, ca_pem=ca_pem, replace=args.replace
    )


def _cmd_keys_list(args: argparse.Namespace) -> int:
    path = _keystore_path(args)
    if not path.is_dir():
        print(f"no keystore at {path}", file=sys.stderr)
        infos = []
    else:
        infos = DirectoryKeyStore(path).describe_all()
    if args.json:
        rows = [
            {
                "name": i.name,
                "default": i.is_default,
                "key_type": i.key_type,
                "sans": list(i.sans),
                "subject": i.subject,
                "issuer": i.issuer,
                "not_before": _utc(i.not_before),
                "not_after": _utc(i.not_after),
            }
            for i in infos
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not infos:
        if path.is_dir():
            print(f"no credentials in {path}", file=sys.stderr)
        return 0
    table = [("NAME", "KEY TYPE", "NOT AFTER", "SANS")]
    table += [
        (
            f"{i.name} (default)" if i.is_default else i.name,
            i.key_type,
            _utc(i.not_after),
            ",".join(i.sans) or f"(no SANs; subject {i.subject})",
        )
        for i in infos
    ]
    widths = [max(len(row[c]) for row in table) for c in range(3)]
    for row in table:
        cells = [cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)]
        print("  ".join([*cells, row[3]]))
    return 0


def _cmd_keys_ca(args: argparse.Namespace) -> int:
    path = _keystore_path(args)
    if not path.is_dir():
        # A mistyped path must not quietly become a new CA that nobody trusts.
        raise CommandError(
            f"no keystore at {path} (`handshaker serve` or `handshaker keys generate` "
            "creates one; --keystore or $HANDSHAKER_KEYSTORE chooses it)"
        )
    store = DirectoryKeyStore(path)
    existed = store.development_ca_path.exists()
    store.load_or_create_development_ca()
    if not existed:
        print(f"created the development CA at {store.development_ca_path}", file=sys.stderr)
    sys.stdout.write(store.development_ca_path.read_text())
    return 0


def _cmd_keys_rotate_session_key(args: argparse.Namespace) -> int:
    from .keystore.layout import SESSION_STORE_DIR  # noqa: PLC0415
    from .sessions.sealing import Sealer  # noqa: PLC0415 (only this command needs it)

    sealer = Sealer(_keystore_path(args) / SESSION_STORE_DIR / "keys")
    path = sealer.rotate()
    # Running replicas pick the new key up within 10 s; records sealed before still open.
    print(f"new session-store key {sealer.sealing_key_id} at {path}")
    return 0


def _read_input(path: Path, what: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def _utc(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _add_keys_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser(
        "keys", help="manage the keystore's credentials", description="Manage the keystore."
    )
    _add_keystore_option(keys)
    keys_commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    _add_keys_generate(keys_commands)
    _add_keys_import(keys_commands)
    _add_keys_small_commands(keys_commands)
    _add_keys_policy_edits(keys_commands)
    policy = keys_commands.add_parser("policy", help="print the authorization policy (TOML)")
    _add_keystore_option(policy)
    policy.set_defaults(handler=_cmd_keys_policy)
    # grpc loads with the client: only once main() has set GRPC_VERBOSITY.
    from handshaker_client.cli import add_keyless_parsers  # noqa: PLC0415

    add_keyless_parsers(keys_commands)


def _add_keys_generate(keys_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    generate = keys_commands.add_parser(
        "generate",
        help="issue a credential from the development CA",
        description="Issue a credential from the development CA (created on first use).",
    )
    generate.add_argument(
        "name", metavar="NAME", help="the credential's name in the keystore (a folder NAME/)"
    )
    generate.add_argument(
        "--san",
        action="append",
        required=True,
        metavar="TYPE:VALUE",
        help="a subjectAltName: DNS:example.com, IP:127.0.0.1 or URI:spiffe://...; repeatable",
    )
    generate.add_argument(
        "--key-type",
        choices=KEY_TYPES,
        default=DEFAULT_KEY_TYPE,
        help="the private key's type (default %(default)s)",
    )
    generate.add_argument(
        "--in",
        dest="token_uri",
        metavar="PKCS11-URI",
        help="make the key on this PKCS#11 token (pkcs11:token=LABEL[;object=LABEL], RFC 7512), "
        "sensitive and not extractable; key types ecdsa-p256, ecdsa-p384, rsa-2048 "
        "(default: a key file in the keystore)",
    )
    _add_pkcs11_module_option(generate)
    generate.add_argument(
        "--replace", action="store_true", help="replace an existing credential (default: refuse)"
    )
    generate.add_argument(
        "--default",
        action="store_true",
        help="make it the default credential, served when no SNI matches (default: unchanged)",
    )
    _add_allow_option(generate)
    _add_keystore_option(generate)
    generate.set_defaults(handler=_cmd_keys_generate)


def _add_keys_import(keys_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    import_ = keys_commands.add_parser(
        "import",
        help="import a certificate chain and its private key",
        description="Import a PEM certificate chain (leaf first) and the leaf's PEM private key.",
    )
    import_.add_argument(
        "name", metavar="NAME", help="the credential's name in the keystore (a folder NAME/)"
    )
    import_.add_argument(
        "--cert",
        type=Path,
        required=True,
        metavar="CHAIN.pem",
        help="the PEM certificate chain, leaf first; - reads stdin (required)",
    )
    import_.add_argument(
        "--key",
        type=Path,
        metavar="KEY.pem",
        help="the leaf's PEM private key; - reads stdin (this or --key-uri is required)",
    )
    import_.add_argument(
        "--key-uri",
        metavar="PKCS11-URI",
        help="instead of --key: the key is on a token (pkcs11:token=...;object=...); "
        "it is checked against the leaf and its URI is stored as NAME/key-uri",
    )
    _add_pkcs11_module_option(import_)
    import_.add_argument(
        "--ca",
        type=Path,
        metavar="CA.pem",
        help="trust bundle stored with it as ca.crt (default: none)",
    )
    import_.add_argument(
        "--replace", action="store_true", help="replace an existing credential (default: refuse)"
    )
    import_.add_argument(
        "--default",
        action="store_true",
        help="make it the default credential, served when no SNI matches (default: unchanged)",
    )
    _add_allow_option(import_)
    _add_keystore_option(import_)
    import_.set_defaults(handler=_cmd_keys_import)


def _add_keys_small_commands(
    keys_commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """list, rotate-session-key and ca: no arguments but the keystore's."""
    list_ = keys_commands.add_parser("list", help="list the credentials")
    list_.add_argument(
        "--json", action="store_true", help="print JSON instead of a table (default: a table)"
    )
    _add_keystore_option(list_)
    list_.set_defaults(handler=_cmd_keys_list)

    rotate = keys_commands.add_parser(
        "rotate-session-key",
        help="make a new sealing key for the shared session store (older keys still open)",
    )
    _add_keystore_option(rotate)
    rotate.set_defaults(handler=_cmd_keys_rotate_session_key)

    ca = keys_commands.add_parser("ca", help="print the development CA certificate (PEM)")
    _add_keystore_option(ca)
    ca.set_defaults(handler=_cmd_keys_ca)


def _add_keys_policy_edits(
    keys_commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """allow and deny: edit policy.toml."""
    for command, verb, handler in (
        ("allow", "let PRINCIPAL use", _cmd_keys_allow),
        ("deny", "stop PRINCIPAL from using", _cmd_keys_deny),
    ):
        edit = keys_commands.add_parser(
            command,
            help=f"{verb} a credential (or trust bundle): edits policy.toml",
            description=f"{verb.capitalize()} the credential NAME (with --trust-bundle, the "
            "trust bundle NAME). The running service picks the change up within a second.",
        )
        edit.add_argument(
            "name", metavar="NAME", help="the credential (or, with --trust-bundle, the bundle)"
        )
        edit.add_argument(
            "principal",
            metavar="PRINCIPAL",
            help="spiffe://DOMAIN/PATH, dns:NAME, unix:uid=N, unix:gid=N, local or anonymous",
        )
        edit.add_argument(
            "--role",
            action="append",
            choices=ROLE_NAMES,
            help="repeatable (default: "
            + ("server and client" if command == "allow" else "every role")
            + ")",
        )
        edit.add_argument(
            "--trust-bundle",
            action="store_true",
            help="NAME is a trust bundle (default: NAME is a credential)",
        )
        _add_keystore_option(edit)
        edit.set_defaults(handler=handler)


def _add_allow_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow",
        action="append",
        metavar="PRINCIPAL",
        help="let this principal use it, server and client roles (e.g. local, "
        "spiffe://prod/web, dns:web.internal, unix:uid=1000); repeatable. Without it "
        "nobody may use the new credential until `keys allow`",
    )


# ---------------------------------------------------------------------------
# `serve` runs the service; `terminate`, `connect` and `keys sign|verify-chain` are
# callers of it, the Python client's (handshaker_client.cli, also `handshaker-client`).
# ---------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    from .serve_args import serve_command  # noqa: PLC0415 (grpc loads only for serve)

    # serve takes any keystore URI (dir:, memory:, a plugin's); the keys commands a directory.
    uri: str | None = getattr(args, "keystore", None)
    if uri is not None and not uri.startswith("dir:") and ":" in uri.partition("/")[0]:
        return serve_command(args, default_keystore_path(), uri)
    return serve_command(args, _keystore_path(args))


def _add_service_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the handshaker gRPC service")
    from .serve_args import add_serve_arguments  # noqa: PLC0415 (grpc loads only for serve)

    add_serve_arguments(serve)
    _add_keystore_option(serve)
    serve.set_defaults(handler=_cmd_serve)

    from handshaker_client.cli import add_connect_parser, add_terminate_parser  # noqa: PLC0415

    add_terminate_parser(commands)
    add_connect_parser(commands)


# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="TLS handshake-as-a-service: run TLS 1.3 and TLS 1.2 handshakes in a gRPC "
        "service.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log more (default: warnings only)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_service_commands(commands)
    _add_keys_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: parses `argv`, runs one command, returns the exit status."""
    # gRPC's C core writes its own log lines (not JSON, e.g. "E1202 ... add_port.cc ...")
    # to stderr; every failure it reports reaches us as an error we word ourselves. It
    # reads the setting when grpc is first imported, which building the parser does.
    # GRPC_VERBOSITY=ERROR brings its lines back for debugging.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format=f"{PROG}: %(message)s",
        stream=sys.stderr,
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except FileExistsError as exc:
        print(f"{PROG}: error: {exc} (pass --replace to replace it)", file=sys.stderr)
    except (CommandError, KeystoreError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
    except OSError as exc:
        target = f" {exc.filename}" if exc.filename else ""
        print(f"{PROG}: error:{target}: {exc.strerror or exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
