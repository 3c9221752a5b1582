"""The client's commands: `connect`, `terminate`, `sign` and `verify-chain`, as the
`handshaker-client` console script and as verbs of the service's `handshaker` command
(which adds them under its own names: `handshaker connect`, `handshaker keys sign`, ...).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .commands import connect_command, terminate_command
from .keyless_commands import sign_command, verify_chain_command

PROG = "handshaker-client"

HANDSHAKER_HELP = (
    "the handshaker service's gRPC address (default: $HANDSHAKER_ADDR, else 127.0.0.1:50051)"
)


def add_keyless_parsers(
    keys_commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """`sign` and `verify-chain` (`handshaker keys sign|verify-chain`): KeyOperations and
    CertificateValidator for scripts."""
    sign = keys_commands.add_parser(
        "sign",
        help="sign with a credential's key, through the running service",
        description="Sign the input with the credential NAME's key in the running service "
        "(KeyOperations.Sign; needs a `sign` grant). Prints the signature in base64.",
    )
    sign.add_argument("name", metavar="NAME", nargs="?", help="the credential")
    sign.add_argument(
        "--key-id", metavar="HEX", help="the key by its leaf's subjectKeyIdentifier instead"
    )
    sign.add_argument(
        "--scheme",
        required=True,
        metavar="SCHEME",
        help="a TLS signature scheme by name (ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, "
        "rsa_pkcs1_sha256, ed25519, ...) or number (0x0403)",
    )
    sign.add_argument(
        "--in", dest="input", default="-", metavar="FILE", help="the input (default: stdin)"
    )
    sign.add_argument(
        "--digest",
        action="store_true",
        help="the input is the scheme's hash of the message, not the message",
    )
    sign.add_argument("--out", metavar="FILE", help="write the raw signature here instead")
    sign.add_argument("--handshaker", metavar="ADDR", help=HANDSHAKER_HELP)
    sign.set_defaults(handler=sign_command)

    verify = keys_commands.add_parser(
        "verify-chain",
        help="validate a certificate chain, through the running service",
        description="Validate CHAIN (PEM certificates, leaf first, or one DER certificate) "
        "with the running service's CertificateValidator. Exit 0: valid; 1: invalid (the TLS "
        "alert and the reason are printed).",
    )
    verify.add_argument("chain", metavar="CHAIN", help="the chain file, or - for stdin")
    verify.add_argument(
        "--purpose",
        choices=("server", "client"),
        default="server",
        help="what the leaf is for (default: server)",
    )
    names = verify.add_mutually_exclusive_group()
    names.add_argument("--dns-name", metavar="NAME", help="the DNS name the leaf must have")
    names.add_argument("--ip-address", metavar="IP", help="the IP address the leaf must have")
    names.add_argument("--spiffe-id", metavar="URI", help="the SPIFFE ID the leaf must have")
    verify.add_argument(
        "--trust-bundle",
        metavar="NAME",
        help="the trust bundle (default: default, the keystore's; system: the host's CA store)",
    )
    verify.add_argument("--handshaker", metavar="ADDR", help=HANDSHAKER_HELP)
    verify.set_defaults(handler=verify_chain_command)


TIMEOUT_HELP = (
    "close a connection whose TLS handshake has not completed this long after it began, "
    "with a user_canceled alert where the peer can read one (default %(default)g)"
)


def add_terminate_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`terminate`: a TLS server whose handshakes run in the service."""
    terminate = commands.add_parser(
        "terminate",
        help="a TLS server whose handshakes run in the service",
        description="Accept TLS connections, run each handshake in the service, then proxy "
        "the decrypted stream to --upstream or answer HTTP with a short 200 (--http-hello). "
        "It checks at start that the service runs and that --key may be used.",
    )
    terminate.add_argument(
        "--listen", required=True, metavar="HOST:PORT", help="where to accept TLS (required)"
    )
    terminate.add_argument(
        "--key",
        required=True,
        metavar="NAME",
        help="the keystore credential to serve, which the caller must be granted (required)",
    )
    mode = terminate.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--upstream", metavar="HOST:PORT", help="proxy the decrypted stream to this TCP address"
    )
    mode.add_argument(
        "--http-hello", action="store_true", help="answer every HTTP/1.x request with 200 OK"
    )
    terminate.add_argument(
        "--alpn",
        metavar="LIST",
        help="comma-separated ALPN protocols to accept (default: http/1.1,http/1.0 with "
        "--http-hello, none with --upstream)",
    )
    terminate.add_argument(
        "--client-auth",
        choices=("none", "optional", "required"),
        default="none",
        help="ask for a client certificate, and insist on one (default %(default)s)",
    )
    terminate.add_argument(
        "--client-ca",
        type=Path,
        metavar="FILE",
        help="PEM trust anchors for client certificates (needed with --client-auth)",
    )
    _add_version_arguments(terminate, "accept")
    _add_service_arguments(terminate)
    terminate.set_defaults(handler=terminate_command)


