"""Where handshakes live between RPCs: the SessionStore protocol and its backends."""

from .base import Session, SessionLimitReached, SessionNotFound, SessionStore
from .memory import MemorySessionStore

__all__ = [
    "MemorySessionStore",
    "Session",
    "SessionLimitReached",
    "SessionNotFound",
    "SessionStore",
]
