"""bench/service.py --hsm: HSM-backed against file-backed server handshakes, two service
processes on one development CA, one serving an ECDSA P-256 key in a SoftHSM2 token made
for the run, the other the same key type from a file; the same load, rounds alternating."""

from __future__ import annotations

import argparse
import os
import shutil
import ssl
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from service_harness import (
    GoLoad,
    Handshake,
    MultiplexHandshake,
    Peer,
    Service,
    ServiceRound,
    SslPeer,
    percentile,
    service_round,
    stream_handshake,
    unary_handshake,
)

# --- HSM-backed against file-backed ------------------------------------------------------

HSM_PIN = "bench-pin-1234"
HSM_TOKEN = "bench"


def make_softhsm_token(folder: Path) -> dict[str, str]:
    """A SoftHSM2 token for this run in its own directory; the environment that reaches it."""
    util = shutil.which("softhsm2-util")
    if util is None:
        raise SystemExit("--hsm needs SoftHSM2: apt-get install softhsm2")
    tokens = folder / "tokens"
    tokens.mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = {"SOFTHSM2_CONF": str(conf), "HANDSHAKER_PKCS11_PIN": HSM_PIN}
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            HSM_TOKEN,
            "--so-pin",
            "so-" + HSM_PIN,
            "--pin",
            HSM_PIN,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, **env},
    )
    return env


def _summary(rounds: list[ServiceRound]) -> dict[str, float]:
    latencies = [latency for r in rounds for latency in r.latencies]
    handshakes = sum(r.handshakes for r in rounds)
    return {
        "handshakes_per_s": round(statistics.median(r.rate for r in rounds), 1),
        "p50_ms": round(1000 * percentile(latencies, 0.50), 2),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 2),
        "service_cpu_ms_per_handshake": round(
            1000 * sum(r.service_cpu_seconds for r in rounds) / handshakes, 3
        ),
    }


async def measure_hsm(args: argparse.Namespace, folder: Path) -> dict[str, object]:
    token_env = make_softhsm_token(folder)
    file_keystore = folder / "file-keystore"
    services: dict[str, Service] = {}
    try:
        _start_hsm_services(args, folder, token_env, services)
        ca_file = file_keystore / "dev-ca" / "ca.crt"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        version = ssl.TLSVersion.TLSv1_2 if args.hsm_tls == "1.2" else ssl.TLSVersion.TLSv1_3
        context.minimum_version = context.maximum_version = version
        context.load_verify_locations(ca_file)

        def new_peer() -> Peer:
            return SslPeer(context)

        closers: list[Callable[[], Awaitable[None]]] = []
        loads = {
            kind: _hsm_load(
                args, folder / kind, service, ca_file, new_peer=new_peer, closers=closers
            )
            for kind, service in services.items()
        }
        for kind in services:
            await loads[kind](0.5)
        rounds: dict[str, list[ServiceRound]] = {kind: [] for kind in services}
        for number in range(args.rounds):
            for kind in services:
                rounds[kind].append(await loads[kind](args.seconds))
            if not args.json:
                print(
                    f"round {number + 1}: "
                    + ", ".join(f"{kind} {r[-1].rate:.0f}/s" for kind, r in rounds.items()),
                    file=sys.stderr,
                )
        for close in closers:
            await close()
    finally:
        codes = {kind: service.stop() for kind, service in services.items()}
    return _hsm_result(args, rounds, codes)


def _hsm_load(
    args: argparse.Namespace,
    folder: Path,
    service: Service,
    ca_file: Path,
    *,
    new_peer: Callable[[], Peer],
    closers: list[Callable[[], Awaitable[None]]],
) -> Callable[[float], Awaitable[ServiceRound]]:
    """One round of the chosen load on `service`; what must be closed after, in `closers`."""
    folder.mkdir(exist_ok=True)
    if args.load == "go":
        go_load = GoLoad(folder, service, ca_file, args.concurrency)
        go_load.tls = args.hsm_tls

        async def go_round(seconds: float) -> ServiceRound:
            return go_load.round(args.hsm_api, seconds)

        return go_round
    channel = grpc.aio.insecure_channel(service.address)
    closers.append(lambda: channel.close(None))
    stub = pb_grpc.HandshakerStub(channel)  # type: ignore[no-untyped-call]
    handshakes: dict[str, Handshake] = {"stream": stream_handshake, "unary": unary_handshake}
    if args.hsm_api == "multiplex":
        multiplex = MultiplexHandshake(service.address)
        closers.append(multiplex.client.close)
        handshakes["multiplex"] = multiplex
    handshake = handshakes[args.hsm_api]

    async def python_round(seconds: float) -> ServiceRound:
        return await service_round(
            stub,
            handshake,
            new_peer=new_peer,
            service=service,
            seconds=seconds,
            concurrency=args.concurrency,
        )

    return python_round


def _start_hsm_services(
    args: argparse.Namespace, folder: Path, token_env: dict[str, str], services: dict[str, Service]
) -> None:
    """The file-backed service, then the HSM-backed one on a token key under the same CA
    (into `services` as each starts, so a failure stops what started)."""
    file_keystore = folder / "file-keystore"
    extra = ["--max-sessions-per-caller", str(max(1000, 4 * args.concurrency))]
    # The file-backed service makes the development CA and its `localhost` (ECDSA P-256).
    services["file"] = Service(file_keystore, extra)
    hsm_keystore = folder / "hsm-keystore"
    hsm_keystore.mkdir(mode=0o700)
    # The same CA for both, so one TLS client configuration trusts both services.
    shutil.copytree(file_keystore / "dev-ca", hsm_keystore / "dev-ca")
    subprocess.run(
        [
            str(Path(sys.executable).parent / "handshaker"),
            "keys",
            "generate",
            "localhost",
            "--san",
            "DNS:localhost",
            "--san",
            "IP:127.0.0.1",
            "--in",
            f"pkcs11:token={HSM_TOKEN}",
            "--key-type",
            "ecdsa-p256",
            "--allow",
            "local",
            "--default",
            "--keystore",
            str(hsm_keystore),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, **token_env},
    )
    services["hsm"] = Service(
        hsm_keystore, [*extra, "--pkcs11-sessions", str(args.pkcs11_sessions)], env=token_env
    )


def _hsm_result(
    args: argparse.Namespace, rounds: dict[str, list[ServiceRound]], codes: dict[str, int]
) -> dict[str, object]:
    file_figures = _summary(rounds["file"])
    hsm_figures = _summary(rounds["hsm"])
    result: dict[str, object] = {
        "benchmark": "hsm_backed_against_file_backed_server_handshakes",
        "hsm_handshakes_per_s": hsm_figures["handshakes_per_s"],
        "file_handshakes_per_s": file_figures["handshakes_per_s"],
        "ratio": round(hsm_figures["handshakes_per_s"] / file_figures["handshakes_per_s"], 3),
        # What a token signature costs the service process: the rate hides it while the
        # machine, not the service, is the limit.
        "cpu_ratio": round(
            hsm_figures["service_cpu_ms_per_handshake"]
            / file_figures["service_cpu_ms_per_handshake"],
            3,
        ),
        **{f"hsm_{name}": value for name, value in hsm_figures.items()},
        **{f"file_{name}": value for name, value in file_figures.items()},
        "key_type": "ecdsa-p256",
        "tls": args.hsm_tls,
        "token": "SoftHSM2",
        "pkcs11_sessions": args.pkcs11_sessions,
        "api": args.hsm_api,
        "load": args.load,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "round_seconds": args.seconds,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "service_exit_codes": codes,
    }
    return result
