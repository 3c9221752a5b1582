"""Where the service listens: addresses checked (no plaintext off loopback unless told),
Unix sockets through the relay, the gRPC port and the plaintext health port bound.

A TCP address that is not loopback needs TLS on the gRPC channel (mutual TLS when a
client CA is given) unless the operator says --insecure explicitly. A Unix socket is
created owner-only (0600), or 0660 for the group given with --unix-socket-group, by
the service's own relay (unix_relay.py), which names each caller by its uid and gid
(SO_PEERCRED) and hands the connection to gRPC on a private socket. Each failure to
bind is a ListenError of one line.
"""

from __future__ import annotations

import grp
import ipaddress
import os
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from handshaker.channel_tls import ReloadingCredentials
from handshaker.keystore import LOCAL, Principal
from handshaker.settings import Settings
from handshaker.unix_relay import UnixRelay


class ListenError(ValueError):
    """The listen address is malformed, or not allowed without TLS."""


def is_loopback(listen: str) -> bool:
    """Whether `listen` (HOST:PORT, [V6]:PORT or unix:PATH) stays on this machine."""
    if listen.startswith(("unix:", "unix-abstract:")):
        return True
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ListenError(f"listen address {listen!r} is not HOST:PORT or unix:PATH")
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise ListenError(f"listen host {host!r} is not an IP address or localhost") from None


def check_listen(settings: Settings) -> None:
    uses_tls = settings.tls_cert is not None
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ListenError("--tls-cert and --tls-key go together")
    if settings.tls_client_ca is not None and not uses_tls:
        raise ListenError("--tls-client-ca needs --tls-cert and --tls-key")
    if settings.unix_socket_group is not None:
        if not settings.listen.startswith("unix:"):
            raise ListenError("--unix-socket-group needs --listen unix:PATH")
        unix_group_id(settings.unix_socket_group)
    if not is_loopback(settings.listen) and not uses_tls and not settings.insecure:
        raise ListenError(
            f"refusing to listen on {settings.listen} without TLS: it is not a loopback address. "
            "Give --tls-cert/--tls-key (and --tls-client-ca for mutual TLS), or --insecure."
        )
    if settings.health_listen is not None:
        if settings.health_listen.startswith(("unix:", "unix-abstract:")):
            raise ListenError("--health-listen takes HOST:PORT (a kubelet probes TCP)")
        is_loopback(settings.health_listen)  # raises on a malformed address


def unix_group_id(group: str) -> int:
    """The gid of a group given by name or number."""
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ListenError(f"--unix-socket-group: no group named {group!r}") from None


def unix_principal(settings: Settings) -> Principal:
    """Who every caller on an abstract Unix socket is (a Unix path names each by its uid)."""
    if settings.listen.startswith("unix-abstract:"):
        return LOCAL  # no file, no mode: anyone on this host (in this network namespace)
    return Principal.unix_uid(os.getuid())


def unix_path(settings: Settings) -> Path | None:
    """The socket file of --listen unix:PATH (None: not a Unix path)."""
    if not settings.listen.startswith("unix:"):
        return None
    return Path(settings.listen.removeprefix("unix:").removeprefix("//"))


def unix_relay(settings: Settings) -> UnixRelay | None:
    path = unix_path(settings)
    if path is None:
        return None
    group = None
    if settings.unix_socket_group is not None:
        group = unix_group_id(settings.unix_socket_group)
    return UnixRelay(
        path,
        group=group,
        max_connections=settings.max_sessions,
        max_connections_per_uid=settings.max_sessions_per_caller,
    )


async def start_relay(relay: UnixRelay) -> None:
    try:
        await relay.start()
    except OSError as error:
        # Taken, or not a member of the group, say: refuse to serve on a socket we could
        # not set up.
        raise ListenError(
            f"cannot listen on unix:{relay.path}: {error.strerror or error}"
        ) from None


def _add_port(
    server: grpc.aio.Server,
    settings: Settings,
    credentials: grpc.ServerCredentials | None,
    relay: UnixRelay | None = None,
) -> int:
    address = relay.grpc_address if relay is not None else settings.listen

    def add() -> int:
        try:
            if credentials is None:
                return server.add_insecure_port(address)
            return server.add_secure_port(address, credentials)
        except RuntimeError:
            # grpc says only "Failed to bind"; the usual cause is a taken address.
            raise ListenError(
                f"cannot listen on {settings.listen}: the address is in use "
                "(another handshaker serve?) or not available on this host"
            ) from None

    if relay is None:
        return add()
    # The private socket, in the relay's 0700 directory, and owner-only itself too.
    previous = os.umask(0o177)
    try:
        return add()
    finally:
        os.umask(previous)


def _server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """The channel's TLS, reloaded when its files change (channel_tls.py); None: plaintext."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    return ReloadingCredentials(
        settings.tls_cert, settings.tls_key, settings.tls_client_ca
    ).credentials()


def listen(server: grpc.aio.Server, settings: Settings, relay: UnixRelay | None = None) -> str:
    """Bind the listener; the address as bound (a port 0 resolved)."""
    port = _add_port(server, settings, _server_credentials(settings), relay)
    if port == 0 and not settings.listen.startswith("unix"):
        raise ListenError(
            f"cannot listen on {settings.listen}: the address is in use "
            "(another handshaker serve?) or not available on this host"
        )
    address = settings.listen
    if not address.startswith("unix") and address.endswith(":0"):
        address = f"{address.rpartition(':')[0]}:{port}"
    return address


def health_listener(
    settings: Settings, health_servicer: Any
) -> tuple[grpc.aio.Server | None, str | None]:
    """The --health-listen server: its own, so the Handshaker service (and reflection)
    are not reachable on its plaintext port; it shares the one health servicer."""
    if settings.health_listen is None:
        return None, None
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1 if settings.reuse_port else 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        port = server.add_insecure_port(settings.health_listen)
    except RuntimeError:
        port = 0
    if port == 0:
        raise ListenError(
            f"cannot listen on {settings.health_listen} (--health-listen): the address is "
            "in use or not available on this host"
        )
    return server, f"{settings.health_listen.rpartition(':')[0]}:{port}"
