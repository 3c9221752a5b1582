"""What `handshaker serve` runs with: its settings, their defaults, and the names they use."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from handshaker.api import options as option_limits
from handshaker.api import steps as servicer_limits
from handshaker.keystore import pkcs11

DEFAULT_LISTEN = "127.0.0.1:50051"

# The pipe a worker reports "listening" on to its supervisor (workers.py).
READY_FD_ENV = "HANDSHAKER_READY_FD"

LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str = DEFAULT_LISTEN
    keystore: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    insecure: bool = False
    idle_timeout: float = 10.0
    max_sessions: int = 10_000
    max_sessions_per_caller: int = 1_000
    grace_seconds: float = 5.0
    # "auto": uvloop when it is installed, else asyncio's own loop (run_event_loop).
    event_loop: str = "auto"
    log_level: str = "info"
    stats_interval: float = 60.0
    unix_socket_group: str | None = None
    # "memory", or redis://HOST:PORT/DB, rediss://..., unix:///path.sock
    session_store: str = "memory"
    # The keystore URI (dir:PATH, memory:, a plugin's); None: the `keystore` directory.
    keystore_uri: str | None = None
    pkcs11_module: str | None = None
    pkcs11_sessions: int = pkcs11.DEFAULT_SESSIONS
    handshake_timeout: float = servicer_limits.DEFAULT_HANDSHAKE_TIMEOUT
    max_buffered_bytes: int = servicer_limits.DEFAULT_MAX_BUFFERED_BYTES
    max_frames_per_message: int = servicer_limits.DEFAULT_MAX_FRAMES
    config_cache_bytes: int = option_limits.DEFAULT_CONFIG_CACHE_BYTES
    max_trust_anchors: int = option_limits.DEFAULT_MAX_TRUST_ANCHORS
    max_trust_anchors_bytes: int = option_limits.DEFAULT_MAX_TRUST_ANCHORS_BYTES
    # "stderr", "off", or a file path.
    audit_log: str = "stderr"
    # Service processes on one port (workers.py); the supervisor's workers have an index.
    workers: int = 1
    worker_index: int | None = None
    reuse_port: bool = False
    # HOST:PORT for Prometheus metrics (api/metrics.py); an OTLP gRPC endpoint for traces.
    metrics_listen: str | None = None
    otlp_endpoint: str | None = None
    # HOST:PORT of a plaintext listener serving only grpc.health.v1; None: none.
    health_listen: str | None = None
