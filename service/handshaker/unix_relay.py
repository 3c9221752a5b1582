"""The Unix-socket front: who each local caller is, from SO_PEERCRED, carried to gRPC.

gRPC Python reports every Unix-socket peer as just "unix:" and keeps the peer's
credentials to itself. So `serve --listen unix:PATH` does not let gRPC listen on PATH:
this module does. It creates PATH (0600, or 0660 for --unix-socket-group), reads each
accepted connection's SO_PEERCRED (pid, uid, gid), and relays the connection's bytes
to the real gRPC server, which listens on a private socket in a private directory
(0700, the service user's own, removed at stop). The relay's end of that connection is
bound to a path of its own in the private directory, `c-UID-GID-N`, and gRPC reports
the peer as "unix:" + that path. The relay keeps a table from that peer string to the
caller's uid and gid (UnixPeers); api/identity.py looks the peer up there, and a peer
in the private directory that is not in the table is refused. Nobody but the service
user (and root) can reach the private socket, so nobody else can pose as a relay.

The bound path is unlinked as soon as the connection is made (the socket keeps its
name), so the directory holds only the gRPC socket. Connections are capped in total
and per uid; each direction reads at most RELAY_CHUNK bytes before it waits for the
other side to take them (drain), so a relayed connection buffers a bounded amount.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import socket
import stat
import struct
import tempfile
from collections import Counter
from pathlib import Path

from handshaker.api.identity import UnixPeers

log = logging.getLogger("handshaker.server")

RELAY_CHUNK = 64 * 1024
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class RelayError(OSError):
    """The Unix socket or the private directory cannot be set up."""


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process that connected `sock`, as at its connect()."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


def _bind_public(path: Path, group: int | None) -> socket.socket:
    """PATH as a listening socket, 0600 (or 0660 for `group`), never wider in between."""
    if path.is_socket():
        # A socket left by a process that is gone is replaced; a live one is not.
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            path.unlink()
        except OSError:
            pass
        else:
            raise RelayError(errno.EADDRINUSE, f"{path} is in use (another handshaker serve?)")
        finally:
            probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        listener.bind(str(path))
    except OSError:
        listener.close()
        raise
    finally:
        os.umask(previous)
    try:
        if group is not None:
            os.chown(path, -1, group)
            path.chmod(0o660)
        else:
            path.chmod(0o600)
        listener.listen(512)
        listener.setblocking(False)
    except OSError:
        listener.close()
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return listener


class UnixRelay:
    """PATH in front of a gRPC server on a private socket; the callers' uids in `peers`."""

    def __init__(
        self,
        path: Path,
        *,
        group: int | None = None,
        max_connections: int = 10_000,
        max_connections_per_uid: int = 1_000,
    ) -> None:
        self.path = path
        self.group = group
        self.max_connections = max_connections
        self.max_connections_per_uid = max_connections_per_uid
        # Short, so PATH-independent: a socket path must fit in 108 bytes.
        self.private_dir = Path(tempfile.mkdtemp(prefix="handshaker-"))
        self.private_dir.chmod(0o700)
        self.private_socket = self.private_dir / "grpc.sock"
        self.peers = UnixPeers(str(self.private_dir))
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._per_uid: Counter[int] = Counter()
        self._counter = 0

    @property
    def grpc_address(self) -> str:
        """Where the gRPC server is to listen."""
        return f"unix:{self.private_socket}"

    async def start(self) -> None:
        """Listen on PATH (the gRPC server must already listen on the private socket)."""
        info = self.private_dir.lstat()
        if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) != 0o700:
            raise RelayError(errno.EPERM, f"{self.private_dir} is not the service's own 0700")
        listener = _bind_public(self.path, self.group)
        try:
            self._server = await asyncio.start_unix_server(
                self._accept, sock=listener, limit=RELAY_CHUNK
            )
        except BaseException:
            listener.close()
            raise

    async def close(self) -> None:
        """Stop accepting, end every relayed connection, remove PATH and the private directory."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        shutil.rmtree(self.private_dir, ignore_errors=True)

    def remove_private_dir(self) -> None:
        """For a start that failed before close() could run."""
        shutil.rmtree(self.private_dir, ignore_errors=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        uid = -1
        try:
            sock: socket.socket = writer.get_extra_info("socket")
            _, uid, gid = peer_credentials(sock)
            if (
                len(self._connections) > self.max_connections
                or self._per_uid[uid] >= self.max_connections_per_uid
            ):
                log.warning(
                    "unix connection refused: too many connections",
                    extra={"fields": {"uid": uid, "connections": len(self._connections)}},
                )
                uid = -1
                return
            self._per_uid[uid] += 1
            await self._relay(reader, writer, uid, gid)
        except (OSError, asyncio.IncompleteReadError) as error:
            log.debug("unix relay connection ended", extra={"fields": {"error": str(error)}})
        finally:
            if uid >= 0:
                self._per_uid[uid] -= 1
                if self._per_uid[uid] <= 0:
                    del self._per_uid[uid]
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
            self._connections.discard(task)

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, uid: int, gid: int
    ) -> None:
        self._counter += 1
        client_path = self.private_dir / f"c-{uid}-{gid}-{self._counter}"
        peer = f"unix:{client_path}"
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.setblocking(False)
            upstream.bind(str(client_path))
            # In the table before gRPC can see the connection.
            self.peers.add(peer, uid, gid)
            await asyncio.get_running_loop().sock_connect(upstream, str(self.private_socket))
        except BaseException:
            upstream.close()
            self.peers.remove(peer)
            raise
        finally:
            # The connected socket keeps its name; the file is not needed any more.
            with contextlib.suppress(OSError):
                client_path.unlink()
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(
                sock=upstream, limit=RELAY_CHUNK
            )
        except BaseException:
            upstream.close()
            self.peers.remove(peer)
            raise
        try:
            await _pump_both(reader, writer, up_reader, up_writer)
        finally:
            self.peers.remove(peer)
            up_writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await up_writer.wait_closed()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One direction, until EOF (passed on as a half-close); back-pressure through drain()."""
    while True:
        data = await reader.read(RELAY_CHUNK)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof() and not writer.is_closing():
        writer.write_eof()


async def _pump_both(
    down_reader: asyncio.StreamReader,
    down_writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Both directions until both ended; an error in either ends both."""
    tasks = {
        asyncio.create_task(_pump(down_reader, up_writer)),
        asyncio.create_task(_pump(up_reader, down_writer)),
    }
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [t for t in done if not t.cancelled() and t.exception() is not None]
        if failed:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise failed[0].exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