def add_connect_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`connect`: a TLS client whose handshake runs in the service."""
    connect = commands.add_parser(
        "connect",
        help="a TLS client whose handshake runs in the service",
        description="Connect to HOST:PORT with TLS, the handshake run in the service; then "
        "stdin goes to the peer and the peer's data to stdout.",
    )
    connect.add_argument("address", metavar="HOST:PORT", help="the TLS server to connect to")
    connect.add_argument(
        "--server-name",
        metavar="NAME",
        help="the name to send (SNI) and check the certificate against (default: HOST). "
        "A HOST (or NAME) that is an IP address sends no SNI: the certificate's iPAddress "
        "SAN is checked against it (ClientOptions.expected_ip_address)",
    )
    connect.add_argument(
        "--ca-file",
        type=Path,
        metavar="FILE",
        help="PEM trust anchors for the server, instead of --trust-bundle",
    )
    connect.add_argument(
        "--trust-bundle",
        default="system",
        metavar="NAME",
        help="the service's trust bundle to check the server against (default: system, the "
        "host's CA store, as curl uses; `default` is the keystore's, the development CA)",
    )
    connect.add_argument(
        "--alpn", metavar="LIST", help="comma-separated ALPN protocols to offer (default: none)"
    )
    connect.add_argument(
        "--key",
        metavar="NAME",
        help="a keystore credential to present if the server asks (default: none)",
    )
    connect.add_argument(
        "--ign-eof",
        action="store_true",
        help="at the end of input send no close_notify: read until the server closes (many "
        "HTTP servers drop a connection at its close_notify without answering the request "
        "before it); default: close_notify at the end of input, for servers that wait for it",
    )
    _add_version_arguments(connect, "offer")
    _add_service_arguments(connect)
    connect.set_defaults(handler=connect_command)


def _add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the service is, and how long a handshake through it may take."""
    parser.add_argument("--handshaker", metavar="ADDR", help=HANDSHAKER_HELP)
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help=TIMEOUT_HELP,
    )


_VERSIONS = {"1.2": 0x0303, "1.3": 0x0304}


def _tls_version(text: str) -> int:
    try:
        return _VERSIONS[text.removeprefix("TLSv").removeprefix("tls")]
    except KeyError:
        raise argparse.ArgumentTypeError(f"{text!r}: 1.2 or 1.3") from None


def _add_version_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--min-version",
        type=_tls_version,
        default=0,
        metavar="1.2|1.3",
        help=f"the lowest TLS version to {verb} (default: 1.2)",
    )
    parser.add_argument(
        "--max-version",
        type=_tls_version,
        default=0,
        metavar="1.2|1.3",
        help=f"the highest TLS version to {verb} (default: 1.3)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The client of handshaker, TLS handshake-as-a-service: TLS connections "
        "whose handshakes run in a running service, and its keyless calls.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_connect_parser(commands)
    add_terminate_parser(commands)
    add_keyless_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The `handshaker-client` console script: one command, its exit status."""
    # The commands word every failure themselves. (gRPC's C core reads GRPC_VERBOSITY when
    # the package, and so grpc, is imported: before this runs; the client commands host no
    # gRPC server, whose bind errors are what it would log.)
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
