"""The `handshaker connect` and `handshaker terminate` commands, built on this package.

connect: a TLS client whose handshake runs in the service; stdin to the peer,
the peer's data to stdout, the negotiated parameters to stderr.
terminate: a TLS server whose handshakes run in the service (keyless TLS
termination), proxying to an upstream or answering HTTP with a short 200.
Both log names, alerts and parameters, never keys. Every failure a user can cause
is one line on stderr; Ctrl-C ends either command with status 130, no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

import grpc
from handshaker_wire.v1 import handshaker_pb2 as pb

from .aio import AsyncHandshakerClient
from .constants import cipher_suite_name, group_name, version_name
from .errors import (
    ConnectionClosedError,
    HandshakeError,
    HandshakerClientError,
    HandshakerRpcError,
    HandshakeTimeoutError,
    NoClientHelloError,
    TLSProtocolError,
)
from .handshake import DEFAULT_HANDSHAKE_TIMEOUT, READ_SIZE, resolve_address, server_options
from .keys import SessionKeys
from .sockets import TLSSocket, connect
from .streams import TLSStreamReader, TLSStreamWriter, tls_over_streams

CONNECT_TIMEOUT = 10.0
# The exit status of a command ended by Ctrl-C (SIGINT), as a shell reports it.
INTERRUPTED = 130
HTTP_HEAD_LIMIT = 64 * 1024
HTTP_HELLO_BODY = b"hello from handshaker\n"


class UsageError(Exception):
    """Bad command-line input: one line on stderr, exit status 2."""


def _say(command: str, message: str) -> None:
    print(f"handshaker {command}: {message}", file=sys.stderr, flush=True)


def parse_host_port(text: str) -> tuple[str, int]:
    """HOST:PORT, with [IPv6]:PORT for IPv6 literals."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def parse_alpn(text: str | None) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()] if text else []


