"""The options of `handshaker serve`, in groups, and the Settings they make."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from handshaker.api import options as option_limits
from handshaker.api import steps as servicer_limits
from handshaker.keystore import pkcs11
from handshaker.server import run
from handshaker.settings import DEFAULT_LISTEN, LOG_LEVELS, Settings


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `handshaker serve` in groups (the keystore option is the CLI's)."""
    _add_listen_arguments(
        parser.add_argument_group("listening", "where and how callers reach the service")
    )
    _add_bounds_arguments(
        parser.add_argument_group("bounds", "what a caller or a peer can make the service hold")
    )
    _add_keys_arguments(
        parser.add_argument_group("keys", "PKCS#11 tokens (the keystore itself is --keystore)")
    )
    _add_fleet_arguments(
        parser.add_argument_group(
            "fleet, logs and metrics",
            "sessions shared by replicas, worker processes, the audit trail, metrics and traces",
        )
    )


def _add_listen_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT|unix:PATH",
        help=f"where to listen (default {DEFAULT_LISTEN}; a non-loopback address needs TLS). "
        "unix:PATH is created 0600 (see --unix-socket-group) and each caller on it is "
        "unix:uid=UID of its own uid (SO_PEERCRED), with the grants of unix:gid=GID of its "
        "gid too; unix-abstract:NAME has no permissions and its callers are local",
    )
    group.add_argument(
        "--health-listen",
        metavar="HOST:PORT",
        help="also serve gRPC health checking (grpc.health.v1, nothing else) in plaintext "
        "here, for probes such as a kubelet's that cannot do mutual TLS (default: off)",
    )
    group.add_argument(
        "--tls-cert",
        type=Path,
        metavar="PEM",
        help="TLS certificate chain for the gRPC channel (default: none, plaintext gRPC)",
    )
    group.add_argument(
        "--tls-key", type=Path, metavar="PEM", help="its private key (with --tls-cert)"
    )
    group.add_argument(
        "--tls-client-ca",
        type=Path,
        metavar="PEM",
        help="require client certificates from this CA (mutual TLS; default: not required)",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback address without TLS (never in production; default off)",
    )
    group.add_argument(
        "--unix-socket-group",
        metavar="GROUP",
        help="with --listen unix:PATH: let this group connect too (socket 0660, not 0600). "
        "Each caller is still named by its own uid; grant unix:gid=GID to let every caller "
        "whose (primary) gid it is use a credential (default: owner only)",
    )


def _add_bounds_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--idle-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="free a session, and end a Handshake or Multiplex stream, that gets no bytes "
        "for this long (default 10)",
    )
    group.add_argument(
        "--handshake-timeout",
        type=float,
        default=servicer_limits.DEFAULT_HANDSHAKE_TIMEOUT,
        metavar="SECONDS",
        help="end a handshake that has not completed this long after its start, however "
        "many bytes arrive (DEADLINE_EXCEEDED; default %(default)g)",
    )
    group.add_argument(
        "--max-buffered-bytes",
        type=int,
        default=servicer_limits.DEFAULT_MAX_BUFFERED_BYTES,
        metavar="BYTES",
        help="fail a handshake (illegal_parameter) whose peer makes the service hold more "
        "than this of unfinished records and messages (default %(default)d)",
    )
    group.add_argument(
        "--max-frames-per-message",
        type=int,
        default=servicer_limits.DEFAULT_MAX_FRAMES,
        metavar="N",
        help="frames one Multiplex message may carry; the extras get INVALID_ARGUMENT "
        "(default %(default)d)",
    )
    group.add_argument(
        "--config-cache-bytes",
        type=int,
        default=option_limits.DEFAULT_CONFIG_CACHE_BYTES,
        metavar="BYTES",
        help="memory (estimated) for configs cached by their options (default %(default)d)",
    )
    group.add_argument(
        "--max-trust-anchors",
        type=int,
        default=option_limits.DEFAULT_MAX_TRUST_ANCHORS,
        metavar="N",
        help="certificates a request's inline trust anchors may hold (default %(default)d)",
    )
    group.add_argument(
        "--max-trust-anchors-bytes",
        type=int,
        default=option_limits.DEFAULT_MAX_TRUST_ANCHORS_BYTES,
        metavar="BYTES",
        help="size of a request's inline trust anchors PEM (default %(default)d)",
    )
    group.add_argument(
        "--max-sessions",
        type=int,
        default=10_000,
        metavar="N",
        help="cap on sessions in total (default %(default)d)",
    )
    group.add_argument(
        "--max-sessions-per-caller",
        type=int,
        default=1_000,
        metavar="N",
        help="cap on sessions per caller, and separately on its open Multiplex streams "
        "(default %(default)d)",
    )


