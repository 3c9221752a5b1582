"""The SessionStore protocol and the Session record it holds.

A session is one connection's handshake: the engine connection, who owns it,
and when it was last touched. A store enforces ownership (a foreign session is
indistinguishable from a missing one), idle expiry and the session caps.

The unary RPCs reach a store only through its async methods (add, load, save,
delete), so the same servicer code runs on the in-process store, which keeps the
live connection and whose save does nothing, and on a shared store (Redis), which
keeps sealed snapshots and compares versions on save. Streams keep their
sessions in memory on their replica (add/touch/remove on a MemorySessionStore).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from handshaker.tls import ClientConnection, ConnectionState, HandshakeResult, ServerConnection


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class SessionNotFound(LookupError):
    """No session with that id belongs to this caller (unknown, expired, or someone else's)."""


class SessionLimitReached(Exception):
    """Starting another session would pass a cap (the service answers RESOURCE_EXHAUSTED)."""


class SessionConflict(Exception):
    """Another request saved this session first; this step was not kept (ABORTED)."""


class SessionStoreUnavailable(Exception):
    """The store cannot be reached; the message names the store, never a secret (UNAVAILABLE)."""


@dataclass(slots=True, eq=False)
class Session:
    session_id: str
    owner: str
    role: Role
    # None for a record loaded from a shared store once the handshake has ended
    # (its state is in `ended`), or until the servicer restores `snapshot`.
    connection: ClientConnection | ServerConnection | None
    keys_in_response: bool = False
    started_at: float = 0.0
    last_used: float = 0.0
    # A request is advancing this session (awaiting a private-key operation).
    busy: bool = False
    result: HandshakeResult | None = field(default=None, repr=False)
    # What a shared store needs to rebuild the connection on another replica: the
    # start options as sent (serialized proto) and the snapshot it was loaded with.
    options: bytes = field(default=b"", repr=False)
    snapshot: bytes = field(default=b"", repr=False)
    # The record's version for compare-and-set (0: never saved).
    version: int = 0
    ended: ConnectionState | None = None
    # The TLS peer's address as the caller reported it in the start request
    # (HandshakeRequest.peer_address), for the audit log; None: the RPC's metadata.
    peer: str | None = None

    @property
    def state(self) -> ConnectionState:
        if self.connection is not None:
            return self.connection.state
        return self.ended or ConnectionState.HANDSHAKING


class SessionStore(Protocol):
    """Holds the unary API's sessions between RPCs."""

    # True: the store keeps snapshots, not live connections, so sessions must carry
    # their start options and every step must be saved. False (memory): save is a
    # no-op the servicer may skip.
    keeps_snapshots: bool

    async def add(self, session: Session) -> None:
        """Admit a new session; raises SessionLimitReached past a cap. A store may
        check the caps only on the first save (which may raise it too)."""
        ...

    async def load(self, session_id: str, owner: str) -> Session:
        """The caller's session, touched; raises SessionNotFound, SessionStoreUnavailable."""
        ...

    async def save(self, session: Session) -> None:
        """Keep the session's new state; raises SessionConflict when another request
        saved it since it was loaded (the stored session is then left as that one made it)."""
        ...

    async def delete(self, session: Session) -> None:
        """Forget a session (no error when it is already gone)."""
        ...

    async def discard(self, session_id: str, owner: str) -> None:
        """Forget the caller's session without loading it (Abort); SessionNotFound when
        there is none of this owner's, SessionStoreUnavailable when the store is down."""
        ...

    async def close(self) -> None:
        """Release connections to the store."""
        ...
