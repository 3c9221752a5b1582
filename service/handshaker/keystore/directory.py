"""The directory keystore: the embedded default backend, in cert-manager's Secret layout.

Layout of the keystore directory (every name below is a credential or bundle name):

    <root>/                     0700
      <name>/                   one credential; a cert-manager Secret mounted as a folder
        tls.crt                 the certificate chain, PEM, leaf first
        tls.key                 the leaf's private key, PEM: EC, RSA, Ed25519 or Ed448,
                                PKCS#8 or traditional, unencrypted; written 0600
        key-uri                 instead of tls.key: one line, the URI of a key kept
                                elsewhere (`pkcs11:token=...;object=...`, RFC 7512); the
                                chain still comes from tls.crt and reloads as usual
        ca.crt                  optional: the trust bundle called <name>
      trust/<name>.pem          a trust bundle: one or more PEM certificates
      default                   optional: one line, the name of the default credential
      dev-ca/ca.crt, ca.key     the development CA, created on first use
      policy.toml               who may use which credential and trust bundle (policy.py);
                                absent: nobody may use any credential

- Entries whose name starts with "." are ignored (Kubernetes' ..data links, our
  temporary files); "trust" and "dev-ca" are not credential names.
- A trust bundle name resolves to trust/<name>.pem, else <name>/ca.crt. The bundle
  "dev-ca" is the development CA; "default" (what a client that names no bundle
  gets) is trust/default.pem, else the development CA.
- The default credential (served when no SAN matches the server_name) is the one
  the `default` file names, else the only credential when there is exactly one.
  Storing a credential through this class writes `default` when it is absent.

Changes are noticed without a restart: at most every `reload_interval` seconds an
access stats the files (inode, size, mtime, ctime) and re-reads only what
changed, then swaps in a whole new snapshot. A file that does not parse, or a
key that does not match its certificate (a half-written update), keeps the last
good credential and logs one warning naming the file, never its content. The
policy file reloads the same way: one that does not validate keeps the last good
policy (none yet: the empty, deny-all policy) and logs why.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from cryptography import x509

from handshaker.tls.config import Credential
from handshaker.tls.keyops import PrivateKeyHandle
from handshaker.tls.signer import PrivateKey

from . import devca
from .base import (
    CredentialInfo,
    InvalidCredential,
    KeyNotFound,
    KeystoreError,
    KeystoreSnapshot,
    KeystoreUnavailable,
    describe,
)
from .pem import (
    certificates_pem,
    credential_from_key,
    load_certificates,
    load_private_key,
    private_key_pem,
)
from .policy import EMPTY_POLICY, POLICY_FILE, InvalidPolicy, Policy, Role, parse_policy
from .principals import LOCAL, Principal

log = logging.getLogger("handshaker.keystore")

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
KEY_URI_FILE = "key-uri"
CA_FILE = "ca.crt"
TRUST_DIR = "trust"
DEV_CA_DIR = "dev-ca"
DEFAULT_FILE = "default"
DEV_CA_BUNDLE = "dev-ca"
DEFAULT_TRUST_BUNDLE = "default"
# The session store's sealing keys (handshaker.sessions.sealing) live in <root>/session-store/keys.
SESSION_STORE_DIR = "session-store"
RESERVED_NAMES = frozenset({TRUST_DIR, DEV_CA_DIR, DEFAULT_FILE, POLICY_FILE, SESSION_STORE_DIR})

KEY_MODE = 0o600
CERT_MODE = 0o644
DIR_MODE = 0o700

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# (inode, size, mtime_ns, ctime_ns) of a file, or None when it is absent.
FileStamp = tuple[int, int, int, int] | None

# Builds the key handle for a `key-uri` file: (the URI, the leaf it must match).
KeyUriResolver = Callable[[str, x509.Certificate], PrivateKeyHandle]


def resolve_key_uri(uri: str, leaf: x509.Certificate) -> PrivateKeyHandle:
    """The default resolver: `pkcs11:` URIs through the PKCS#11 backend (keystore/pkcs11/)."""
    scheme = uri.partition(":")[0].lower()
    if scheme != "pkcs11":
        raise InvalidCredential(f"key URI scheme {scheme!r} is not supported (only pkcs11:)")
    from . import pkcs11  # noqa: PLC0415 (loads the optional binding only for token keys)

    return pkcs11.key_for_certificate(uri, leaf)


def check_name(name: str) -> str:
    """Refuses a credential or bundle name that is not a plain, safe folder name."""
    if not _NAME.match(name) or name in RESERVED_NAMES:
        raise ValueError(
            f"invalid name {name!r}: use letters, digits, '.', '_' and '-' "
            f"(not {', '.join(sorted(RESERVED_NAMES))})"
        )
    return name


