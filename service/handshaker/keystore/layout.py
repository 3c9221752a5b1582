"""The directory keystore's layout (directory.py draws it): file and folder names, modes,
the rule for a name, the stamps that tell a changed file, and owner-only writes."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

from cryptography import x509

from .pem import load_certificates
from .policy import POLICY_FILE

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


def check_name(name: str) -> str:
    """Refuses a credential or bundle name that is not a plain, safe folder name."""
    if not _NAME.match(name) or name in RESERVED_NAMES:
        raise ValueError(
            f"invalid name {name!r}: use letters, digits, '.', '_' and '-' "
            f"(not {', '.join(sorted(RESERVED_NAMES))})"
        )
    return name


def file_stamp(path: Path) -> FileStamp:
    try:
        st = path.stat()
    except OSError:
        # Absent or unreadable: either way the read that follows reports it.
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_certificates(path: Path) -> tuple[x509.Certificate, ...]:
    return load_certificates(path.read_bytes(), source=str(path))


def make_dir(path: Path, *, parents: bool = False) -> None:
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=DIR_MODE)
    # mkdir's mode is filtered by the umask; say it again.
    path.chmod(DIR_MODE)


def write_file(path: Path, data: bytes, mode: int) -> None:
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


def remove_tree(path: Path) -> None:
    for child in path.iterdir():
        child.unlink()
    path.rmdir()
