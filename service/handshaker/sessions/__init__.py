"""Where handshakes live between RPCs: the SessionStore protocol and its backends."""

from .base import (
    Role,
    Session,
    SessionConflict,
    SessionLimitReached,
    SessionNotFound,
    SessionStore,
    SessionStoreUnavailable,
)
from .memory import MemorySessionStore

__all__ = [
    "MemorySessionStore",
    "Role",
    "Session",
    "SessionConflict",
    "SessionLimitReached",
    "SessionNotFound",
    "SessionStore",
    "SessionStoreUnavailable",
]
