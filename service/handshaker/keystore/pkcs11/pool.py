"""The PKCS#11 module, initialised once for the process with OS locking, and one pool of
logged-in sessions (and threads) per token: failures named, a token that went away
recovered (rate-limited), the health of every pool."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from ..keyops import KeyOperationError
from .uri import Pkcs11Error, Pkcs11Settings, Pkcs11Uri, module_path_for, read_pin, settings


# PKCS#11 v2.40 section 3.6: CK_C_INITIALIZE_ARGS.
class _InitializeArgs(ctypes.Structure):
    _fields_ = (
        ("CreateMutex", ctypes.c_void_p),
        ("DestroyMutex", ctypes.c_void_p),
        ("LockMutex", ctypes.c_void_p),
        ("UnlockMutex", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("pReserved", ctypes.c_void_p),
    )


_CKF_OS_LOCKING_OK = 0x2


_CKR_OK = 0


_CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191


class _Gate:
    """Operations pass together; re-initialising the module waits until none is inside.

    C_Finalize while another thread is inside C_Sign is undefined behaviour.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._inside = 0
        self._closing = False

    @contextlib.contextmanager
    def operation(self) -> Iterator[None]:
        with self._changed:
            while self._closing:
                self._changed.wait()
            self._inside += 1
        try:
            yield
        finally:
            with self._changed:
                self._inside -= 1
                self._changed.notify_all()

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        with self._changed:
            while self._closing:
                self._changed.wait()
            self._closing = True
            while self._inside:
                self._changed.wait()
        try:
            yield
        finally:
            with self._changed:
                self._closing = False
                self._changed.notify_all()


@dataclass(slots=True)
class _Module:
    lib: Any  # pkcs11._pkcs11.lib
    # Held around every call when the module could not be told to lock for itself.
    serial_lock: threading.Lock | None
    # When the module was last finalised and initialised again (_recover).
    recovered_at: float = 0.0
    gate: _Gate = field(default_factory=_Gate)


_modules: dict[str, _Module] = {}


_modules_lock = threading.Lock()


def binding() -> Any:
    """The python-pkcs11 package; a Pkcs11Error saying what to install when it is missing."""
    try:
        import pkcs11  # noqa: PLC0415 (an optional extra: only PKCS#11 users install it)
    except ImportError:
        raise Pkcs11Error(
            "the PKCS#11 backend needs python-pkcs11: pip install 'handshaker[pkcs11]'"
        ) from None
    return pkcs11


def load_module(path: str) -> _Module:
    with _modules_lock:
        module = _modules.get(path)
        if module is not None:
            return module
        binding()
        from pkcs11 import _pkcs11  # noqa: PLC0415

        try:
            dll = ctypes.CDLL(path)
        except OSError as error:
            raise Pkcs11Error(f"cannot load the PKCS#11 module {path}: {error}") from None
        args = _InitializeArgs(None, None, None, None, _CKF_OS_LOCKING_OK, None)
        rv = dll.C_Initialize(ctypes.byref(args))
        if rv in (_CKR_OK, _CKR_CRYPTOKI_ALREADY_INITIALIZED):

            class _Initialized(_pkcs11.lib):
                """The binding's library object over a module we already initialised."""

                def initialize(self) -> None:
                    pass

            lib: Any = _Initialized(path)
            module = _Module(lib, None)
        else:
            # The module cannot lock for itself (CKR_CANT_LOCK): let the binding initialise
            # it its way and never call it from two threads at once.
            import pkcs11  # noqa: PLC0415

            try:
                lib = pkcs11.lib(path)
            except pkcs11.PKCS11Error as error:
                raise Pkcs11Error(
                    f"cannot initialise the PKCS#11 module {path}: {_name(error)}"
                ) from None
            module = _Module(lib, threading.Lock())
        _modules[path] = module
        return module


