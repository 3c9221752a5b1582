"""Redis session store: sealed records with compare-and-set, shared by a fleet of replicas.

Each session is one hash, `<prefix>s:<id>`: `o` the owner, `v` the version and
`r` the sealed record (record.py, sealing.py). Every step loads it, the servicer
restores the connection and advances it, and save writes the new record only if
`v` is still the version it loaded (a Lua script, atomic in Redis): of two
replicas feeding one session at once, exactly one wins and the other's step is
dropped (SessionConflict, ABORTED) with the stored session as the winner left it.

A replica keeps the sessions it saved live (LIVE_SESSIONS of them, least recently
saved dropped first). A step still loads from Redis, passing the version it holds;
when Redis is still at that version the reply leaves the record out and the live
session is used, skipping the unseal and the restore; any other version is
restored from the record, as on any replica. The servicer authorizes a live
session's step as it does a restore's.

Idle expiry is the key's TTL, renewed by every load and save. The caps are
counted in Redis, in sorted sets of live ids scored by their expiry (all
sessions, and one per owner), so they hold across replicas; expired members
are dropped before counting. Times come from Redis (TIME), not the replicas.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections import OrderedDict
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from .base import (
    Session,
    SessionConflict,
    SessionLimitReached,
    SessionNotFound,
    SessionStoreUnavailable,
)
from .record import Record, RecordError
from .sealing import Sealer, SealingError

log = logging.getLogger("handshaker.sessions")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: record, all, owner set. ARGV: ttl ms, session id, owner, the version this replica
# holds live (0: none). Returns {owner, version, record}, {owner, version} when the owner's
# record is still at the version held (the record is not sent), or false; touches only the
# owner's own record.
_LOAD = (
    _NOW
    + """
local rec = redis.call('HMGET', KEYS[1], 'o', 'v', 'r')
if not rec[2] then return false end
if rec[1] == ARGV[3] then
  local ttl = tonumber(ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('ZADD', KEYS[2], 'XX', now + ttl, ARGV[2])
  redis.call('ZADD', KEYS[3], 'XX', now + ttl, ARGV[2])
  redis.call('PEXPIRE', KEYS[3], ttl)
  if tonumber(rec[2]) == tonumber(ARGV[4]) then return {rec[1], rec[2]} end
end
return rec
"""
)

# How many sessions a replica keeps live after saving them (least recently saved dropped
# first): a step that lands on the replica that saved the session last, and finds Redis
# still at that version, skips the unseal and the restore.
LIVE_SESSIONS = 4096

# KEYS: record, all, owner set. ARGV: record, ttl ms, session id, owner, max total, max owner.
# 1 created, -1 total cap, -2 caller cap, 0 the id exists.
_CREATE = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return -1 end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then return -2 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'o', ARGV[4], 'v', 1, 'r', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
redis.call('ZADD', KEYS[3], now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[3], ttl)
return 1
"""
)

# KEYS: record, all, owner set. ARGV: expected version, record, ttl ms, session id, owner.
# 1 saved, 0 someone saved since (or another owner's), -1 gone.
_SAVE = (
    _NOW
    + """
local cur = redis.call('HMGET', KEYS[1], 'o', 'v')
if not cur[2] then return -1 end
if cur[1] ~= ARGV[5] or tonumber(cur[2]) ~= tonumber(ARGV[1]) then return 0 end
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'v', tonumber(ARGV[1]) + 1, 'r', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], 'XX', now + ttl, ARGV[4])
redis.call('ZADD', KEYS[3], 'XX', now + ttl, ARGV[4])
redis.call('PEXPIRE', KEYS[3], ttl)
return 1
"""
)

