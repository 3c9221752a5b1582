"""The PKCS#11 backend: private keys in a token (an HSM, SoftHSM2), named by RFC 7512 URIs.

    pkcs11:token=prod;object=web?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin

A key is found by its token label and its object label and/or CKA_ID. The module is
the URI's `module-path`, else the `--pkcs11-module` setting, else the SoftHSM2
module found on this system. The user PIN comes from the URI's `pin-source`
(a file) or from $HANDSHAKER_PKCS11_PIN; never from a command-line argument
(`pin-value` is refused) and never into a message or a log line.

Keys are used through `Pkcs11Key`, an AsyncKey: each operation runs the blocking
PKCS#11 call in a dedicated thread pool with one logged-in session per worker
(`sessions`, the `--pkcs11-sessions` flag), so the event loop never waits on a
token. Signatures: ECDSA (CKM_ECDSA over the hash computed here, r||s re-encoded
as DER), RSASSA-PSS (CKM_RSA_PKCS_PSS, MGF1 and salt length = the hash's) and
RSASSA-PKCS1-v1_5 (CKM_RSA_PKCS over a DigestInfo, for TLS 1.2). A token that is
absent, refuses the PIN or fails is a KeyOperationError naming
"pkcs11:token=LABEL"; the pool is reopened on the next operation, and after a
token failure the module is initialised again (rate-limited), which is how a
module notices a token that was put back. A refused PIN is not tried again
until the PIN source says something else: tokens lock after a few wrong tries.

python-pkcs11 calls C_Initialize(NULL), which tells a module that nobody will call
it from two threads at once (SoftHSM2 then turns its own locks off). We initialise
the module first with CKF_OS_LOCKING_OK, so the sessions of the pool may really work
in parallel; a module that refuses OS locking gets one lock around every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import os
import queue
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import PublicKeyAlgorithmOID

from handshaker.tls.sigschemes import ECDSA_SCHEME_FOR_CURVE, SCHEMES, SchemeFamily, schemes_of
from handshaker.tls.tls12 import rsa_kex

from .base import InvalidCredential, KeystoreError
from .keyops import AsyncKey, KeyOperationError

PIN_ENV = "HANDSHAKER_PKCS11_PIN"
SCHEME = "pkcs11"
DEFAULT_SESSIONS = 4

# Where Debian, Ubuntu, Fedora and source builds put the SoftHSM2 module.
SOFTHSM2_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)

# The key types `keys generate --in pkcs11:` makes on a token.
TOKEN_KEY_TYPES: tuple[str, ...] = ("ecdsa-p256", "ecdsa-p384", "rsa-2048")

# RFC 7512 section 2.3: the path attributes and query attributes we understand.
_PATH_ATTRIBUTES = frozenset(
    {
        "token",
        "object",
        "id",
        "type",
        "serial",
        "manufacturer",
        "model",
        "library-manufacturer",
        "library-description",
        "library-version",
        "slot-description",
        "slot-manufacturer",
        "slot-id",
    }
)
_QUERY_ATTRIBUTES = frozenset({"module-path", "module-name", "pin-source", "pin-value"})

_CURVE_OIDS = {"secp256r1": "1.2.840.10045.3.1.7", "secp384r1": "1.3.132.0.34"}

# RFC 8017 section 9.2 note 1: the DER DigestInfo prefixes for EMSA-PKCS1-v1_5.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


class Pkcs11Error(KeystoreError):
    """A PKCS#11 URI, module, token, PIN or key problem; messages name the token, never the PIN."""