def _add_keys_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--pkcs11-module",
        metavar="PATH",
        help="PKCS#11 module for key URIs without module-path (default: SoftHSM2's, if found). "
        f"The PIN comes from the URI's pin-source=file:PATH or ${pkcs11.PIN_ENV}, never a flag",
    )
    group.add_argument(
        "--pkcs11-sessions",
        type=int,
        default=pkcs11.DEFAULT_SESSIONS,
        metavar="N",
        help="logged-in sessions (and threads) per PKCS#11 token: how many token operations "
        f"run at once (default {pkcs11.DEFAULT_SESSIONS})",
    )


def _add_fleet_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--session-store",
        default="memory",
        metavar="memory|redis://HOST:PORT/DB|rediss://...|unix:///PATH.sock",
        help="where the unary API's sessions live between RPCs (default memory; Redis lets "
        "replicas share them, sealed under keys in <keystore>/session-store/keys)",
    )
    group.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N|auto",
        help="service processes on the one port (SO_REUSEPORT), under a supervisor that "
        "restarts one that dies; auto: one per CPU this process may use. More than 1 needs "
        "--session-store redis://... and a TCP --listen (default 1: no supervisor)",
    )
    group.add_argument(
        "--event-loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="the event loop each service process runs on: uvloop (less CPU per "
        "handshake), asyncio (the standard library's), or auto: uvloop when it is "
        "installed (default %(default)s)",
    )
    group.add_argument(
        "--shutdown-grace",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="on SIGTERM, how long in-flight RPCs may still run before they are cancelled "
        "(default %(default)g)",
    )
    group.add_argument(
        "--audit-log",
        default="stderr",
        metavar="FILE|stderr|off",
        help="where the audit trail goes: one JSON line per private-key use, logger "
        "handshaker.audit (default stderr)",
    )
    group.add_argument(
        "--log-level",
        choices=tuple(LOG_LEVELS),
        default="info",
        help="debug adds a line per completed handshake (default info: failures, and the "
        "stats line)",
    )
    group.add_argument(
        "--stats-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how often to log the handshake counts (default 60)",
    )
    group.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (default: off)",
    )
    group.add_argument(
        "--otlp-endpoint",
        metavar="HOST:PORT",
        help="trace the RPCs with OpenTelemetry, exported over OTLP/gRPC to this collector "
        "(needs handshaker[otel]; default: off)",
    )


def serve_command(args: argparse.Namespace, keystore: Path, keystore_uri: str | None = None) -> int:
    return run(
        Settings(
            listen=args.listen,
            keystore=keystore,
            keystore_uri=keystore_uri,
            pkcs11_module=args.pkcs11_module,
            pkcs11_sessions=args.pkcs11_sessions,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            insecure=args.insecure,
            idle_timeout=args.idle_timeout,
            max_sessions=args.max_sessions,
            max_sessions_per_caller=args.max_sessions_per_caller,
            log_level=args.log_level,
            stats_interval=args.stats_interval,
            unix_socket_group=args.unix_socket_group,
            session_store=args.session_store,
            handshake_timeout=args.handshake_timeout,
            max_buffered_bytes=args.max_buffered_bytes,
            max_frames_per_message=args.max_frames_per_message,
            config_cache_bytes=args.config_cache_bytes,
            max_trust_anchors=args.max_trust_anchors,
            max_trust_anchors_bytes=args.max_trust_anchors_bytes,
            audit_log=args.audit_log,
            health_listen=args.health_listen,
            workers=args.workers,
            grace_seconds=args.shutdown_grace,
            event_loop=args.event_loop,
            metrics_listen=args.metrics_listen,
            otlp_endpoint=args.otlp_endpoint,
        )
    )


def _workers(text: str) -> int:
    """--workers N, or auto: the CPUs this process may run on."""
    if text == "auto":
        return len(os.sched_getaffinity(0))
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or auto: {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return count
