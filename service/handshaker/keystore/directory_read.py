"""Reading the directory keystore: every credential, trust bundle and the policy, loaded
from the layout (layout.py) and reloaded when their files change (see directory.py)."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from cryptography import x509

from handshaker.tls.config import Credential
from handshaker.tls.keyops import PrivateKeyHandle

from .base import (
    CredentialInfo,
    InvalidCredential,
    KeyNotFound,
    KeystoreError,
    KeystoreSnapshot,
    KeystoreUnavailable,
    describe,
)
from .layout import (
    CA_FILE,
    CERT_FILE,
    DEFAULT_FILE,
    DEFAULT_TRUST_BUNDLE,
    DEV_CA_BUNDLE,
    DEV_CA_DIR,
    KEY_FILE,
    KEY_URI_FILE,
    TRUST_DIR,
    FileStamp,
    file_stamp,
    read_certificates,
)
from .pem import (
    credential_from_key,
    load_certificates,
    load_private_key,
)
from .policy import EMPTY_POLICY, POLICY_FILE, InvalidPolicy, Policy, parse_policy

log = logging.getLogger("handshaker.keystore")

# Builds the key handle for a `key-uri` file: (the URI, the leaf it must match).
KeyUriResolver = Callable[[str, x509.Certificate], PrivateKeyHandle]


def resolve_key_uri(uri: str, leaf: x509.Certificate) -> PrivateKeyHandle:
    """The default resolver: `pkcs11:` URIs through the PKCS#11 backend (keystore/pkcs11/)."""
    scheme = uri.partition(":")[0].lower()
    if scheme != "pkcs11":
        raise InvalidCredential(f"key URI scheme {scheme!r} is not supported (only pkcs11:)")
    from . import pkcs11  # noqa: PLC0415 (loads the optional binding only for token keys)

    return pkcs11.key_for_certificate(uri, leaf)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Loaded(Generic[T]):
    stamp: tuple[FileStamp, ...]
    value: T