@dataclass(frozen=True, slots=True)
class Pkcs11Uri:
    """An RFC 7512 PKCS#11 URI, as far as finding one key needs it."""

    token: str | None = None
    object: str | None = None
    id: bytes | None = None
    serial: str | None = None
    object_type: str | None = None
    module_path: str | None = None
    pin_source: str | None = None

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """Parses `pkcs11:path-attributes[?query-attributes]`; raises Pkcs11Error."""
        scheme, colon, rest = text.strip().partition(":")
        if not colon or scheme.lower() != SCHEME:
            raise Pkcs11Error(
                f"not a PKCS#11 URI (RFC 7512): it must start with 'pkcs11:': {text!r}"
            )
        path, _, query = rest.partition("?")
        values: dict[str, str | bytes] = {}
        for part, separator, known in (
            (path, ";", _PATH_ATTRIBUTES),
            (query, "&", _QUERY_ATTRIBUTES),
        ):
            for item in filter(None, part.split(separator)):
                name, equals, value = item.partition("=")
                name = name.strip().lower()
                if not equals:
                    raise Pkcs11Error(f"PKCS#11 URI attribute {name!r} has no value")
                if name == "pin-value":
                    # A PIN in the URI ends up in shell history, `ps` and the keystore folder.
                    raise Pkcs11Error(
                        "pin-value is not accepted: give the PIN in a file (pin-source=file:PATH) "
                        f"or in ${PIN_ENV}"
                    )
                if name not in known:
                    # RFC 7512: an unknown path attribute must not match anything we would pick.
                    raise Pkcs11Error(f"PKCS#11 URI attribute {name!r} is not supported")
                if name in values:
                    raise Pkcs11Error(f"PKCS#11 URI attribute {name!r} is given twice")
                # The id is binary; every other attribute is UTF-8 text.
                values[name] = (
                    urllib.parse.unquote_to_bytes(value)
                    if name == "id"
                    else urllib.parse.unquote(value, errors="strict")
                )

        def text_of(name: str) -> str | None:
            value = values.get(name)
            return value if isinstance(value, str) else None

        raw_id = values.get("id")
        uri = cls(
            token=text_of("token"),
            object=text_of("object"),
            id=raw_id if isinstance(raw_id, bytes) else None,
            serial=text_of("serial"),
            object_type=text_of("type"),
            module_path=text_of("module-path"),
            pin_source=text_of("pin-source"),
        )
        if uri.object_type not in (None, "private"):
            raise Pkcs11Error(
                f"the PKCS#11 URI names a {uri.object_type!r} object, not a private key"
            )
        return uri

    def __str__(self) -> str:
        def quote(value: str | bytes) -> str:
            # The id is binary: every byte percent-encoded, as RFC 7512's examples do.
            if isinstance(value, bytes):
                return "".join(f"%{byte:02X}" for byte in value)
            return urllib.parse.quote(value, safe="")

        path = [
            f"{name}={quote(value)}"
            for name, value in (
                ("token", self.token),
                ("serial", self.serial),
                ("object", self.object),
                ("id", self.id),
                ("type", self.object_type),
            )
            if value is not None
        ]
        query = [
            f"{name}={urllib.parse.quote(value, safe='/:')}"
            for name, value in (("module-path", self.module_path), ("pin-source", self.pin_source))
            if value is not None
        ]
        return f"pkcs11:{';'.join(path)}" + (f"?{'&'.join(query)}" if query else "")

    @property
    def backend(self) -> str:
        """How failures name this token: never with the PIN source or the module."""
        return f"pkcs11:token={self.token}" if self.token else "pkcs11"

    @property
    def names_a_key(self) -> bool:
        return self.object is not None or self.id is not None


@dataclass(frozen=True, slots=True)
class Pkcs11Settings:
    """Process-wide defaults: the module (--pkcs11-module), the pool size (--pkcs11-sessions)."""

    module_path: str | None = None
    sessions: int = DEFAULT_SESSIONS


_settings = Pkcs11Settings()


def configure(settings: Pkcs11Settings) -> None:
    """Sets the defaults for URIs that name no module, and the session pool size."""
    global _settings  # noqa: PLW0603 (one PKCS#11 world per process: C_Initialize is global)
    if settings.sessions < 1:
        raise ValueError("--pkcs11-sessions must be at least 1")
    _settings = settings


def settings() -> Pkcs11Settings:
    return _settings


def default_module_path() -> str | None:
    """The SoftHSM2 module found on this system, or None."""
    return next((path for path in SOFTHSM2_MODULES if Path(path).is_file()), None)


def module_path_for(uri: Pkcs11Uri, config: Pkcs11Settings | None = None) -> str:
    config = config or _settings
    path = uri.module_path or config.module_path or default_module_path()
    if path is None:
        raise Pkcs11Error(
            "no PKCS#11 module: give module-path in the URI or --pkcs11-module "
            "(for SoftHSM2: apt-get install softhsm2)"
        )
    return path


