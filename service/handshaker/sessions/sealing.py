"""Sealing session records for a shared store: AES-GCM under rotatable keys in a directory.

A record in Redis is only ever ciphertext: the snapshot and the keys of a
finished handshake are secrets. Keys are 32 random bytes in `<dir>/*.key` (0600),
made on first start; the newest file (by name, which is a UTC timestamp) seals,
every key in the directory opens, so a rotation leaves older records readable.
The sealed blob names its key by id; the associated data binds the record to
its session id and owner, so a record copied under another id or owner fails to
open instead of handing one caller's handshake to another.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import os
import secrets
import struct
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT = 1
KEY_ID_LEN = 8
NONCE_LEN = 12
KEY_LEN = 32
_HEADER = struct.Struct(f">B{KEY_ID_LEN}s{NONCE_LEN}s")
_AD_PREFIX = b"handshaker session record v1\x00"


class SealingError(Exception):
    """A record does not open: tampered, moved to another session or owner, or its key is gone."""


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"handshaker session-store key id\x00" + key).digest()[:KEY_ID_LEN]


def _associated_data(session_id: str, owner: str) -> bytes:
    sid = session_id.encode()
    return _AD_PREFIX + struct.pack(">H", len(sid)) + sid + owner.encode()


class Sealer:
    """The session-store keys of one directory; reloads it to find keys added since."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._keys: dict[bytes, AESGCM] = {}
        self._sealing_id = b""
        self._sealing: AESGCM | None = None
        self._directory_stamp = -1
        self.ensure_key()
        self.reload()

    def ensure_key(self) -> None:
        """Make the first key unless one exists; replicas starting at once make only one.

        A directory that already holds a key is not written to: it may be a read-only
        mount shared by the replicas (a Kubernetes Secret, deploy/kubernetes/).
        """
        if self.directory.is_dir() and any(self.directory.glob("*.key")):
            return
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            if not any(self.directory.glob("*.key")):
                self._write_key()

    def rotate(self) -> Path:
        """A new newest key: it seals from the next reload on; the older ones still open."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            path = self._write_key()
        self.reload()
        return path

    def refresh(self) -> None:
        """Reload if a key was added or removed since the last load."""
        if self._directory_changed():
            self.reload()

    def reload(self) -> None:
        # The stamp before the listing: a key added meanwhile changes it again.
        stamp = self._stamp()
        paths = sorted(self.directory.glob("*.key"))
        keys: dict[bytes, AESGCM] = {}
        newest = b""
        for path in paths:
            key = path.read_bytes()
            if len(key) != KEY_LEN:
                raise ValueError(f"session-store key {path} is not {KEY_LEN} bytes")
            kid = key_id(key)
            keys[kid] = AESGCM(key)
            newest = kid
        if not keys:
            raise ValueError(f"no session-store keys in {self.directory}")
        self._keys = keys
        self._directory_stamp = stamp
        self._sealing_id = newest
        self._sealing = keys[newest]

    @property
    def sealing_key_id(self) -> str:
        return self._sealing_id.hex()

    def seal(self, plaintext: bytes, session_id: str, owner: str) -> bytes:
        assert self._sealing is not None
        nonce = os.urandom(NONCE_LEN)
        header = _HEADER.pack(FORMAT, self._sealing_id, nonce)
        return header + self._sealing.encrypt(
            nonce, plaintext, header + _associated_data(session_id, owner)
        )

    def open(self, blob: bytes, session_id: str, owner: str) -> bytes:
        if len(blob) < _HEADER.size + 16:
            raise SealingError("sealed record is truncated")
        header = blob[: _HEADER.size]
        version, kid, nonce = _HEADER.unpack(header)
        if version != FORMAT:
            raise SealingError(f"sealed record has unknown format {version}")
        aead = self._keys.get(kid)
        if aead is None and self._directory_changed():
            # Another replica rotated: its new key is in the shared directory. (Only when
            # the directory changed: a record naming a made-up key costs one stat.)
            self.reload()
            aead = self._keys.get(kid)
        if aead is None:
            raise SealingError(f"sealed under key {kid.hex()}, which is not in the keystore")
        try:
            return aead.decrypt(
                nonce, blob[_HEADER.size :], header + _associated_data(session_id, owner)
            )
        except InvalidTag:
            raise SealingError("sealed record does not open for this session and owner") from None

    def _stamp(self) -> int:
        try:
            return os.stat(self.directory).st_mtime_ns
        except OSError:
            return -1

    def _directory_changed(self) -> bool:
        return self._stamp() != self._directory_stamp

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_key(self) -> Path:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.directory / f"{stamp}-{secrets.token_hex(4)}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(os.urandom(KEY_LEN))
        return path
