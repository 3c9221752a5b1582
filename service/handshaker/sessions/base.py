"""The SessionStore protocol and the Session record it holds.

A session is one connection's handshake: the engine connection, who owns it,
and when it was last touched. A store enforces ownership (a foreign session is
indistinguishable from a missing one), idle expiry and the session caps.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from handshaker.tls import ClientConnection, HandshakeResult, ServerConnection


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class SessionNotFound(LookupError):
    """No session with that id belongs to this caller (unknown, expired, or someone else's)."""


class SessionLimitReached(Exception):
    """Starting another session would pass a cap (the service answers RESOURCE_EXHAUSTED)."""


@dataclass(slots=True, eq=False)
class Session:
    session_id: str
    owner: str
    role: Role
    connection: ClientConnection | ServerConnection
    keys_in_response: bool = False
    started_at: float = 0.0
    last_used: float = 0.0
    # A request is advancing this session (awaiting a private-key operation).
    busy: bool = False
    result: HandshakeResult | None = field(default=None, repr=False)


class SessionStore(Protocol):
    """Holds sessions between RPCs."""

    def add(self, session: Session) -> None:
        """Store a new session; raises SessionLimitReached past a cap."""
        ...

    def get(self, session_id: str, owner: str) -> Session:
        """The caller's live session, touched; raises SessionNotFound."""
        ...

    def touch(self, session: Session) -> None:
        """Mark a session as used now (a stream's session is never looked up by id)."""
        ...

    def remove(self, session_id: str) -> None:
        """Forget a session (no error when it is already gone)."""
        ...

    def expire_idle(self) -> int:
        """Drop sessions idle past the timeout; returns how many were dropped."""
        ...

    def __len__(self) -> int: ...