def _stamp(path: Path) -> FileStamp:
    try:
        st = path.stat()
    except OSError:
        # Absent or unreadable: either way the read that follows reports it.
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Loaded(Generic[T]):
    stamp: tuple[FileStamp, ...]
    value: T


class DirectoryKeyStore:
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

    def __repr__(self) -> str:
        return f"DirectoryKeyStore({str(self.root)!r})"

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
                            scan["trust", bundle.stem] = (_stamp(bundle),)
                elif entry.name == DEV_CA_DIR:
                    if (ca := _stamp(folder / CA_FILE)) is not None:
                        scan["bundle", DEV_CA_BUNDLE] = (ca,)
                else:
                    files = (
                        _stamp(folder / CERT_FILE),
                        _stamp(folder / KEY_FILE),
                        _stamp(folder / KEY_URI_FILE),
                    )
                    if files != (None, None, None) or not os.access(folder, os.R_OK | os.X_OK):
                        # A folder we may not enter is a credential we cannot read,
                        # reported as such, not one that is absent.
                        scan["credential", entry.name] = files
                    if (ca := _stamp(folder / CA_FILE)) is not None:
                        scan["ca", entry.name] = (ca,)
        scan["default", ""] = (_stamp(self.root / DEFAULT_FILE),)
        scan["policy", POLICY_FILE] = (_stamp(self.root / POLICY_FILE),)
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
                    functools.partial(_read_certificates, path),
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

    # Writing.

    def import_credential(
        self,
        name: str,
        chain_pem: bytes,
        key_pem: bytes,
        *,
        ca_pem: bytes | None = None,
        replace: bool = False,
    ) -> Credential:
        """Stores a PEM chain and key under `name`; refuses a key that does not match the leaf."""
        check_name(name)
        chain = load_certificates(chain_pem, source=f"{name} certificate chain")
        key = load_private_key(key_pem, source=f"{name} private key")
        credential = credential_from_key(chain, key, source=name)
        ca = load_certificates(ca_pem, source=f"{name} CA bundle") if ca_pem is not None else None
        self._store_credential(name, chain, key, ca, replace=replace)
        return credential

    def import_key_uri(
        self,
        name: str,
        chain_pem: bytes,
        key_uri: str,
        *,
        ca_pem: bytes | None = None,
        replace: bool = False,
    ) -> Credential:
        """Stores a PEM chain and the URI of its key (kept in a token) under `name`.

        The caller checks that the token's key matches the leaf (it has the PIN);
        here the URI must only resolve to a key handle for the leaf.
        """
        check_name(name)
        chain = load_certificates(chain_pem, source=f"{name} certificate chain")
        handle = self._resolve_key_uri(key_uri, chain[0])
        credential = Credential(certificate_chain=chain, signer=handle)
        ca = load_certificates(ca_pem, source=f"{name} CA bundle") if ca_pem is not None else None
        self._store_files(
            name,
            [(KEY_URI_FILE, f"{key_uri}\n".encode(), KEY_MODE), *self._chain_files(chain, ca)],
            ca is not None,
            replace=replace,
            drop=KEY_FILE,
        )
        return credential

    def generate(
        self,
        name: str,
        sans: Sequence[str],
        key_type: str = devca.DEFAULT_KEY_TYPE,
        *,
        replace: bool = False,
    ) -> Credential:
        """Issues a credential from the development CA (creating the CA on first use)."""
        check_name(name)
        if key_type not in devca.KEY_TYPES:
            raise ValueError(
                f"unknown key type {key_type!r}; choose one of {', '.join(devca.KEY_TYPES)}"
            )
        general_names = [devca.parse_san(s) for s in sans]
        if not general_names:
            raise ValueError("give at least one subjectAltName, e.g. DNS:localhost")
        if not replace and (self.root / name).exists():
            raise FileExistsError(f"credential {name!r} already exists")
        ca_certificate, ca_key = self.load_or_create_development_ca()
        key = devca.generate_private_key(key_type)
        leaf = devca.issue(ca_certificate, ca_key, key, general_names)
        credential = credential_from_key((leaf,), key, source=name)
        self._store_credential(name, (leaf,), key, (ca_certificate,), replace=replace)
        return credential

    def generate_in_token(
        self,
        name: str,
        sans: Sequence[str],
        token_uri: str,
        key_type: str = devca.DEFAULT_KEY_TYPE,
        *,
        replace: bool = False,
    ) -> tuple[Credential, str]:
        """Makes the key pair on a PKCS#11 token and its certificate from the development CA.

        The private key never leaves the token (sensitive, not extractable); the
        folder gets tls.crt, ca.crt and key-uri. Returns the credential and the key's URI.
        """
        from . import pkcs11  # noqa: PLC0415 (the optional binding, only for token keys)

        check_name(name)
        if key_type not in pkcs11.TOKEN_KEY_TYPES:
            raise ValueError(
                f"key type {key_type!r} cannot be made on a token; choose one of "
                f"{', '.join(pkcs11.TOKEN_KEY_TYPES)}"
            )
        general_names = [devca.parse_san(s) for s in sans]
        if not general_names:
            raise ValueError("give at least one subjectAltName, e.g. DNS:localhost")
        if not replace and (self.root / name).exists():
            raise FileExistsError(f"credential {name!r} already exists")
        ca_certificate, ca_key = self.load_or_create_development_ca()
        key_uri, public_key = pkcs11.generate_key_pair(token_uri, name, key_type)
        leaf = devca.issue_for_public_key(ca_certificate, ca_key, public_key, general_names)
        credential = Credential(
            certificate_chain=(leaf,), signer=self._resolve_key_uri(key_uri, leaf)
        )
        self._store_files(
            name,
            [
                (KEY_URI_FILE, f"{key_uri}\n".encode(), KEY_MODE),
                *self._chain_files((leaf,), (ca_certificate,)),
            ],
            True,
            replace=replace,
            drop=KEY_FILE,
        )
        return credential, key_uri

    def set_default(self, name: str) -> None:
        """Names the credential served when no SAN matches."""
        check_name(name)
        self._ensure_root()
        _write_file(self.root / DEFAULT_FILE, f"{name}\n".encode(), CERT_MODE)
        self._next_check = 0.0

    def write_policy(self, policy: Policy) -> None:
        """Replaces the policy file atomically (the service reloads it within a second)."""
        self._ensure_root()
        _write_file(self.root / POLICY_FILE, policy.to_toml().encode(), CERT_MODE)
        self._next_check = 0.0

    def edit_policy(self, edit: Callable[[Policy], Policy]) -> Policy:
        """Applies `edit` to the policy on disk and writes the result; returns it.

        A policy file that does not validate is an InvalidPolicy here rather than
        being overwritten: the operator's broken edit is theirs to fix, not to lose.
        Edits hold an exclusive lock on a file beside it, so two `keys allow` at
        once both land instead of one overwriting the other.
        """
        self._ensure_root()
        lock = os.open(self.root / f".{POLICY_FILE}.lock", os.O_RDWR | os.O_CREAT, CERT_MODE)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            edited = edit(self.read_policy_file())
            self.write_policy(edited)
        finally:
            os.close(lock)  # closing releases the lock
        return edited

    def read_policy_file(self) -> Policy:
        """The policy on disk, strictly: an InvalidPolicy, not the last good one, if it is bad."""
        path = self.root / POLICY_FILE
        if not path.exists():
            return EMPTY_POLICY
        return parse_policy(path.read_text(encoding="utf-8"), source=str(path))

    @property
    def development_ca_path(self) -> Path:
        """Where the development CA certificate is (it may not exist yet)."""
        return self.root / DEV_CA_DIR / CA_FILE

    def load_or_create_development_ca(self) -> tuple[x509.Certificate, PrivateKey]:
        """The development CA certificate and key, created on first use."""
        folder = self.root / DEV_CA_DIR
        if not (folder / CA_FILE).exists():
            self._ensure_root()
            certificate, new_key = devca.create_ca()
            staging = self.root / f".{DEV_CA_DIR}.new-{secrets.token_hex(4)}"
            _make_dir(staging)
            _write_file(staging / "ca.key", private_key_pem(new_key), KEY_MODE)
            _write_file(staging / CA_FILE, certificates_pem([certificate]), CERT_MODE)
            try:
                staging.rename(folder)
            except OSError:
                # Another process created it first; use theirs.
                _remove_tree(staging)
            else:
                self._next_check = 0.0
                log.info("created the development CA at %s", folder / CA_FILE)
        certificates = load_certificates(
            (folder / CA_FILE).read_bytes(), source=str(folder / CA_FILE)
        )
        key = load_private_key((folder / "ca.key").read_bytes(), source=str(folder / "ca.key"))
        return certificates[0], key

    def ensure_development_ca(self) -> Path:
        """On a keystore without credentials: creates the development CA and `localhost`.

        `localhost` (DNS:localhost, IP:127.0.0.1, IP:::1) becomes the default, so a
        fresh install serves at once, and a policy is written (when there is none) that
        lets `local` and this process's own uid use `localhost` and the `dev-ca` bundle,
        and nothing else. A keystore that already holds credentials is
        left alone (it may be a read-only mount). Returns the path of the development
        CA certificate, which exists unless the keystore came with its own credentials.
        """
        if self.root.is_dir() and any(kind == "credential" for kind, _ in self._scan()):
            return self.development_ca_path
        self.load_or_create_development_ca()
        self.generate("localhost", ["DNS:localhost", "IP:127.0.0.1", "IP:::1"])
        if self.default_name() is None:
            self.set_default("localhost")
        if not (self.root / POLICY_FILE).exists():
            self.write_policy(development_policy())
        log.info("created the development credential 'localhost'")
        return self.development_ca_path

    def _ensure_root(self) -> None:
        if not self.root.exists():
            _make_dir(self.root, parents=True)

    def _store_credential(
        self,
        name: str,
        chain: Sequence[x509.Certificate],
        key: PrivateKey,
        ca: Sequence[x509.Certificate] | None,
        *,
        replace: bool,
    ) -> None:
        files = [(KEY_FILE, private_key_pem(key), KEY_MODE), *self._chain_files(chain, ca)]
        self._store_files(name, files, bool(ca), replace=replace, drop=KEY_URI_FILE)

    @staticmethod
    def _chain_files(
        chain: Sequence[x509.Certificate], ca: Sequence[x509.Certificate] | None
    ) -> list[tuple[str, bytes, int]]:
        files = [(CERT_FILE, certificates_pem(list(chain)), CERT_MODE)]
        if ca:
            files.append((CA_FILE, certificates_pem(list(ca)), CERT_MODE))
        return files

    def _store_files(
        self,
        name: str,
        files: list[tuple[str, bytes, int]],
        ca: bool,
        *,
        replace: bool,
        drop: str,
    ) -> None:
        self._ensure_root()
        folder = self.root / name
        if folder.exists():
            if not replace:
                raise FileExistsError(f"credential {name!r} already exists")
            # Each file is replaced atomically; a reader between two renames sees a
            # key that does not match its certificate and keeps the old credential.
            for file_name, data, mode in files:
                _write_file(folder / file_name, data, mode)
            # The other kind of key goes: a folder holds tls.key or key-uri, never both.
            with contextlib.suppress(FileNotFoundError):
                (folder / drop).unlink()
            if not ca:
                with contextlib.suppress(FileNotFoundError):
                    (folder / CA_FILE).unlink()
        else:
            # A new credential appears whole: written aside, then renamed into place.
            staging = self.root / f".{name}.new-{secrets.token_hex(4)}"
            _make_dir(staging)
            try:
                for file_name, data, mode in files:
                    _write_file(staging / file_name, data, mode)
                staging.rename(folder)
            except OSError:
                _remove_tree(staging)
                raise
            if not (self.root / DEFAULT_FILE).exists():
                # The first credential stored becomes the default, so a keystore
                # grown one credential at a time keeps serving the one it started with.
                _write_file(self.root / DEFAULT_FILE, f"{name}\n".encode(), CERT_MODE)
        self._next_check = 0.0