def read_pin(uri: Pkcs11Uri) -> str:
    """The user PIN from the URI's pin-source file, else $HANDSHAKER_PKCS11_PIN."""
    if uri.pin_source is not None:
        source = uri.pin_source.removeprefix("file:")
        if source.startswith("//"):
            source = urllib.parse.urlparse(uri.pin_source).path
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise Pkcs11Error(f"{uri.backend}: cannot read the PIN file {source}") from None
        # Only the first line: `echo PIN > file` leaves a newline that is not part of the PIN.
        return text.partition("\n")[0].removesuffix("\r")
    pin = os.environ.get(PIN_ENV)
    if pin is None:
        raise Pkcs11Error(
            f"{uri.backend}: no PIN: set ${PIN_ENV} or pin-source=file:PATH in the URI"
        )
    return pin


# Modules: loaded and initialised once per process.


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


def _load_module(path: str) -> _Module:
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


def _reason(error: BaseException) -> str:
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


class _KeyProblem(KeyOperationError):
    """This key cannot be used (not on the token, two match): the token itself is fine."""


class _TokenGone(KeyOperationError):
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
        module = _load_module(module_path_for(self.uri, self._config))
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
            kind = _TokenGone if _token_gone(error) else KeyOperationError
            raise kind(self.backend, _reason(error)) from None
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
            module = _load_module(self.module_path)
            with module.gate.operation(), self.session() as session:
                lock = module.serial_lock
                with lock if lock is not None else contextlib.nullcontext():
                    result = operation(session)
        except _KeyProblem:
            raise
        except _TokenGone as error:
            self.failure = error.reason
            _recover(self.module_path)
            raise
        except KeyOperationError as error:
            self.failure = error.reason
            raise
        except pkcs11.PKCS11Error as error:
            self.failure = _reason(error)
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
    config = config or _settings
    key = (module_path_for(uri, config), uri.token, uri.serial, uri.pin_source)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = TokenPool(uri, config)
        return pool


def probe(session: Any) -> None:
    """A cheap call that needs the token: is it there, are we logged in, are its keys?"""
    if not _has_private_keys(session):
        raise _TokenGone(
            _backend_of(session), "the token shows no private keys (removed or reset?)"
        )


def _has_private_keys(session: Any) -> bool:
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


# Keys.


def _find_private_key(session: Any, uri: Pkcs11Uri) -> Any:
    pkcs11 = binding()
    attrs: dict[Any, Any] = {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY}
    if uri.object is not None:
        attrs[pkcs11.Attribute.LABEL] = uri.object
    if uri.id is not None:
        attrs[pkcs11.Attribute.ID] = uri.id
    found = list(session.get_objects(attrs))
    if not found:
        if not _has_private_keys(session):
            # Not one key where ours was: the token went away (a module may show an empty
            # token rather than none), not this credential's key.
            raise _TokenGone(uri.backend, "the token shows no private keys (removed or reset?)")
        raise _KeyProblem(uri.backend, f"no private key {_key_label(uri)} on the token")
    if len(found) > 1:
        raise _KeyProblem(uri.backend, f"{len(found)} private keys match {_key_label(uri)}")
    return found[0]


def _find_public_key(session: Any, uri: Pkcs11Uri) -> Any:
    pkcs11 = binding()
    attrs: dict[Any, Any] = {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PUBLIC_KEY}
    if uri.object is not None:
        attrs[pkcs11.Attribute.LABEL] = uri.object
    if uri.id is not None:
        attrs[pkcs11.Attribute.ID] = uri.id
    found = list(session.get_objects(attrs))
    if len(found) != 1:
        raise KeyOperationError(
            uri.backend, f"no single public key {_key_label(uri)} on the token to check against"
        )
    return found[0]


def _key_label(uri: Pkcs11Uri) -> str:
    parts = []
    if uri.object is not None:
        parts.append(f"object={uri.object!r}")
    if uri.id is not None:
        parts.append(f"id={uri.id.hex()}")
    return " ".join(parts) or "(unnamed)"


