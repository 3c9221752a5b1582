"""The `system` trust bundle: the host's CA store, as curl and OpenSSL find it.

Read from `SSL_CERT_FILE` when set, else OpenSSL's default CA file (Debian:
/etc/ssl/certs/ca-certificates.crt), and reread when the file changes (a
ca-certificates update). A certificate in it that `cryptography` cannot load is
skipped (counted in the log), as OpenSSL skips what it cannot use; a missing or
unreadable store is an empty bundle, so a chain checked against it fails with
unknown_ca rather than the service failing to start.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import threading

from cryptography import x509

SYSTEM_TRUST_BUNDLE = "system"

log = logging.getLogger("handshaker.keystore")

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL)
_lock = threading.Lock()
# The last load: (path, mtime_ns, size) -> anchors.
_cache: dict[tuple[str, int, int], tuple[x509.Certificate, ...]] = {}


def ca_file() -> str | None:
    """The host's CA file: $SSL_CERT_FILE, else OpenSSL's default."""
    paths = ssl.get_default_verify_paths()
    return os.environ.get(paths.openssl_cafile_env) or paths.cafile or paths.openssl_cafile


def system_anchors() -> tuple[x509.Certificate, ...]:
    """The anchors of the host's CA store (cached until the file changes)."""
    path = ca_file()
    if path is None:
        return ()
    try:
        stat = os.stat(path)
    except OSError:
        return ()
    stamp = (path, stat.st_mtime_ns, stat.st_size)
    with _lock:
        anchors = _cache.get(stamp)
        if anchors is None:
            anchors = _load(path)
            _cache.clear()
            _cache[stamp] = anchors
        return anchors


def _load(path: str) -> tuple[x509.Certificate, ...]:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        log.warning("cannot read the system CA store %s: %s", path, error.strerror)
        return ()
    anchors = []
    skipped = 0
    for block in _PEM.findall(data):
        try:
            anchors.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            skipped += 1
    if skipped:
        log.info("system CA store %s: skipped %d certificates that do not parse", path, skipped)
    return tuple(anchors)