def _read_pem(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise UsageError(f"cannot read the {what} {path}: {error.strerror or error}") from None


def service_failure(address: str, error: HandshakerRpcError) -> str:
    """One line for an RPC the service refused; UNAVAILABLE says how to start it."""
    if error.code == grpc.StatusCode.UNAVAILABLE:
        return (
            f"the handshaker service at {address} is unavailable (UNAVAILABLE): start it with "
            "`handshaker serve`, or point --handshaker / $HANDSHAKER_ADDR at a running one"
        )
    return f"the handshaker service at {address} refused: {error}"


def _handshake_failure(error: HandshakeError) -> str:
    by = "; the alert came from the peer" if error.sent_by_peer else ""
    return f"handshake failed: {error.alert_name} ({error.alert}): {error.reason}{by}"


def _parameters(keys: SessionKeys) -> list[str]:
    lines = [
        f"protocol: {version_name(keys.version)}",
        f"cipher: {cipher_suite_name(keys.cipher_suite)}",
        f"group: {group_name(keys.group)}",
        f"alpn: {keys.alpn_protocol or '(none)'}",
    ]
    peer = keys.peer
    if peer.subject or peer.chain_der:
        names = [f"DNS:{n}" for n in peer.dns_sans] + [f"IP:{n}" for n in peer.ip_sans]
        names += [f"URI:{n}" for n in peer.uri_sans]
        lines.append(
            f"peer: {peer.subject or '(no subject)'}" + (f" ({', '.join(names)})" if names else "")
        )
    return lines


# `handshaker connect`


def connect_command(args: argparse.Namespace) -> int:
    """Runs `handshaker connect`; returns the exit status."""
    try:
        return _connect(args)
    except KeyboardInterrupt:
        return INTERRUPTED


def _connect(args: argparse.Namespace) -> int:
    try:
        host, port = parse_host_port(args.address)
        ca_pem = _read_pem(args.ca_file, "CA file") if args.ca_file is not None else None
    except UsageError as error:
        _say("connect", f"error: {error}")
        return 2
    address = resolve_address(args.handshaker)
    try:
        tls = connect(
            host,
            port,
            server_name=args.server_name or host,
            alpn=parse_alpn(args.alpn),
            ca_pem=ca_pem,
            # Like curl: the host's CA store, unless --ca-file or --trust-bundle say otherwise.
            trust_bundle=None if ca_pem is not None else args.trust_bundle,
            credential=args.key,
            handshaker=address,
            timeout=CONNECT_TIMEOUT,
            handshake_timeout=args.handshake_timeout,
            min_version=args.min_version,
            max_version=args.max_version,
        )
    except HandshakeError as error:
        _say("connect", _handshake_failure(error))
        return 1
    except HandshakerRpcError as error:
        _say("connect", service_failure(address, error))
        return 1
    except HandshakeTimeoutError as error:
        _say("connect", f"{host}:{port}: {error}; the connection was closed")
        return 1
    except (ConnectionClosedError, OSError) as error:
        _say("connect", f"cannot connect to {host}:{port}: {_os_error(error)}")
        return 1
    tls.settimeout(None)
    for line in _parameters(tls.keys):
        _say("connect", line)
    try:
        return _relay_stdio(tls, half_close=not getattr(args, "ign_eof", False))
    finally:
        tls.close()


def _os_error(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _relay_stdio(tls: TLSSocket, *, half_close: bool = True) -> int:
    """stdin to the peer, the peer's data to stdout, until the peer closes.

    At the end of input a close_notify tells the peer so (half_close), as a server that
    reads until its client is done needs; many HTTP servers instead drop a connection at
    its close_notify without answering what came before, so --ign-eof sends none.
    """

    def pump_stdin() -> None:
        try:
            while data := os.read(sys.stdin.fileno(), READ_SIZE):
                tls.sendall(data)
            if half_close:
                tls.shutdown_write()
        except (OSError, HandshakerClientError):
            # The connection is gone; the receiving side reports why.
            pass

    threading.Thread(target=pump_stdin, name="stdin", daemon=True).start()
    stdout = sys.stdout.buffer
    try:
        while data := tls.recv(READ_SIZE):
            stdout.write(data)
            stdout.flush()
    except TLSProtocolError as error:
        _say("connect", f"connection ended by {error}")
        return 1
    except OSError as error:
        _say("connect", f"connection lost: {_os_error(error)}")
        return 1
    return 0


# `handshaker terminate`


def terminate_command(args: argparse.Namespace) -> int:
    """Runs `handshaker terminate` until SIGINT or SIGTERM; returns the exit status."""
    try:
        host, port = parse_host_port(args.listen)
        upstream = parse_host_port(args.upstream) if args.upstream else None
        client_ca_pem = None
        if args.client_auth != "none":
            if args.client_ca is None:
                raise UsageError(f"--client-auth {args.client_auth} needs --client-ca FILE")
            client_ca_pem = _read_pem(args.client_ca, "client CA file")
        alpn = parse_alpn(args.alpn)
        if not alpn and upstream is None:
            alpn = ["http/1.1", "http/1.0"]
        options = server_options(
            credential=args.key,
            alpn=alpn,
            client_auth=args.client_auth,
            client_ca_pem=client_ca_pem,
            min_version=args.min_version,
            max_version=args.max_version,
        )
    except UsageError as error:
        _say("terminate", f"error: {error}")
        return 2
    terminator = Terminator(
        options,
        upstream,
        resolve_address(args.handshaker),
        handshake_timeout=args.handshake_timeout,
    )
    try:
        return asyncio.run(terminator.run(host, port))
    except StartupError as error:
        _say("terminate", str(error))
        return 1
    except OSError as error:
        _say("terminate", f"cannot listen on {host}:{port}: {_os_error(error)}")
        return 1
    except KeyboardInterrupt:
        return INTERRUPTED


class StartupError(Exception):
    """terminate cannot start: the service or the credential is not usable."""


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    return str(peer)


class Terminator:
    """The terminate server: one handshake in the service per accepted connection."""

    def __init__(
        self,
        options: pb.ServerOptions,
        upstream: tuple[str, int] | None,
        handshaker_address: str,
        *,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.options = options
        self.upstream = upstream
        self.client = AsyncHandshakerClient(handshaker_address)
        self.handshake_timeout = handshake_timeout

    async def check(self) -> None:
        """Refuse to start when the service is down or --key is not ours to use.

        A server-role session with the options is started and aborted at once: the
        service answers NOT_FOUND or PERMISSION_DENIED exactly as it would for every
        connection later, so the check and the real thing cannot disagree.
        """
        try:
            step = await self.client.start_server(self.options, b"")
            await self.client.abort(step.session_id)
        except HandshakerRpcError as error:
            address = self.client.address
            if error.code == grpc.StatusCode.NOT_FOUND:
                raise StartupError(
                    f"--key {self.options.credential}: {error.details} (in the service at "
                    f"{address}; `handshaker keys list` shows its credentials)"
                ) from None
            if error.code == grpc.StatusCode.PERMISSION_DENIED:
                raise StartupError(
                    f"--key {self.options.credential}: {error.details} "
                    "(grant it with `handshaker keys allow NAME PRINCIPAL`)"
                ) from None
            raise StartupError(service_failure(address, error)) from None

    async def run(self, host: str, port: int) -> int:
        """Serve until SIGINT (status 130) or SIGTERM (status 0)."""
        stopped_by: list[int] = []
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            stopped_by.append(signum)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await self.check()
        except BaseException:
            await self.client.close()
            raise
        server = await asyncio.start_server(self.handle, host, port)
        try:
            bound = ", ".join(_format_address(s.getsockname()) for s in server.sockets)
            mode = (
                f"proxying to {self.upstream[0]}:{self.upstream[1]}"
                if self.upstream
                else "answering HTTP with 200 OK"
            )
            _say(
                "terminate",
                f"listening on {bound}, {mode}; handshakes run in {self.client.address}",
            )
            await stop.wait()
        finally:
            server.close()
            await server.wait_closed()
            await self.client.close()
        return INTERRUPTED if stopped_by and stopped_by[0] == signal.SIGINT else 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer_name(writer)
        try:
            # Every accepted connection's handshake shares the client's Multiplex
            # streams: the cheapest way through the service under load.
            tls_reader, tls_writer = await tls_over_streams(
                reader,
                writer,
                self.client,
                self.options,
                api="multiplex",
                limit=HTTP_HEAD_LIMIT,
                handshake_timeout=self.handshake_timeout,
            )
        except HandshakeTimeoutError as error:
            _say("terminate", f"{peer}: {error}; the connection was closed")
            writer.close()
            return
        except HandshakeError as error:
            _say("terminate", f"{peer}: {_handshake_failure(error)}")
            writer.close()
            return
        except HandshakerRpcError as error:
            _say("terminate", f"{peer}: the handshaker service failed: {error}")
            writer.close()
            return
        except NoClientHelloError:
            # A TCP probe (health checks connect and close every few seconds): not news.
            writer.close()
            return
        except (ConnectionClosedError, OSError) as error:
            _say("terminate", f"{peer}: connection closed during the handshake: {_os_error(error)}")
            writer.close()
            return
        keys = tls_writer.keys
        client = f" client={keys.peer.subject}" if keys.peer.chain_der else ""
        _say(
            "terminate",
            f"{peer}: {version_name(keys.version)} {cipher_suite_name(keys.cipher_suite)} "
            f"group={group_name(keys.group)} alpn={keys.alpn_protocol or '-'}{client}",
        )
        try:
            if self.upstream is None:
                await serve_http_hello(tls_reader, tls_writer)
            else:
                await proxy(tls_reader, tls_writer, *self.upstream)
        except UpstreamError as error:
            _say("terminate", f"{peer}: {error}")
        except (TLSProtocolError, OSError):
            # The peer broke off; there is nobody left to tell.
            pass
        finally:
            tls_writer.close()
            await tls_writer.wait_closed()


def _format_address(name: object) -> str:
    if isinstance(name, tuple) and len(name) >= 2:
        host = f"[{name[0]}]" if ":" in str(name[0]) else str(name[0])
        return f"{host}:{name[1]}"
    return str(name)


# HTTP hello


class _BadRequest(Exception):
    pass


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """(method, version, headers) of an HTTP/1.x request head; header names lower-cased."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest("not an HTTP/1.x request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest("a malformed header line")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return parts[0], parts[2], headers


async def _discard_body(reader: TLSStreamReader, headers: dict[str, str]) -> None:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BadRequest("a malformed chunk size") from None
            if size == 0:
                # The trailer section ends with an empty line.
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return
            await reader.readexactly(size + 2)
    length_text = headers.get("content-length")
    if length_text is not None:
        if not length_text.isdigit():
            raise _BadRequest("a malformed Content-Length")
        await reader.readexactly(int(length_text))


def _response(status: str, body: bytes, *, keep_alive: bool, head_only: bool = False) -> bytes:
    connection = "keep-alive" if keep_alive else "close"
    head = (
        f"HTTP/1.1 {status}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {connection}\r\n"
        "\r\n"
    ).encode()
    return head if head_only else head + body


async def serve_http_hello(reader: TLSStreamReader, writer: TLSStreamWriter) -> None:
    """Answer every HTTP/1.x request with a short 200 OK until the client closes."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return
        except asyncio.LimitOverrunError:
            writer.write(_response("431 Request Header Fields Too Large", b"", keep_alive=False))
            await writer.drain()
            return
        # "a server that is expecting to receive and parse a request-line SHOULD
        #  ignore at least one empty line (CRLF) received prior to the request-line"
        head = head.lstrip(b"\r\n")
        try:
            method, version, headers = _parse_head(head)
            await _discard_body(reader, headers)
        except _BadRequest:
            writer.write(_response("400 Bad Request", b"bad request\n", keep_alive=False))
            await writer.drain()
            return
        except asyncio.IncompleteReadError:
            return
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        # HTTP/1.1 connections persist unless closed; HTTP/1.0 ones only on request.
        keep_alive = "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens
        writer.write(
            _response("200 OK", HTTP_HELLO_BODY, keep_alive=keep_alive, head_only=method == "HEAD")
        )
        await writer.drain()
        if not keep_alive:
            return


# Upstream proxy


class UpstreamError(Exception):
    """The upstream could not be reached (terminate logs it and closes the TLS connection)."""


async def proxy(
    reader: TLSStreamReader, writer: TLSStreamWriter, upstream_host: str, upstream_port: int
) -> None:
    """Copy the decrypted stream to the upstream and back; half-closes travel both ways."""
    try:
        up_reader, up_writer = await asyncio.open_connection(upstream_host, upstream_port)
    except OSError as error:
        # asyncio words a refusal as "Connect call failed (...)": say what it means.
        why = (
            "connection refused" if isinstance(error, ConnectionRefusedError) else _os_error(error)
        )
        raise UpstreamError(
            f"the upstream {upstream_host}:{upstream_port} cannot be reached: {why}"
        ) from None

    async def client_to_upstream() -> None:
        while data := await reader.read(READ_SIZE):
            up_writer.write(data)
            await up_writer.drain()
        if up_writer.can_write_eof() and not up_writer.is_closing():
            up_writer.write_eof()

    async def upstream_to_client() -> None:
        while data := await up_reader.read(READ_SIZE):
            writer.write(data)
            await writer.drain()
        if not writer.is_closing():
            writer.write_eof()

    tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        up_writer.close()
        with contextlib.suppress(OSError):
            await up_writer.wait_closed()


__all__ = [
    "connect_command",
    "parse_alpn",
    "parse_host_port",
    "proxy",
    "serve_http_hello",
    "terminate_command",
]