# KEYS: record, all, owner set. ARGV: session id, owner.
# KEYS: record, all, owner set. ARGV: session id, owner. 1 deleted, 0 none of this owner's
# (another owner's record is left alone, and its id stays in the sets).
_DELETE = """
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""


async def _command(connection: AbstractConnection, command: tuple[Any, ...]) -> Any:
    """Send `command` and read its reply. A connection Redis closed while it sat in the pool
    (a restart, a failover) fails the write: nothing reached Redis, so it is written once
    more, on a new connection. A failure after the write is never repeated."""
    try:
        await connection.send_command(*command)
    except RedisConnectionError:
        await connection.send_command(*command)  # disconnected by the failure: reconnects
    return await connection.read_response()


async def _evalsha(
    connection: AbstractConnection, script: AsyncScript, keys: list[str], args: list[Any]
) -> Any:
    """The script's reply; a Redis that does not have it (restarted, or SCRIPT FLUSH) is
    sent it first, on the same connection."""
    evalsha = ("EVALSHA", script.sha, len(keys), *keys, *args)
    try:
        return await _command(connection, evalsha)
    except NoScriptError:
        await _command(connection, ("SCRIPT", "LOAD", script.script))
        return await _command(connection, evalsha)


def store_name(url: str) -> str:
    """The URL with any user and password left out: safe for logs and error messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def is_redis_url(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme in ("redis", "rediss", "unix")


class RedisSessionStore:
    keeps_snapshots = True

    def __init__(
        self,
        url: str,
        sealer: Sealer,
        *,
        idle_timeout: float = 10.0,
        max_sessions: int = 10_000,
        max_sessions_per_caller: int = 1_000,
        prefix: str = "handshaker:",
        timeout: float = 2.0,
    ) -> None:
        if idle_timeout <= 0 or max_sessions < 1 or max_sessions_per_caller < 1:
            raise ValueError("timeouts and caps must be positive")
        if not is_redis_url(url):
            raise ValueError(
                f"session store {store_name(url)!r} is not redis://, rediss:// or unix://"
            )
        self.name = store_name(url)
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.max_sessions_per_caller = max_sessions_per_caller
        self._ttl_ms = max(1, round(idle_timeout * 1000))
        self._prefix = prefix
        self._sealer = sealer
        # socket_timeout None, not redis-py's default of 5 s, with which it wraps every write
        # in a task of its own and every read in a timeout context (7% of a unary
        # handshake's CPU, measured); each round trip here is bounded as a whole instead
        # (_run, ping, count), by the store's timeout.
        self._timeout = timeout
        self._redis: aioredis.Redis = aioredis.from_url(
            url, socket_timeout=None, socket_connect_timeout=timeout
        )
        # session id -> (when this replica saved it, the session with its connection live),
        # oldest save first.
        self._live: OrderedDict[str, tuple[float, Session]] = OrderedDict()
        self._load = self._redis.register_script(_LOAD)
        self._create = self._redis.register_script(_CREATE)
        self._save = self._redis.register_script(_SAVE)
        self._delete = self._redis.register_script(_DELETE)

    def _keys(self, session_id: str, owner: str) -> list[str]:
        p = self._prefix
        return [f"{p}s:{session_id}", f"{p}all", f"{p}o:{owner}"]

    def _unavailable(self, error: Exception) -> SessionStoreUnavailable:
        # The exception's text can carry the address only; its class says what went wrong.
        log.warning(
            "session store unavailable",
            extra={"fields": {"store": self.name, "error": type(error).__name__}},
        )
        return SessionStoreUnavailable(
            f"session store {self.name} is unavailable ({type(error).__name__})"
        )

    async def ping(self) -> None:
        """Raises SessionStoreUnavailable unless Redis answers (checked before serving)."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.ping()
        except (RedisError, OSError, TimeoutError) as error:
            raise SessionStoreUnavailable(
                f"session store {self.name} is unreachable ({type(error).__name__})"
            ) from None

    async def _run(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """One script's EVALSHA on a connection of the pool, bounded by the store's timeout.

        The command goes straight to a pooled connection (send, read, give back): redis-py's
        execute_command adds retries, timing hooks and the script object's checks, a third
        of each round trip's CPU here. Its retries are not wanted either: a save or create
        whose reply was lost may have run, and running it again would answer a conflict
        for a step that was kept; the caller gets UNAVAILABLE and decides. Only a command
        that could not be written is sent again (_command).
        """
        pool = self._redis.connection_pool
        try:
            async with asyncio.timeout(self._timeout):
                connection = await pool.get_connection()  # type: ignore[no-untyped-call]
                try:
                    return await _evalsha(connection, script, keys, args)
                finally:
                    # An error or a timeout mid-command has disconnected it (redis-py does
                    # so on any exception): it connects again at its next use.
                    await pool.release(connection)
        except (RedisError, OSError, TimeoutError) as error:
            raise self._unavailable(error) from None

    def _sealed(self, session: Session) -> bytes:
        connection = session.connection
        state = session.state
        snapshot = b""
        if connection is not None and state.value == "HANDSHAKING":
            snapshot = connection.snapshot()
        record = Record(
            role=session.role,
            keys_in_response=session.keys_in_response,
            state=state,
            started_wall=time.time() - (time.monotonic() - session.started_at),
            options=session.options,
            snapshot=snapshot,
            result=session.result,
        )
        return self._sealer.seal(record.encode(), session.session_id, session.owner)

    # --- the SessionStore protocol ------------------------------------------------------

    async def add(self, session: Session) -> None:
        """Nothing yet: the first save creates the record, checking the caps in Redis."""
        session.version = 0

    async def load(self, session_id: str, owner: str) -> Session:
        # Taken out while the step runs: a second request for it on this replica loads
        # the record, and compare-and-set picks the winner as between replicas.
        live = None
        entry = self._live.pop(session_id, None)
        if entry is not None:
            if entry[1].owner == owner:
                live = entry[1]
            else:
                self._live[session_id] = entry  # not this caller's to take
        known = live.version if live is not None else 0
        reply = await self._run(
            self._load, self._keys(session_id, owner), [self._ttl_ms, session_id, owner, known]
        )
        if not reply:
            raise SessionNotFound("no such session")
        stored_owner, version, *blob = reply
        if stored_owner is None or stored_owner.decode("utf-8", "replace") != owner:
            raise SessionNotFound("no such session")  # someone else's: as if missing
        if not blob:
            # Still at the version this replica saved: its live session is the record.
            if live is None or int(version) != live.version:
                raise SessionNotFound("no such session")  # not a reply we asked for
            live.last_used = time.monotonic()
            return live
        return self._opened(session_id, owner, int(version), blob[0])

    def _opened(self, session_id: str, owner: str, version: int, blob: bytes | None) -> Session:
        """The session of a sealed record; SessionNotFound when it does not open."""
        try:
            record = Record.decode(self._sealer.open(blob or b"", session_id, owner))
        except (SealingError, RecordError) as error:
            # Tampered with, or copied under another id: never handed out, always logged.
            log.warning(
                "session record refused",
                extra={
                    "fields": {"session": session_id[:8], "caller": owner, "reason": str(error)}
                },
            )
            raise SessionNotFound("no such session") from None
        now = time.monotonic()
        return Session(
            session_id=session_id,
            owner=owner,
            role=record.role,
            connection=None,
            keys_in_response=record.keys_in_response,
            started_at=now - max(0.0, time.time() - record.started_wall),
            last_used=now,
            result=record.result,
            options=record.options,
            snapshot=record.snapshot,
            version=version,
            ended=None if record.snapshot else record.state,
        )

    def _keep_live(self, session: Session) -> None:
        if session.connection is None:
            return  # a record loaded after its handshake ended: nothing to restore
        live = self._live
        now = time.monotonic()
        live[session.session_id] = (now, session)
        live.move_to_end(session.session_id)
        if len(live) > LIVE_SESSIONS:
            live.popitem(last=False)
        # Past the idle timeout its record has expired in Redis: its secrets go from here too.
        while live:
            saved, _ = next(iter(live.values()))
            if now - saved <= self.idle_timeout:
                break
            live.popitem(last=False)

    async def save(self, session: Session) -> None:
        blob = self._sealed(session)
        keys = self._keys(session.session_id, session.owner)
        if session.version == 0:
            created = await self._run(
                self._create,
                keys,
                [
                    blob,
                    self._ttl_ms,
                    session.session_id,
                    session.owner,
                    self.max_sessions,
                    self.max_sessions_per_caller,
                ],
            )
            if created == -1:
                raise SessionLimitReached(f"the service holds {self.max_sessions} sessions")
            if created == -2:
                raise SessionLimitReached(
                    f"this caller holds {self.max_sessions_per_caller} sessions"
                )
            if created != 1:
                raise SessionConflict("a session with this id exists")
            session.version = 1
            self._keep_live(session)
            return
        saved = await self._run(
            self._save,
            keys,
            [session.version, blob, self._ttl_ms, session.session_id, session.owner],
        )
        if saved == -1:
            raise SessionNotFound("no such session")
        if saved != 1:
            raise SessionConflict(
                "another request for this session was saved first; this step was not kept"
            )
        session.version += 1
        self._keep_live(session)

    async def delete(self, session: Session) -> None:
        self._live.pop(session.session_id, None)
        await self._run(
            self._delete,
            self._keys(session.session_id, session.owner),
            [session.session_id, session.owner],
        )

    async def discard(self, session_id: str, owner: str) -> None:
        """One round trip, nothing unsealed: Abort needs no more than the owner's check."""
        entry = self._live.get(session_id)
        if entry is not None and entry[1].owner == owner:
            del self._live[session_id]
        deleted = await self._run(self._delete, self._keys(session_id, owner), [session_id, owner])
        if deleted != 1:
            raise SessionNotFound("no such session")

    async def count(self) -> int:
        """The live sessions in Redis, of the whole fleet (expired ids not counted)."""
        try:
            async with asyncio.timeout(self._timeout):
                seconds, micros = await self._redis.time()
                return int(
                    await self._redis.zcount(
                        f"{self._prefix}all", f"({seconds * 1000 + micros // 1000}", "+inf"
                    )
                )
        except (RedisError, OSError, TimeoutError) as error:
            raise self._unavailable(error) from None

    async def close(self) -> None:
        await self._redis.aclose()