def public_key_of(public: Any) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The `cryptography` public key of a token public-key object."""
    pkcs11 = binding()
    from pkcs11.util.ec import encode_ec_public_key  # noqa: PLC0415

    if public.key_type == pkcs11.KeyType.RSA:
        modulus = int.from_bytes(public[pkcs11.Attribute.MODULUS], "big")
        exponent = int.from_bytes(public[pkcs11.Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    if public.key_type != pkcs11.KeyType.EC:
        raise Pkcs11Error(f"unsupported key type on the token: {public.key_type!r}")
    key = serialization.load_der_public_key(encode_ec_public_key(public))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Pkcs11Error("unsupported key type on the token")
    return key


def schemes_for_certificate(certificate: x509.Certificate) -> tuple[int, ...]:
    """The signature schemes a token key can make for this leaf, TLS 1.3 ones first.

    ECDSA: the curve's one scheme. RSA: RSASSA-PSS (rsae, or pss for an RSASSA-PSS
    certificate, RFC 8446 section 4.2.3), then PKCS#1 v1.5 for TLS 1.2 (the TLS 1.3
    engine filters those out of its CertificateVerify).
    """
    public_key = certificate.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        scheme = ECDSA_SCHEME_FOR_CURVE.get(public_key.curve.name)
        return (scheme,) if scheme is not None else ()
    if isinstance(public_key, rsa.RSAPublicKey):
        pss_pss = certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSASSA_PSS
        pss = schemes_of(SchemeFamily.RSA_PSS_PSS if pss_pss else SchemeFamily.RSA_PSS_RSAE)
        return pss if pss_pss else (*pss, *schemes_of(SchemeFamily.RSA_PKCS1, tls13_only=False))
    return ()


class Pkcs11Key(AsyncKey):
    """A private key on a token; its operations run on the token pool's threads."""

    __slots__ = ("_cache", "_pool", "_uri")

    def __init__(
        self, uri: Pkcs11Uri, schemes: Sequence[int], pool: TokenPool, *, decrypts: bool = False
    ) -> None:
        super().__init__(
            str(replace(uri, pin_source=None, module_path=None)),
            schemes,
            backend=uri.backend,
            decrypts=decrypts,
        )
        self._uri = uri
        self._pool = pool
        self._cache: dict[int, Any] = {}

    def _private_key(self, session: Any) -> Any:
        # id(session) is stable while the session lives; a reset pool opens new ones.
        cached = self._cache.get(id(session))
        if cached is not None and cached[0] is session:
            return cached[1]
        key = _find_private_key(session, self._uri)
        if len(self._cache) > 64:
            # Entries of sessions closed by pool resets: start again rather than grow.
            self._cache.clear()
        self._cache[id(session)] = (session, key)
        return key

    async def sign(self, scheme: int, message: bytes) -> bytes:
        params = SCHEMES.get(scheme)
        if params is None or params.hash is None or scheme not in self.signature_schemes:
            raise KeyOperationError(
                self.backend, f"this key cannot sign with scheme 0x{scheme:04x}"
            )
        digest = hashes.Hash(params.hash)
        digest.update(message)
        return await self._sign_hashed(scheme, digest.finalize())

    async def sign_digest(self, scheme: int, digest: bytes) -> bytes:
        params = SCHEMES.get(scheme)
        # Any ECDSA scheme's hash with the token key's curve (see AsyncKey.sign_digest).
        ecdsa_key = any(SCHEMES[s].family is SchemeFamily.ECDSA for s in self.signature_schemes)
        if (
            params is None
            or params.hash is None
            or not (
                scheme in self.signature_schemes
                or (ecdsa_key and params.family is SchemeFamily.ECDSA)
            )
        ):
            raise KeyOperationError(
                self.backend, f"this key cannot sign with scheme 0x{scheme:04x}"
            )
        if len(digest) != params.hash.digest_size:
            size = params.hash.digest_size
            raise KeyOperationError(
                self.backend, f"a digest for scheme 0x{scheme:04x} is {size} bytes"
            )
        return await self._sign_hashed(scheme, digest)

    async def _sign_hashed(self, scheme: int, hashed: bytes) -> bytes:
        params = SCHEMES[scheme]
        assert params.hash is not None
        pkcs11 = binding()
        algorithm = params.hash
        family = params.family

        def sign(session: Any) -> bytes:
            key = self._private_key(session)
            if family is SchemeFamily.ECDSA:
                raw = key.sign(hashed, mechanism=pkcs11.Mechanism.ECDSA)
                half = len(raw) // 2
                return encode_dss_signature(
                    int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
                )
            if family in (SchemeFamily.RSA_PSS_RSAE, SchemeFamily.RSA_PSS_PSS):
                hash_mechanism, mgf = _PSS[algorithm.name]
                return bytes(
                    key.sign(
                        hashed,
                        mechanism=pkcs11.Mechanism.RSA_PKCS_PSS,
                        mechanism_param=(
                            getattr(pkcs11.Mechanism, hash_mechanism),
                            getattr(pkcs11.MGF, mgf),
                            algorithm.digest_size,
                        ),
                    )
                )
            if family is SchemeFamily.RSA_PKCS1:
                return bytes(
                    key.sign(
                        _DIGEST_INFO[algorithm.name] + hashed, mechanism=pkcs11.Mechanism.RSA_PKCS
                    )
                )
            raise _KeyProblem(self.backend, f"scheme 0x{scheme:04x} is not supported")

        return await self._pool.run(sign)

    async def decrypt(self, ciphertext: bytes) -> bytes:
        """CKM_RSA_PKCS decryption (the TLS 1.2 RSA key exchange, opt-in).

        A ciphertext the token calls invalid (bad padding, wrong length) is b"", not an
        error: the engine turns it into a random premaster secret like every other bad
        one (tls/tls12/rsa_kex.py), so the peer sees the same alert. A token's own timing
        for that answer is the token's; a token that implements implicit rejection
        (returning a synthetic plaintext) leaves nothing to tell apart at all.
        """
        if not self.decrypts:
            raise KeyOperationError(self.backend, "this key may not decrypt")
        pkcs11 = binding()
        # What tokens answer a bad block with: the standard codes, and CKR_GENERAL_ERROR,
        # which SoftHSM2 returns for a bad PKCS#1 padding. Any of them as an error would be
        # a padding oracle (internal_error for bad, bad_record_mac for good), so all three
        # are the empty answer; a token that is really broken fails the next sign instead.
        invalid = (
            pkcs11.exceptions.EncryptedDataInvalid,
            pkcs11.exceptions.EncryptedDataLenRange,
            pkcs11.exceptions.GeneralError,
        )

        def decrypt(session: Any) -> bytes:
            key = self._private_key(session)
            try:
                return bytes(key.decrypt(ciphertext, mechanism=pkcs11.Mechanism.RSA_PKCS))
            except invalid:
                return b""

        return await self._pool.run(decrypt)


