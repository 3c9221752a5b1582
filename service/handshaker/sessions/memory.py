"""In-process session store: a dict with idle expiry and total and per-caller caps.

Session ids are 128-bit random tokens; lookups also check the owner, so a
guessed or leaked id is useless to anyone else. The live connection stays in
the dict, so save has nothing to do and no snapshot is ever taken; concurrent
requests for one session are refused by the servicer's busy flag instead.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from .base import Session, SessionLimitReached, SessionNotFound


class MemorySessionStore:
    keeps_snapshots = False

    def __init__(
        self,
        *,
        idle_timeout: float = 10.0,
        max_sessions: int = 10_000,
        max_sessions_per_caller: int = 1_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle_timeout <= 0 or max_sessions < 1 or max_sessions_per_caller < 1:
            raise ValueError("timeouts and caps must be positive")
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.max_sessions_per_caller = max_sessions_per_caller
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._per_owner: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._sessions)

    # --- the SessionStore protocol (the unary API) --------------------------------------

    async def load(self, session_id: str, owner: str) -> Session:
        return self.get(session_id, owner)

    async def save(self, session: Session) -> None:
        """Nothing to write: the dict holds the live session."""

    async def delete(self, session: Session) -> None:
        self.remove(session.session_id)

    async def discard(self, session_id: str, owner: str) -> None:
        self.remove(self.get(session_id, owner).session_id)  # get: SessionNotFound if not ours

    async def close(self) -> None:
        self._sessions.clear()
        self._per_owner.clear()

    # --- synchronous access (streams, and the protocol's methods above) -----------------

    def add_now(self, session: Session) -> None:
        if len(self._sessions) >= self.max_sessions:
            self.expire_idle()
            if len(self._sessions) >= self.max_sessions:
                raise SessionLimitReached(f"the service holds {self.max_sessions} sessions")
        if self._per_owner[session.owner] >= self.max_sessions_per_caller:
            self.expire_idle()
            if self._per_owner[session.owner] >= self.max_sessions_per_caller:
                raise SessionLimitReached(
                    f"this caller holds {self.max_sessions_per_caller} sessions"
                )
        now = self._clock()
        session.started_at = session.last_used = now
        self._sessions[session.session_id] = session
        self._per_owner[session.owner] += 1

    async def add(self, session: Session) -> None:
        self.add_now(session)

    def get(self, session_id: str, owner: str) -> Session:
        session = self._sessions.get(session_id)
        now = self._clock()
        if session is None or session.owner != owner:
            raise SessionNotFound("no such session")
        if now - session.last_used > self.idle_timeout:
            self.remove(session_id)
            raise SessionNotFound("no such session")
        session.last_used = now
        return session

    def touch(self, session: Session) -> None:
        session.last_used = self._clock()

    def remove(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            self._per_owner[session.owner] -= 1
            if self._per_owner[session.owner] <= 0:
                del self._per_owner[session.owner]

    def expire_idle(self) -> int:
        deadline = self._clock() - self.idle_timeout
        stale = [sid for sid, s in self._sessions.items() if s.last_used < deadline]
        for session_id in stale:
            self.remove(session_id)
        return len(stale)