class DirectoryReader:
    """Credentials and trust bundles read from a directory, reloaded when files change."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        reload_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        key_uri_resolver: KeyUriResolver = resolve_key_uri,
    ) -> None:
        self.root = Path(path)
        self._resolve_key_uri = key_uri_resolver
        self._reload_interval = reload_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: KeystoreSnapshot | None = None
        self._next_check = 0.0
        self._last_scan: dict[tuple[str, str], tuple[FileStamp, ...]] | None = None
        self._credentials: dict[str, _Loaded[Credential]] = {}
        self._bundles: dict[tuple[str, str], _Loaded[tuple[x509.Certificate, ...]]] = {}
        self._policy: _Loaded[Policy] | None = None
        # Stamps we already warned about, so a broken file is reported once, not per access.
        self._warned: dict[tuple[str, str], tuple[FileStamp, ...]] = {}
        # Items whose files exist but could not be read (permissions, a directory where
        # a file belongs), with the reason: asking for one is UNAVAILABLE, not NOT_FOUND.
        self._unreadable: dict[tuple[str, str], str] = {}
        # For the service's health and metrics: why the directory cannot be read now
        # (None: it can), new contents swapped in since the first, files that did not load.
        self.problem: str | None = None
        self.reloads = 0
        self.load_errors = 0

    # The KeyStore protocol.

    def credential(self, name: str) -> Credential:
        snapshot = self._current()
        try:
            return snapshot.credential(name)
        except KeyNotFound:
            reason = self._unreadable.get(("credential", name))
            if reason is not None:
                raise KeystoreUnavailable(f"credential {name!r} cannot be read: {reason}") from None
            raise

    def select(
        self,
        server_name: str | None,
        signature_schemes: Sequence[int],
        allowed: Callable[[str], bool] | None = None,
    ) -> Credential | None:
        return self._current().select(server_name, signature_schemes, allowed)

    def trust_bundle(self, name: str) -> tuple[x509.Certificate, ...]:
        return self._current().trust_bundle(name)

    def names(self) -> list[str]:
        return self._current().names()

    def trust_bundle_names(self) -> list[str]:
        return self._current().trust_bundle_names()

    def default_name(self) -> str | None:
        return self._current().default

    def policy(self) -> Policy:
        """The last good authorization policy (the empty, deny-all one when there is none)."""
        self._current()
        loaded = self._policy
        return loaded.value if loaded is not None else EMPTY_POLICY

    @property
    def policy_path(self) -> Path:
        return self.root / POLICY_FILE

    def describe_all(self) -> list[CredentialInfo]:
        """The public facts of every credential, in name order."""
        snapshot = self._current()
        return [
            describe(name, snapshot.credentials[name], is_default=name == snapshot.default)
            for name in snapshot.names()
        ]

    def reload(self) -> None:
        """Re-reads changed files now, whatever the reload interval."""
        with self._lock:
            self._refresh()
            self._next_check = self._clock() + self._reload_interval

    # Reading.

    def _current(self) -> KeystoreSnapshot:
        snapshot = self._snapshot
        if snapshot is not None and self._clock() < self._next_check:
            return snapshot
        # One thread re-reads; the others keep using the current snapshot meanwhile.
        if not self._lock.acquire(blocking=snapshot is None):
            assert snapshot is not None
            return snapshot
        try:
            if self._snapshot is None or self._clock() >= self._next_check:
                self._refresh()
                self._next_check = self._clock() + self._reload_interval
            assert self._snapshot is not None
            return self._snapshot
        finally:
            self._lock.release()

    def _scan(self) -> dict[tuple[str, str], tuple[FileStamp, ...]]:
        """Stamps of every file the keystore reads, keyed by (kind, name)."""
        scan: dict[tuple[str, str], tuple[FileStamp, ...]] = {}
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir():
                    continue
                folder = self.root / entry.name
                if entry.name == TRUST_DIR:
                    for bundle in folder.glob("*.pem"):
                        if not bundle.name.startswith("."):
                            scan["trust", bundle.stem] = (file_stamp(bundle),)
                elif entry.name == DEV_CA_DIR:
                    if (ca := file_stamp(folder / CA_FILE)) is not None:
                        scan["bundle", DEV_CA_BUNDLE] = (ca,)
                else:
                    files = (
                        file_stamp(folder / CERT_FILE),
                        file_stamp(folder / KEY_FILE),
                        file_stamp(folder / KEY_URI_FILE),
                    )
                    if files != (None, None, None) or not os.access(folder, os.R_OK | os.X_OK):
                        # A folder we may not enter is a credential we cannot read,
                        # reported as such, not one that is absent.
                        scan["credential", entry.name] = files
                    if (ca := file_stamp(folder / CA_FILE)) is not None:
                        scan["ca", entry.name] = (ca,)
        scan["default", ""] = (file_stamp(self.root / DEFAULT_FILE),)
        scan["policy", POLICY_FILE] = (file_stamp(self.root / POLICY_FILE),)
        return scan

    def _refresh(self) -> None:
        try:
            scan = self._scan()
        except OSError as exc:
            reason = f"keystore directory {self.root} cannot be read: {exc.strerror or exc}"
            if self._snapshot is None:
                raise KeystoreUnavailable(reason) from None
            self._warn_once(("root", ""), (), f"{reason}; serving the last good contents")
            self.problem = reason
            return
        self._warned.pop(("root", ""), None)
        self.problem = None
        if scan == self._last_scan and self._snapshot is not None:
            return
        if self._snapshot is not None:
            self.reloads += 1

        credentials: dict[str, _Loaded[Credential]] = {}
        bundles: dict[tuple[str, str], _Loaded[tuple[x509.Certificate, ...]]] = {}
        for (kind, name), stamp in sorted(scan.items(), key=lambda item: item[0]):
            if kind == "credential":
                loaded = self._load_item(
                    self._credentials.get(name),
                    (kind, name),
                    stamp,
                    functools.partial(self._read_credential, name),
                )
                if loaded is not None:
                    credentials[name] = loaded
            elif kind in ("trust", "ca", "bundle"):
                path = self._bundle_path(kind, name)
                bundle = self._load_item(
                    self._bundles.get((kind, name)),
                    (kind, name),
                    stamp,
                    functools.partial(read_certificates, path),
                )
                if bundle is not None:
                    bundles[kind, name] = bundle

        policy_stamp = scan["policy", POLICY_FILE]
        if policy_stamp == (None,):
            # Deleting the file is a deliberate "nobody": unlike a broken file, it is
            # not an accident to ride out on the last good policy.
            self._policy = None
        else:
            self._policy = self._load_item(
                self._policy, ("policy", POLICY_FILE), policy_stamp, self._read_policy
            )
        self._credentials = credentials
        self._bundles = bundles
        self._last_scan = scan
        self._snapshot = KeystoreSnapshot(
            credentials={name: loaded.value for name, loaded in credentials.items()},
            trust_bundles=self._resolve_bundles(bundles),
            default=self._read_default(set(credentials)),
        )
        # Forget warnings about files that are gone, so a reappearing problem is reported.
        self._warned = {k: v for k, v in self._warned.items() if k in scan}
        self._unreadable = {k: v for k, v in self._unreadable.items() if k in scan}

    def _load_item(
        self,
        previous: _Loaded[T] | None,
        item: tuple[str, str],
        stamp: tuple[FileStamp, ...],
        read: Callable[[], T],
    ) -> _Loaded[T] | None:
        if previous is not None and previous.stamp == stamp:
            return previous
        try:
            value = read()
        except (KeystoreError, OSError) as exc:
            if isinstance(exc, KeystoreError):
                reason = str(exc)
            else:
                reason = f"{exc.filename or 'file'}: {exc.strerror or 'cannot be read'}"
            kept = "; keeping the previous version" if previous is not None else ""
            self._warn_once(item, stamp, f"cannot load {item[0]} {item[1]!r}: {reason}{kept}")
            if isinstance(exc, OSError):
                self._unreadable[item] = reason
            return previous
        self._warned.pop(item, None)
        self._unreadable.pop(item, None)
        return _Loaded(stamp, value)

    def _warn_once(self, item: tuple[str, str], stamp: tuple[FileStamp, ...], message: str) -> None:
        if self._warned.get(item) != stamp:
            self._warned[item] = stamp
            self.load_errors += 1
            log.warning(message)

    def _read_credential(self, name: str) -> Credential:
        folder = self.root / name
        chain = load_certificates((folder / CERT_FILE).read_bytes(), source=str(folder / CERT_FILE))
        if not (folder / KEY_FILE).exists() and (folder / KEY_URI_FILE).exists():
            return self._credential_from_key_uri(folder, chain)
        key = load_private_key((folder / KEY_FILE).read_bytes(), source=str(folder / KEY_FILE))
        return credential_from_key(chain, key, source=str(folder))

    def _credential_from_key_uri(
        self, folder: Path, chain: tuple[x509.Certificate, ...]
    ) -> Credential:
        source = folder / KEY_URI_FILE
        try:
            uri = source.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise InvalidCredential(f"{source}: not UTF-8 text") from None
        if not uri:
            raise InvalidCredential(f"{source}: empty")
        try:
            handle = self._resolve_key_uri(uri, chain[0])
        except KeystoreError as exc:
            raise InvalidCredential(f"{source}: {exc}") from None
        try:
            return Credential(certificate_chain=chain, signer=handle)
        except ValueError as exc:
            raise InvalidCredential(f"{source}: {exc}") from None

    def _read_policy(self) -> Policy:
        path = self.root / POLICY_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidPolicy(f"{path}: not UTF-8 text") from None
        return parse_policy(text, source=str(path))

    def _bundle_path(self, kind: str, name: str) -> Path:
        if kind == "trust":
            return self.root / TRUST_DIR / f"{name}.pem"
        if kind == "bundle":
            return self.root / DEV_CA_DIR / CA_FILE
        return self.root / name / CA_FILE

    @staticmethod
    def _resolve_bundles(
        loaded: dict[tuple[str, str], _Loaded[tuple[x509.Certificate, ...]]],
    ) -> dict[str, tuple[x509.Certificate, ...]]:
        bundles: dict[str, tuple[x509.Certificate, ...]] = {}
        # Lowest precedence first: a folder's ca.crt, then the dev CA, then trust/.
        for kind in ("ca", "bundle", "trust"):
            for (k, name), item in loaded.items():
                if k == kind:
                    bundles[name] = item.value
        if DEFAULT_TRUST_BUNDLE not in bundles and DEV_CA_BUNDLE in bundles:
            bundles[DEFAULT_TRUST_BUNDLE] = bundles[DEV_CA_BUNDLE]
        return bundles

    def _read_default(self, names: set[str]) -> str | None:
        try:
            named = (self.root / DEFAULT_FILE).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            named = ""
        except (OSError, UnicodeDecodeError):
            named = ""
            log.warning("cannot read %s", self.root / DEFAULT_FILE)
        if named:
            if named in names:
                return named
            self._warn_once(
                ("default", ""),
                self._last_scan_stamp(("default", "")),
                f"{self.root / DEFAULT_FILE} names {named!r}, which is not a loaded credential",
            )
        if len(names) == 1:
            return next(iter(names))
        return None

    def _last_scan_stamp(self, item: tuple[str, str]) -> tuple[FileStamp, ...]:
        return (self._last_scan or {}).get(item, ())
