"""Prometheus metrics of the service (--metrics-listen HOST:PORT), off by default.

One process (--workers 1) serves its own metrics at http://HOST:PORT/metrics.
With worker processes the supervisor serves them: it points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before it starts the workers, each
worker writes its values there (prometheus-client's multiprocess mode), and the
supervisor's endpoint adds them up with a MultiProcessCollector (workers.py).
Counters and histograms are summed over the workers, dead ones included; the
gauges over the live ones (sessions in flight: their sum; certificate expiry:
their minimum).

Hooks: the servicer calls `completed`/`failed` when its `metrics` is set (off:
one None check per handshake); private-key operations report through
keystore.keyops.observer; the rest is sampled once a second by `sample`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

from handshaker.keystore import KeyStore, KeystoreError, keyops
from handshaker.sessions import MemorySessionStore, SessionStore, SessionStoreUnavailable
from handshaker.tls import AlertDescription

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Handshakes take milliseconds; a token or a remote key may take a second.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
VERSIONS = {0x0304: "tls1.3", 0x0303: "tls1.2"}


def check(listen: str | None) -> None:
    """ValueError (one line) for a --metrics-listen that is not HOST:PORT."""
    if listen is not None:
        split_address(listen)


def split_address(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"--metrics-listen {listen!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def serve_http(listen: str, registry: CollectorRegistry) -> None:
    """/metrics on HOST:PORT in a thread; ValueError (one line) when it cannot bind."""
    host, port = split_address(listen)
    try:
        start_http_server(port, host, registry)
    except OSError as error:
        raise ValueError(f"cannot serve metrics on {listen}: {error.strerror or error}") from None


class ServiceMetrics:
    """The service's metrics, in a registry of their own."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry()
        self.handshakes = Counter(
            "handshaker_handshakes",
            "Handshakes that ended, by role, TLS version, result and alert",
            ("role", "version", "result", "alert"),
            registry=registry,
        )
        self.latency = Histogram(
            "handshaker_handshake_duration_seconds",
            "From a handshake's start to its completion or failure",
            ("role", "result"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.key_operations = Histogram(
            "handshaker_key_operation_duration_seconds",
            "Private-key operations awaited in a key backend (a PKCS#11 token, a plugin's)",
            ("backend", "result"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "handshaker_sessions_in_flight",
            "Handshakes held by this service (streams, and the memory store's sessions)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        # Every replica reports the same number: aggregate with max(), not sum().
        self.shared = Gauge(
            "handshaker_shared_sessions",
            "Unary sessions in the shared session store (Redis), of the whole fleet",
            registry=registry,
            multiprocess_mode="max",
        )
        self.reloads = Counter(
            "handshaker_keystore_reloads",
            "Times the keystore saw changed files and swapped in new contents",
            registry=registry,
        )
        self.errors = Counter(
            "handshaker_keystore_errors",
            "Keystore files that could not be loaded (each warning once)",
            registry=registry,
        )
        self.expiry = Gauge(
            "handshaker_certificate_expiry_timestamp_seconds",
            "The earliest notAfter in each credential's chain (unix seconds)",
            ("credential",),
            registry=registry,
            multiprocess_mode="livemin",
        )
        self._seen = (0, 0)
        self._expiry_names: set[str] = set()
        self._expiry_at = -1.0

    # --- hooks --------------------------------------------------------------------------

    def completed(self, role: str, version: int, started_at: float) -> None:
        self.handshakes.labels(
            role, VERSIONS.get(version, f"{version:#06x}"), "completed", ""
        ).inc()
        self.latency.labels(role, "completed").observe(time.monotonic() - started_at)

    def failed(self, role: str, alert: int, started_at: float) -> None:
        try:
            name = AlertDescription(alert).name.lower()
        except ValueError:
            name = str(alert)
        self.handshakes.labels(role, "", "failed", name).inc()
        self.latency.labels(role, "failed").observe(time.monotonic() - started_at)

    def key_operation(self, backend: str, seconds: float, ok: bool) -> None:
        self.key_operations.labels(backend, "ok" if ok else "error").observe(seconds)

    # --- sampled ------------------------------------------------------------------------

    async def sample(
        self,
        keystore: KeyStore,
        sessions: SessionStore,
        streams: MemorySessionStore,
        interval: float = 1.0,
    ) -> None:
        """Sessions in flight, keystore reloads and errors, certificate expiry, every second."""
        count = getattr(sessions, "count", None)
        while True:
            self.sample_once(keystore, sessions, streams)
            if count is not None:
                with contextlib.suppress(SessionStoreUnavailable):
                    self.shared.set(await count())
            await asyncio.sleep(interval)

    def sample_once(
        self, keystore: KeyStore, sessions: SessionStore, streams: MemorySessionStore
    ) -> None:
        held = len(streams)
        if isinstance(sessions, MemorySessionStore) and sessions is not streams:
            held += len(sessions)
        self.in_flight.set(held)
        reloads = int(getattr(keystore, "reloads", 0))
        errors = int(getattr(keystore, "load_errors", 0))
        if reloads > self._seen[0]:
            self.reloads.inc(reloads - self._seen[0])
        if errors > self._seen[1]:
            self.errors.inc(errors - self._seen[1])
        changed = (reloads, errors) != self._seen
        self._seen = (reloads, errors)
        # A directory keystore counts its reloads; any other is looked at once a minute.
        if changed or self._expiry_at < 0 or time.monotonic() - self._expiry_at > 60:
            self._sample_expiry(keystore)

    def _sample_expiry(self, keystore: KeyStore) -> None:
        self._expiry_at = time.monotonic()
        try:
            names = set(keystore.names())
            expiries = {name: _earliest_expiry(keystore, name) for name in names}
        except KeystoreError:
            return
        for gone in self._expiry_names - names:
            self.expiry.remove(gone)
        self._expiry_names = names
        for name, moment in expiries.items():
            if moment is not None:
                self.expiry.labels(name).set(moment)


def _earliest_expiry(keystore: KeyStore, name: str) -> float | None:
    try:
        chain = keystore.credential(name).certificate_chain
    except KeystoreError:
        return None
    return min(c.not_valid_after_utc.timestamp() for c in chain) if chain else None


def start(listen: str | None, worker: bool) -> ServiceMetrics | None:
    """The metrics of this process when --metrics-listen is given; served here unless
    this is a worker (its supervisor serves the workers' metrics together)."""
    if listen is None:
        return None
    if worker and not os.environ.get(MULTIPROC_ENV):
        return None
    service = ServiceMetrics()
    keyops.observer = service.key_operation
    if not worker:
        ProcessCollector(registry=service.registry)
        serve_http(listen, service.registry)
    return service


def multiprocess_registry(directory: str) -> CollectorRegistry:
    """The supervisor's registry: every worker's values in `directory`, added up."""
    from prometheus_client import multiprocess  # noqa: PLC0415

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def mark_dead(pid: int, directory: str) -> None:
    """Drop a dead worker's live gauges (its counters stay in the sums)."""
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