def _name(error: BaseException) -> str:
    """A PKCS#11 failure as its CKR name: the binding's messages are often empty."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


_FATAL_TO_SESSIONS = (
    "DeviceRemoved",
    "DeviceError",
    "TokenNotPresent",
    "TokenNotRecognised",
    "SessionClosed",
    "SessionHandleInvalid",
    "UserNotLoggedIn",
    "GeneralError",
    "ObjectHandleInvalid",
    "KeyHandleInvalid",
)


# Failures that say the token is gone or broken, not just this session: after them the
# module is initialised again, which is how most modules (SoftHSM2 among them) notice a
# token that was put back.
_TOKEN_GONE = frozenset(
    {
        "DeviceRemoved",
        "DeviceError",
        "TokenNotPresent",
        "TokenNotRecognised",
        "GeneralError",
        "NoSuchToken",
        "SlotIDInvalid",
    }
)


# How often a module may be re-initialised: it drops every session of every pool on it.
RECOVERY_INTERVAL = 5.0


def _token_gone(error: BaseException) -> bool:
    name = type(error).__name__
    return name in _TOKEN_GONE or (name == "PKCS11Error" and "not initialized" in str(error))


def _recover(path: str) -> None:
    """Finalises and initialises the module again, at most every RECOVERY_INTERVAL seconds."""
    with _modules_lock:
        module = _modules.get(path)
        now = time.monotonic()
        if module is None or now - module.recovered_at < RECOVERY_INTERVAL:
            return
        module.recovered_at = now
    with module.gate.alone():
        for pool in pools():
            if pool.module_path == path:
                pool.invalidate()
        if module.serial_lock is not None:
            with module.serial_lock, contextlib.suppress(Exception):
                module.lib.reinitialize()
            return
        dll = ctypes.CDLL(path)
        dll.C_Finalize(None)
        args = _InitializeArgs(None, None, None, None, _CKF_OS_LOCKING_OK, None)
        dll.C_Initialize(ctypes.byref(args))


def failure_reason(error: BaseException) -> str:
    kind = type(error).__name__
    return {
        "PinIncorrect": "the token refused the PIN (PinIncorrect)",
        "PinLocked": "the token's PIN is locked (PinLocked)",
        "TokenNotPresent": "the token is not present (TokenNotPresent)",
        "DeviceRemoved": "the token was removed (DeviceRemoved)",
        "NoSuchKey": "no such key on the token (NoSuchKey)",
        "NoSuchToken": "no such token (NoSuchToken)",
    }.get(kind, f"the token failed ({_name(error)})")


T = TypeVar("T")


class KeyProblem(KeyOperationError):
    """This key cannot be used (not on the token, two match): the token itself is fine."""


class TokenGone(KeyOperationError):
    """The token is absent or broken: initialise the module again before the next try."""


class TokenPool:
    """Logged-in sessions on one token, each used by one worker thread at a time.

    PKCS#11 logs in per application, not per session: the first session logs in with
    the PIN and the others share that login. Opening is lazy and redone after a
    failure that leaves the sessions unusable (a removed or reset token).
    """

    def __init__(self, uri: Pkcs11Uri, config: Pkcs11Settings) -> None:
        self.uri = replace(uri, object=None, id=None, object_type=None)
        self.backend = uri.backend
        self._config = config
        self.module_path = module_path_for(uri, config)
        self._size = config.sessions
        self._lock = threading.Lock()
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._opened: list[Any] = []
        self._generation = 0
        self._executor = ThreadPoolExecutor(
            max_workers=self._size, thread_name_prefix=f"pkcs11-{uri.token or 'token'}"
        )
        # What the last operation found: None while fine (health reads it).
        self.failure: str | None = None
        # A digest of the PIN the token refused, so it is not tried again and again.
        self._refused_pin: bytes | None = None

    # Runs on the worker threads.

    def _open_all(self) -> None:
        module = load_module(module_path_for(self.uri, self._config))
        pkcs11 = binding()
        pin = read_pin(self.uri)
        fingerprint = hashlib.sha256(pin.encode()).digest()
        if fingerprint == self._refused_pin:
            # Trying a refused PIN again counts towards the token's lockout: wait for a new one.
            raise KeyOperationError(
                self.backend, "the token refused this PIN (PinIncorrect); not trying it again"
            )
        try:
            kwargs: dict[str, Any] = {"token_label": self.uri.token}
            if self.uri.serial is not None:
                kwargs["token_serial"] = self.uri.serial.encode()
            token = module.lib.get_token(**kwargs)
            sessions: list[Any] = []
            for _ in range(self._size):
                try:
                    sessions.append(token.open(user_pin=pin) if not sessions else token.open())
                except pkcs11.UserAlreadyLoggedIn:
                    # Someone in this process (another pool, the CLI) already logged in.
                    sessions.append(token.open())
        except pkcs11.PKCS11Error as error:
            for opened in locals().get("sessions", []):
                with contextlib.suppress(Exception):
                    opened.close()
            if isinstance(error, pkcs11.PinIncorrect | pkcs11.PinLocked):
                self._refused_pin = fingerprint
            kind = TokenGone if _token_gone(error) else KeyOperationError
            raise kind(self.backend, failure_reason(error)) from None
        finally:
            del pin
        self._opened = sessions
        for session in sessions:
            self._idle.put((self._generation, session))

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """A logged-in session for this thread; blocking (run it on the pool's executor)."""
        generation, session = self._take()
        try:
            yield session
        except Exception as error:
            pkcs11 = binding()
            if isinstance(error, pkcs11.PKCS11Error) and type(error).__name__ in _FATAL_TO_SESSIONS:
                self._reset(generation)
            else:
                self._give_back(generation, session)
            raise
        else:
            self._give_back(generation, session)

    def _take(self) -> tuple[int, Any]:
        while True:
            with self._lock:
                if not self._opened:
                    self._open_all()
                current = self._generation
            try:
                # Not forever: a reset while we wait empties the pool, and only a taker
                # (this loop) opens it again.
                generation, session = self._idle.get(timeout=0.25)
            except queue.Empty:
                continue
            if generation == current:
                return generation, session
            # A session of a pool that was reset meanwhile: closed already, skip it.

    def _give_back(self, generation: int, session: Any) -> None:
        with self._lock:
            if generation == self._generation:
                self._idle.put((generation, session))
                return
        with contextlib.suppress(Exception):
            session.close()

    def invalidate(self) -> None:
        """Drops every session (the module is about to be initialised again)."""
        with self._lock:
            generation = self._generation
        self._reset(generation)

    def _reset(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # another worker already reset this generation
            self._generation += 1
            old, self._opened = self._opened, []
            # Drain what is idle; busy sessions of the old generation are closed on return.
            while True:
                try:
                    self._idle.get_nowait()
                except queue.Empty:
                    break
        for session in old:
            with contextlib.suppress(Exception):
                session.close()

    def call(self, operation: Callable[[Any], T]) -> T:
        """Runs `operation(session)` here, blocking; PKCS#11 failures become KeyOperationError.

        A failure of the token (absent, PIN refused, broken) is remembered in `failure`
        for the health status until an operation succeeds; a key that is not on the
        token is that credential's problem, not the token's, and is not.
        """
        pkcs11 = binding()
        try:
            module = load_module(self.module_path)
            with module.gate.operation(), self.session() as session:
                lock = module.serial_lock
                with lock if lock is not None else contextlib.nullcontext():
                    result = operation(session)
        except KeyProblem:
            raise
        except TokenGone as error:
            self.failure = error.reason
            _recover(self.module_path)
            raise
        except KeyOperationError as error:
            self.failure = error.reason
            raise
        except pkcs11.PKCS11Error as error:
            self.failure = failure_reason(error)
            if _token_gone(error):
                _recover(self.module_path)
            raise KeyOperationError(self.backend, self.failure) from None
        except Pkcs11Error as error:
            self.failure = str(error)
            raise KeyOperationError(self.backend, str(error)) from None
        self.failure = None
        return result

    async def run(self, operation: Callable[[Any], T]) -> T:
        """`call` on the pool's own threads: the event loop goes on meanwhile."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.call, operation)

    def close(self) -> None:
        with self._lock:
            old, self._opened = self._opened, []
            self._generation += 1
        for session in old:
            with contextlib.suppress(Exception):
                session.close()
        self._executor.shutdown(wait=False)


_pools: dict[tuple[str, str | None, str | None, str | None], TokenPool] = {}


_pools_lock = threading.Lock()


def pool_for(uri: Pkcs11Uri, config: Pkcs11Settings | None = None) -> TokenPool:
    """The one pool of sessions for the token `uri` names (shared by all its keys)."""
    config = config or settings()
    key = (module_path_for(uri, config), uri.token, uri.serial, uri.pin_source)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = TokenPool(uri, config)
        return pool


def probe(session: Any) -> None:
    """A cheap call that needs the token: is it there, are we logged in, are its keys?"""
    if not has_private_keys(session):
        raise TokenGone(_backend_of(session), "the token shows no private keys (removed or reset?)")


def has_private_keys(session: Any) -> bool:
    pkcs11 = binding()
    attrs = {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY}
    return next(iter(session.get_objects(attrs)), None) is not None


def _backend_of(session: Any) -> str:
    return f"pkcs11:token={session.token.label}"


def pools() -> list[TokenPool]:
    with _pools_lock:
        return list(_pools.values())


def unusable() -> dict[str, str]:
    """Backends whose last operation failed, with why (for the health status)."""
    return {pool.backend: pool.failure for pool in pools() if pool.failure is not None}


def close_all() -> None:
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()