_PSS = {
    "sha256": ("SHA256", "SHA256"),
    "sha384": ("SHA384", "SHA384"),
    "sha512": ("SHA512", "SHA512"),
}


def key_for_certificate(
    uri_text: str, certificate: x509.Certificate, *, config: Pkcs11Settings | None = None
) -> Pkcs11Key:
    """An AsyncKey for the token key `uri_text` whose public half is in `certificate`.

    Touches no token: the schemes come from the certificate, so a keystore reload never
    waits on an HSM. `keys import --key-uri` checks the match on the token once.
    """
    uri = Pkcs11Uri.parse(uri_text)
    if not uri.token or not uri.names_a_key:
        raise InvalidCredential(f"{uri_text!r}: a key URI needs token= and object= or id=")
    schemes = schemes_for_certificate(certificate)
    if not schemes:
        raise InvalidCredential(f"{uri.backend}: the certificate's key type cannot sign TLS 1.3")
    # An RSA key may decrypt (the opt-in TLS 1.2 RSA key exchange) when its certificate
    # allows key encipherment; keys generated here have CKA_DECRYPT for RSA.
    public = certificate.public_key()
    decrypts = isinstance(public, rsa.RSAPublicKey) and rsa_kex.allows_key_encipherment(certificate)
    return Pkcs11Key(uri, schemes, pool_for(uri, config), decrypts=decrypts)


# Administration: blocking calls for the CLI (`keys generate --in`, `keys import --key-uri`).


def _admin_session(uri: Pkcs11Uri, config: Pkcs11Settings | None, *, rw: bool) -> Any:
    module = _load_module(module_path_for(uri, config))
    pkcs11 = binding()
    pin = read_pin(uri)
    try:
        token = module.lib.get_token(token_label=uri.token)
        try:
            return token.open(rw=rw, user_pin=pin)
        except pkcs11.UserAlreadyLoggedIn:
            return token.open(rw=rw)
    except pkcs11.PKCS11Error as error:
        raise Pkcs11Error(f"{uri.backend}: {_reason(error)}") from None
    finally:
        del pin


def public_key_on_token(
    uri_text: str, *, config: Pkcs11Settings | None = None
) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The public key the URI's key pair has on the token (to check a certificate against)."""
    uri = Pkcs11Uri.parse(uri_text)
    if not uri.token or not uri.names_a_key:
        raise Pkcs11Error(f"{uri_text!r}: a key URI needs token= and object= or id=")
    pkcs11 = binding()
    session = _admin_session(uri, config, rw=False)
    try:
        _find_private_key(session, uri)
        return public_key_of(_find_public_key(session, uri))
    except KeyOperationError as error:
        raise Pkcs11Error(str(error)) from None
    except pkcs11.PKCS11Error as error:
        raise Pkcs11Error(f"{uri.backend}: {_reason(error)}") from None
    finally:
        session.close()