def development_policy() -> Policy:
    """What a fresh keystore allows: `local` and our own uid may use the development pieces."""
    policy = EMPTY_POLICY
    for principal in (LOCAL, Principal.unix_uid(os.getuid())):
        policy = policy.grant_credential("localhost", principal, (Role.SERVER, Role.CLIENT))
        policy = policy.grant_trust_bundle(DEV_CA_BUNDLE, principal)
    return policy


def ensure_development_ca(path: str | os.PathLike[str]) -> Path:
    """Creates, on first use, the development CA and a `localhost` credential in `path`.

    Returns the path of the development CA certificate (see
    DirectoryKeyStore.ensure_development_ca: a keystore with credentials is left alone).
    """
    return DirectoryKeyStore(path).ensure_development_ca()


def _read_certificates(path: Path) -> tuple[x509.Certificate, ...]:
    return load_certificates(path.read_bytes(), source=str(path))


def _make_dir(path: Path, *, parents: bool = False) -> None:
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=DIR_MODE)
    # mkdir's mode is filtered by the umask; say it again.
    path.chmod(DIR_MODE)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Writes `data` to `path` atomically with exactly `mode`, whatever the umask."""
    temporary = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as file:
            fd = -1
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def _remove_tree(path: Path) -> None:
    for child in path.iterdir():
        child.unlink()
    path.rmdir()
