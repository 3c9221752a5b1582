"""The pyOpenSSL peer of the interop tests, run as a script with the project's Python.

pyOpenSSL runs on the OpenSSL that the `cryptography` wheel bundles, which speaks
X25519MLKEM768. pyOpenSSL cannot set the key exchange groups, so this script
writes an OpenSSL config file with `Groups = ...` and points OPENSSL_CONF at it
before OpenSSL is loaded; that is why it runs in its own process.

Same command line and output as the Go peer: the server prints its port, then
one JSON line of negotiated parameters, answers one line with "echo: <line>"
and exits; the client prints the parameters, sends a line and prints the echo.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import tempfile
from typing import Any

_CONF_TEMPLATE = """\
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_section
[ssl_section]
system_default = system_default_section
[system_default_section]
Groups = {groups}
"""


def _report(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def _use_groups(groups: str) -> None:
    # Must happen before the first import of OpenSSL or cryptography.
    handle, path = tempfile.mkstemp(prefix="pyopenssl-peer-", suffix=".cnf")
    with os.fdopen(handle, "w") as conf:
        conf.write(_CONF_TEMPLATE.format(groups=groups.replace(",", ":")))
    os.environ["OPENSSL_CONF"] = path


def _context(args: argparse.Namespace, server: bool) -> Any:
    from OpenSSL import SSL

    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    if args.cert:
        ctx.use_certificate_chain_file(args.cert)
        ctx.use_privatekey_file(args.key)
        ctx.check_privatekey()
    if args.ca:
        ctx.load_verify_locations(args.ca)
    if server:
        if args.clientauth != "none":
            mode = SSL.VERIFY_PEER
            if args.clientauth == "require":
                mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
            ctx.set_verify(mode)
        if args.alpn:
            offered = [p.encode() for p in args.alpn.split(",")]

            def select(_conn: Any, client_protocols: list[bytes]) -> Any:
                for proto in offered:
                    if proto in client_protocols:
                        return proto
                return SSL.NO_OVERLAPPING_PROTOCOLS

            ctx.set_alpn_select_callback(select)
    else:
        ctx.set_verify(SSL.VERIFY_PEER)
        if args.alpn:
            ctx.set_alpn_protos([p.encode() for p in args.alpn.split(",")])
    return ctx


def _negotiated(conn: Any, server: bool) -> dict[str, Any]:
    from cryptography.x509.oid import NameOID

    chain = conn.get_peer_cert_chain(as_cryptography=True) or []
    leaf = conn.get_peer_certificate(as_cryptography=True)
    if server and leaf is not None:
        # A server's view of the peer chain leaves out the client's leaf.
        chain = [leaf, *chain]
    alpn = conn.get_alpn_proto_negotiated()
    return {
        "version": conn.get_protocol_version_name(),
        "cipher_suite": conn.get_cipher_name(),
        "curve": conn.get_group_name(),
        "alpn": alpn.decode() if alpn else "",
        "peer_certificates": [
            c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value for c in chain
        ],
    }


def _check_server_name(conn: Any, server_name: str) -> None:
    # pyOpenSSL verifies the chain but has no hostname check: do it here.
    from cryptography import x509

    leaf = conn.get_peer_certificate(as_cryptography=True)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if server_name not in names.get_values_for_type(x509.DNSName):
        raise RuntimeError(f"certificate is not for {server_name}")


def _read_line(conn: Any) -> bytes:
    from OpenSSL import SSL

    data = b""
    while not data.endswith(b"\n"):
        try:
            chunk = conn.recv(4096)
        except SSL.ZeroReturnError:
            break
        if not chunk:
            break
        data += chunk
    return data


def run_server(args: argparse.Namespace) -> None:
    from OpenSSL import SSL

    ctx = _context(args, server=True)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(args.timeout)
        print(listener.getsockname()[1], flush=True)
        raw, _ = listener.accept()
        # OpenSSL needs a blocking socket; SIGALRM bounds the whole exchange instead.
        raw.settimeout(None)
        conn = SSL.Connection(ctx, raw)
        conn.set_accept_state()
        conn.do_handshake()
        _report(_negotiated(conn, server=True))
        line = _read_line(conn)
        conn.sendall(b"echo: " + line)
        _report({"received": line.decode().rstrip("\n")})
        conn.shutdown()
        raw.close()


def run_client(args: argparse.Namespace) -> None:
    from OpenSSL import SSL

    ctx = _context(args, server=False)
    host, port = args.addr.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=args.timeout)
    raw.settimeout(None)
    conn = SSL.Connection(ctx, raw)
    if args.servername:
        conn.set_tlsext_host_name(args.servername.encode())
    conn.set_connect_state()
    conn.do_handshake()
    if args.servername:
        _check_server_name(conn, args.servername)
    _report(_negotiated(conn, server=False))
    conn.sendall(args.message.encode() + b"\n")
    _report({"echo": _read_line(conn).decode().rstrip("\n")})
    conn.shutdown()
    raw.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-mode", choices=("server", "client"), required=True)
    parser.add_argument("-addr", default="")
    parser.add_argument("-cert", default="")
    parser.add_argument("-key", default="")
    parser.add_argument("-ca", default="")
    parser.add_argument("-servername", default="")
    parser.add_argument("-alpn", default="")
    parser.add_argument("-groups", default="")
    parser.add_argument("-clientauth", choices=("none", "request", "require"), default="none")
    parser.add_argument("-message", default="hello from pyopenssl")
    parser.add_argument("-timeout", type=float, default=20.0)
    args = parser.parse_args()
    if args.groups:
        _use_groups(args.groups)
    signal.alarm(int(args.timeout))
    try:
        if args.mode == "server":
            run_server(args)
        else:
            run_client(args)
    except Exception as error:
        _report({"error": f"{type(error).__name__}: {error}"})
        return 1
    finally:
        conf = os.environ.get("OPENSSL_CONF", "")
        if args.groups and conf:
            os.unlink(conf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
