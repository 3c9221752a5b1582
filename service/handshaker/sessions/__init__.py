"""Where in-flight and finished handshakes live between RPCs: the SessionStore protocol and backends."""

from .base import Session, SessionLimitReached, SessionNotFound, SessionStore
from .memory import MemorySessionStore

__all__ = [
    "MemorySessionStore",
    "Session",
    "SessionLimitReached",
    "SessionNotFound",
    "SessionStore",
]