def generate_key_pair(
    uri_text: str, label: str, key_type: str, *, config: Pkcs11Settings | None = None
) -> tuple[str, ec.EllipticCurvePublicKey | rsa.RSAPublicKey]:
    """Makes a key pair on the token: private half sensitive and never extractable.

    Returns the URI of the new key (token, object label, a fresh random id) and its
    public key. The label is the URI's object= when it names one, else `label`.
    """
    uri = Pkcs11Uri.parse(uri_text)
    if not uri.token:
        raise Pkcs11Error(f"{uri_text!r}: say which token: pkcs11:token=LABEL")
    if key_type not in TOKEN_KEY_TYPES:
        raise Pkcs11Error(
            f"key type {key_type!r} cannot be made on a token; "
            f"choose one of {', '.join(TOKEN_KEY_TYPES)}"
        )
    pkcs11 = binding()
    from pkcs11.util.ec import encode_named_curve_parameters  # noqa: PLC0415

    object_label = uri.object or label
    key_id = uri.id or secrets.token_bytes(16)
    session = _admin_session(uri, config, rw=True)
    try:
        existing = list(
            session.get_objects(
                {
                    pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY,
                    pkcs11.Attribute.LABEL: object_label,
                }
            )
        )
        if existing:
            raise Pkcs11Error(
                f"{uri.backend}: a private key labelled {object_label!r} already exists"
            )
        private_template = {
            pkcs11.Attribute.TOKEN: True,
            pkcs11.Attribute.PRIVATE: True,
            pkcs11.Attribute.SENSITIVE: True,
            pkcs11.Attribute.EXTRACTABLE: False,
            pkcs11.Attribute.SIGN: True,
            pkcs11.Attribute.DECRYPT: key_type.startswith("rsa"),
        }
        common: dict[str, Any] = {
            "store": True,
            "label": object_label,
            "id": key_id,
            "private_template": private_template,
        }
        if key_type.startswith("ecdsa"):
            curve = "secp256r1" if key_type == "ecdsa-p256" else "secp384r1"
            public, _ = session.generate_keypair(
                pkcs11.KeyType.EC,
                public_template={
                    pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVE_OIDS[curve])
                },
                **common,
            )
        else:
            public, _ = session.generate_keypair(pkcs11.KeyType.RSA, 2048, **common)
        public_key = public_key_of(public)
    except pkcs11.PKCS11Error as error:
        raise Pkcs11Error(f"{uri.backend}: cannot generate the key ({_reason(error)})") from None
    finally:
        session.close()
    made = Pkcs11Uri(
        token=uri.token,
        object=object_label,
        id=key_id,
        serial=uri.serial,
        module_path=uri.module_path,
        pin_source=uri.pin_source,
    )
    return str(made), public_key


def key_attributes(
    uri_text: str, names: Sequence[str], *, config: Pkcs11Settings | None = None
) -> dict[str, object]:
    """Reads attributes of the private key (CKA_SENSITIVE, ...): for tests and diagnostics.

    A sensitive attribute the token refuses to reveal is returned as the error's name.
    """
    uri = Pkcs11Uri.parse(uri_text)
    pkcs11 = binding()
    session = _admin_session(uri, config, rw=False)
    try:
        key = _find_private_key(session, uri)
        values: dict[str, object] = {}
        for name in names:
            try:
                values[name] = key[getattr(pkcs11.Attribute, name)]
            except pkcs11.PKCS11Error as error:
                values[name] = type(error).__name__
        return values
    finally:
        session.close()


__all__ = [
    "DEFAULT_SESSIONS",
    "PIN_ENV",
    "TOKEN_KEY_TYPES",
    "Pkcs11Error",
    "Pkcs11Key",
    "Pkcs11Settings",
    "Pkcs11Uri",
    "TokenPool",
    "close_all",
    "configure",
    "default_module_path",
    "generate_key_pair",
    "key_attributes",
    "key_for_certificate",
    "pool_for",
    "public_key_on_token",
    "read_pin",
    "settings",
    "unusable",
]
