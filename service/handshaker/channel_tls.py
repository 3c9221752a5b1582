"""The gRPC channel's own TLS certificate and client CA, reloaded when their files change.

grpc calls the fetcher of dynamic_ssl_server_credentials at each new TLS
connection; it stats the three files (at most once a second) and hands grpc a new
certificate configuration only when one changed and the new files load and match.
Connections already open keep the certificate they were made with, so no stream
is dropped. A half-written update (key not matching the certificate, a file that
does not parse) keeps the previous configuration and logs one warning. Whether
client certificates are required is fixed at start (a --tls-client-ca or not).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import grpc

from handshaker.keystore import KeystoreError, load_certificates, load_private_key
from handshaker.keystore.pem import public_key_matches

log = logging.getLogger("handshaker.server")

CHECK_INTERVAL = 1.0

Stamp = tuple[int, int, int] | None


class ChannelTlsError(ValueError):
    """The channel's certificate, key or client CA cannot be read at start (one line)."""


def _stamp(path: Path | None) -> Stamp:
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


class ReloadingCredentials:
    """The files behind the channel's TLS, and the fetcher grpc asks for changes."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None) -> None:
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self._lock = threading.Lock()
        self._next_check = 0.0
        self._stamps = self._current_stamps()
        self.initial = self._load()
        self.reloads = 0

    def _current_stamps(self) -> tuple[Stamp, Stamp, Stamp]:
        return (_stamp(self.cert), _stamp(self.key), _stamp(self.client_ca))

    def _read(self, path: Path, flag: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as error:
            raise ChannelTlsError(f"cannot read {flag} {path}: {error.strerror or error}") from None

    def _load(self) -> grpc.ServerCertificateConfiguration:
        chain = self._read(self.cert, "--tls-cert")
        key = self._read(self.key, "--tls-key")
        ca = self._read(self.client_ca, "--tls-client-ca") if self.client_ca else None
        try:
            leaf = load_certificates(chain, source=str(self.cert))[0]
            private_key = load_private_key(key, source=str(self.key))
            if not public_key_matches(private_key.public_key(), leaf):
                raise ChannelTlsError(f"--tls-key {self.key} does not match --tls-cert {self.cert}")
            if ca is not None:
                load_certificates(ca, source=str(self.client_ca))
        except KeystoreError as error:
            raise ChannelTlsError(str(error)) from None
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """grpc's fetcher: a new configuration when the files changed, else None."""
        try:
            return self._fetch()
        except Exception:  # grpc calls this from its own thread: never let it raise
            log.exception("channel TLS reload failed")
            return None

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        now = time.monotonic()
        if now < self._next_check or not self._lock.acquire(blocking=False):
            return None
        try:
            self._next_check = now + CHECK_INTERVAL
            stamps = self._current_stamps()
            if stamps == self._stamps:
                return None
            self._stamps = stamps
            try:
                configuration = self._load()
            except ChannelTlsError as error:
                log.warning(
                    "channel TLS not reloaded; keeping the previous certificate",
                    extra={"fields": {"error": str(error)}},
                )
                return None
            self.reloads += 1
            log.info("channel TLS reloaded", extra={"fields": {"cert": str(self.cert)}})
            return configuration
        finally:
            self._lock.release()

    def credentials(self) -> grpc.ServerCredentials:
        """The server credentials (client certificates required when there is a client CA)."""
        return grpc.dynamic_ssl_server_credentials(
            self.initial,
            self.fetch,  # type: ignore[arg-type]  # grpc takes None as "unchanged"
            require_client_authentication=self.client_ca is not None,
        )
