"""Benchmark: server-role handshakes per second through one service process vs the engine.

The bench starts `handshaker serve` on 127.0.0.1 with a fresh keystore (its
development `localhost` credential), then runs server-role handshakes through it
from many concurrent callers, over the Handshake stream (one stream per
connection), the unary API (StartServer, Feed, Abort) and the Multiplex stream
(many connections per stream, frames batched).

The callers and their TLS clients are the load generator:
- `--load go` (the default when Go is installed): clients/go/cmd/loadgen, Go
  callers using the Go client library with crypto/tls as the TLS client. Cheap,
  so the cores this machine has go mostly to the service under test.
- `--load python`: asyncio callers in this process (grpc.aio, the Python
  client's multiplexer), with Python's ssl over MemoryBIO as the TLS client, or
  with `--peer engine` the engine's ClientConnection. Python's ssl client costs
  more per handshake than the service's server side, so this mode measures the
  load generator as much as the service.

The baseline, measured in the same run and rounds alternating with the service's:
the engine's server-side rate in this process with the very ServerConfig the
service builds, timing only the server's calls (both sides run in memory; the
client's calls are timed apart and reported as the client-side cost).

With redis-server on the machine (and unless --no-redis), a second service process
on the same keystore with `--session-store` on a redis-server started here (Unix
socket, no disk) runs the unary API in the same rounds: `redis_ratio` is its rate
over the memory store's (every unary step loads, restores, seals and saves), and
`unary_redis_store_cpu_ms_per_handshake` redis-server's own CPU per handshake (it runs
on the same cores as the service and the load).

With redis-server (and unless --no-workers), a `serve --workers 2` service on that Redis
runs the Handshake stream in the same rounds against the one-process service, both over
WORKER_CONNS connections (the kernel spreads connections, not RPCs, over the workers):
`workers2_ratio` is the two workers' rate over the one process's, and
`workers{1,2}_service_cpu_seconds_per_handshake` the service's CPU per handshake (the
process and all its children, from /proc/PID/stat).

The callers keep 64 handshakes in flight by default: a throughput figure needs
the service saturated (at 32, one service process was measured 84-87% busy on
the Multiplex stream, so the rate there also measures round trips).

The service process's CPU time per handshake (from /proc) is reported next to
the engine's server time, and the load generator's next to it. The last line
printed is one JSON object.

    python bench/service.py [--json] [--seconds S] [--rounds N] [--concurrency C]
                            [--load go|python] [--peer ssl|engine] [--no-redis] [--no-workers]

With `--hsm` it measures instead HSM-backed against file-backed handshakes: two
service processes, one serving a credential whose ECDSA P-256 key is in a SoftHSM2
token made for the run (`keys generate --in pkcs11:`), the other the same key type
from a file, with the same development CA, the same load and API, rounds
alternating. The file-backed service is the baseline.

    python bench/service.py --hsm [--hsm-api stream|unary|multiplex] [--hsm-tls 1.3|1.2]
                            [--pkcs11-sessions N]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import ssl
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from cryptography import x509
from handshaker.api import ConfigFactory
from handshaker.keystore import LOCAL, DirectoryKeyStore
from handshaker.tls import (
    ClientConfig,
    NamedGroup,
    ServerConfig,
    compiled,
)
from handshaker_wire.v1 import handshaker_pb2 as pb
from handshaker_wire.v1 import handshaker_pb2_grpc as pb_grpc
from service_harness import (
    APIS,
    EnginePeer,
    EngineTimes,
    GoLoad,
    Handshake,
    MultiplexHandshake,
    PeerFactory,
    RedisProcess,
    Service,
    ServiceRound,
    SslPeer,
    engine_paced_round,
    engine_round,
    percentile,
    process_cpu_seconds,
    service_round,
    stream_handshake,
    unary_handshake,
)
from service_hsm import measure_hsm

COMPLETE = pb.HANDSHAKE_STATE_COMPLETE
NEED_INPUT = pb.HANDSHAKE_STATE_NEED_INPUT
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the run ------------------------------------------------------------------------------


# Open-loop rounds at half the saturated Multiplex rate, pooled for its p50 and p99.
PACED_ROUNDS = 4


def half_rate_latency(
    go_load: GoLoad,
    rate: float,
    *,
    rounds: int,
    seconds: float,
    configs: tuple[ClientConfig, ServerConfig],
    engine_rounds: list[EngineTimes],
) -> dict[str, object]:
    """Multiplex open loop at `rate` (half the saturated rate), rounds pooled: p50, p99,
    each round's p99, the service's CPU per handshake, and the engine's paced cost."""
    # Several rounds: a p99 over one 2 s round (about 1,200 handshakes) rests on its
    # 12 slowest, and moved by several ms between runs.
    paced = [go_load.round("multiplex", seconds, rate=rate) for _ in range(rounds)]
    latencies = [latency for r in paced for latency in r.latencies]
    # The engine's server side at the same rate in this process, against its
    # back-to-back time: how much slower the machine runs the same work paced.
    engine_paced = engine_paced_round(*configs, rate, seconds)
    paced_server_ms = 1000 * engine_paced.server_seconds / engine_paced.handshakes
    back_to_back_ms = 1000 * statistics.median(
        t.server_seconds / t.handshakes for t in engine_rounds
    )
    return {
        "offered_per_s": round(rate, 1),
        "achieved_per_s": round(statistics.median(r.rate for r in paced), 1),
        "p50_ms": round(1000 * percentile(latencies, 0.50), 2),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 2),
        "handshakes": len(latencies),
        # Each paced round's own p99: how much one round's figure moves.
        "p99_ms_by_round": [round(1000 * percentile(r.latencies, 0.99), 2) for r in paced],
        # The service's CPU per handshake at this rate (at saturation it is
        # multiplex_service_cpu_ms_per_handshake): batching lost, caches cold.
        "service_cpu_ms_per_handshake": round(
            1000 * sum(r.service_cpu_seconds for r in paced) / len(latencies), 3
        ),
        "engine_server_ms_per_handshake_paced": round(paced_server_ms, 3),
        "engine_paced_over_back_to_back": round(paced_server_ms / back_to_back_ms, 3),
    }


def _peer_factory(
    args: argparse.Namespace, ca_file: Path, client_config: ClientConfig
) -> PeerFactory:
    """The TLS client of each handshake the Python load makes: Python's ssl or the engine."""
    if args.peer == "ssl":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_verify_locations(ca_file)
        return lambda: SslPeer(context)
    return lambda: EnginePeer(client_config)


def _baseline_client_config(
    args: argparse.Namespace, go_load: GoLoad | None, client_config: ClientConfig
) -> ClientConfig:
    """The baseline's client offers only the group the load's TLS clients negotiate, so
    both sides of the comparison do the same key exchange."""
    if go_load is not None:
        group = go_load.group
    elif args.peer == "ssl":
        group = NamedGroup.X25519  # Python's ssl (OpenSSL 3.0) offers no hybrid group
    else:
        group = client_config.key_share_groups[0]
    return dataclasses.replace(client_config, supported_groups=(group,), key_share_groups=(group,))


@dataclasses.dataclass
class _Contenders:
    """The APIs a run measures and how one round of each is driven: the Go load (or the
    Python one) on the memory-store service, the unary API on the Redis-store service,
    and the stream API on one process against `--workers 2`."""

    args: argparse.Namespace
    service: Service
    stub: pb_grpc.HandshakerStub
    handshakes: dict[str, Handshake]
    new_peer: PeerFactory
    go_load: GoLoad | None
    fleet: WorkersContenders
    redis_service: Service | None = None
    redis_stub: pb_grpc.HandshakerStub | None = None
    redis_load: GoLoad | None = None
    # redis-server's pid: its CPU in each unary_redis round (it shares this machine's cores).
    redis_pid: int | None = None

    @property
    def apis(self) -> tuple[str, ...]:
        # "unary_redis": the unary API on the service whose sessions are in Redis.
        # "stream_workers1"/"stream_workers2": the stream API over WORKER_CONNS connections
        # to one service process, and to a `--workers 2` service.
        redis = ("unary_redis",) if self.redis_service is not None else ()
        return (*APIS, *redis, *self.fleet.targets)

    async def round(self, api: str, seconds: float) -> ServiceRound:
        if api in self.fleet.targets:
            return await self.fleet.round(api, seconds, self.args.concurrency, self.new_peer)
        target, target_stub, load = self.service, self.stub, self.go_load
        if api == "unary_redis":
            assert self.redis_service is not None and self.redis_stub is not None
            target, target_stub, load, api = (
                self.redis_service, self.redis_stub, self.redis_load, "unary",
            )  # fmt: skip
        store = self.redis_pid if target is self.redis_service else None
        store_before = process_cpu_seconds(store) if store is not None else 0.0
        if load is not None:
            measured = load.round(api, seconds)
        else:
            measured = await service_round(
                target_stub,
                self.handshakes[api],
                new_peer=self.new_peer,
                service=target,
                seconds=seconds,
                concurrency=self.args.concurrency,
            )
        if store is not None:
            measured.store_cpu_seconds = process_cpu_seconds(store) - store_before
        return measured


def _configs(keystore: Path) -> tuple[ClientConfig, ServerConfig]:
    """The baseline's client config (trusting the keystore's development CA) and the very
    server config the service builds for ServerOptions() on this keystore."""
    dev_ca = x509.load_pem_x509_certificate((keystore / "dev-ca" / "ca.crt").read_bytes())
    client_config = ClientConfig(server_name="localhost", trust_anchors=(dev_ca,))
    return client_config, ConfigFactory(DirectoryKeyStore(keystore)).server(
        pb.ServerOptions(), LOCAL
    )


def _half_rate(
    args: argparse.Namespace,
    go_load: GoLoad | None,
    service_rounds: dict[str, list[ServiceRound]],
    configs: tuple[ClientConfig, ServerConfig],
    engine_rounds: list[EngineTimes],
) -> dict[str, object] | None:
    """Latency at half the saturated Multiplex rate, open loop (Go load only)."""
    if go_load is None:
        return None
    saturated = statistics.median(r.rate for r in service_rounds["multiplex"])
    return half_rate_latency(
        go_load,
        saturated / 2,
        rounds=max(PACED_ROUNDS, args.rounds),
        seconds=args.seconds,
        configs=configs,
        engine_rounds=engine_rounds,
    )


async def measure(
    args: argparse.Namespace,
    keystore: Path,
    service: Service,
    folder: Path,
    redis_service: Service | None = None,
    *,
    workers_service: Service | None = None,
    redis_pid: int | None = None,
) -> dict[str, object]:
    ca_file = keystore / "dev-ca" / "ca.crt"
    client_config, server_config = _configs(keystore)
    multiplex = MultiplexHandshake(service.address)
    go_load = GoLoad(folder, service, ca_file, args.concurrency) if args.load == "go" else None
    new_peer = _peer_factory(args, ca_file, client_config)
    redis_channel = grpc.aio.insecure_channel(redis_service.address) if redis_service else None
    async with grpc.aio.insecure_channel(service.address) as channel:
        contenders = _Contenders(
            args,
            service,
            pb_grpc.HandshakerStub(channel),  # type: ignore[no-untyped-call]
            {"stream": stream_handshake, "unary": unary_handshake, "multiplex": multiplex},
            new_peer,
            go_load,
            WorkersContenders(service, workers_service, go_load),
        )
        if redis_service is not None and redis_channel is not None:
            contenders.redis_service = redis_service
            contenders.redis_pid = redis_pid
            contenders.redis_stub = pb_grpc.HandshakerStub(redis_channel)  # type: ignore[no-untyped-call]
            contenders.redis_load = go_load.for_service(redis_service) if go_load else None
        for api in contenders.apis:
            await contenders.round(api, 0.5)
        client_config = _baseline_client_config(args, go_load, client_config)
        group = client_config.key_share_groups[0]
        if engine_round(client_config, server_config, 0.3).group != group:
            raise RuntimeError(f"the baseline did not negotiate group {group:#06x}")
        configs = (client_config, server_config)
        engine_rounds, service_rounds = await _alternate(
            args, contenders.apis, contenders.round, configs
        )
        half_rate = _half_rate(args, go_load, service_rounds, configs, engine_rounds)
        if redis_channel is not None:
            await redis_channel.close(None)
        await contenders.fleet.close()
    await multiplex.client.close()
    return _result(
        args, service_rounds, engine_rounds, half_rate, group=group, log_lines=service.log_lines
    )


async def _alternate(
    args: argparse.Namespace,
    apis: tuple[str, ...],
    api_round: Callable[[str, float], Awaitable[ServiceRound]],
    configs: tuple[ClientConfig, ServerConfig],
) -> tuple[list[EngineTimes], dict[str, list[ServiceRound]]]:
    """args.rounds rounds, each the engine baseline and then every API in turn."""
    engine_rounds: list[EngineTimes] = []
    service_rounds: dict[str, list[ServiceRound]] = {api: [] for api in apis}
    for number in range(args.rounds):
        engine_rounds.append(engine_round(*configs, args.seconds))
        for api in apis:
            service_rounds[api].append(await api_round(api, args.seconds))
        if not args.json:
            engine = engine_rounds[-1]
            print(
                f"round {number + 1}: engine server side "
                f"{engine.handshakes / engine.server_seconds:.0f}/s; service "
                + ", ".join(
                    f"{api} {rounds[-1].rate:.0f}/s" for api, rounds in service_rounds.items()
                ),
                file=sys.stderr,
            )
    return engine_rounds, service_rounds


def _result(
    args: argparse.Namespace,
    service_rounds: dict[str, list[ServiceRound]],
    engine_rounds: list[EngineTimes],
    half_rate: dict[str, object] | None,
    *,
    group: int,
    log_lines: int,
) -> dict[str, object]:
    """The JSON line: the headline figures, the run's settings, then every API's figures."""
    per_api = _per_api(service_rounds)
    result = _figures(per_api, engine_rounds, half_rate)
    result.update(
        {
            "load": args.load,
            "group": NamedGroup(group).name,
            "peer": "go crypto/tls" if args.load == "go" else args.peer,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "round_seconds": args.seconds,
            "cores": os.cpu_count(),
            "service_log_lines": log_lines,
            "python": sys.version.split()[0],
            "engine_build": compiled.DESCRIPTION,
        }
    )
    for api, figures in per_api.items():
        for name, value in figures.items():
            result[f"{api}_{name}"] = round(
                value, 3 if "cpu" in name else 1 if "per_s" in name else 2
            )
    return result


def _per_api(service_rounds: dict[str, list[ServiceRound]]) -> dict[str, dict[str, float]]:
    """Each API's rate (median round), p50/p99 over all its handshakes, CPU per handshake."""
    per_api: dict[str, dict[str, float]] = {}
    for api, rounds in service_rounds.items():
        latencies = [latency for r in rounds for latency in r.latencies]
        handshakes = sum(r.handshakes for r in rounds)
        per_api[api] = {
            "handshakes_per_s": statistics.median(r.rate for r in rounds),
            "p50_ms": 1000 * percentile(latencies, 0.50),
            "p99_ms": 1000 * percentile(latencies, 0.99),
            "service_cpu_ms_per_handshake": 1000
            * sum(r.service_cpu_seconds for r in rounds)
            / handshakes,
            "bench_process_cpu_ms_per_handshake": 1000
            * sum(r.bench_cpu_seconds for r in rounds)
            / handshakes,
        }
        if any(r.store_cpu_seconds for r in rounds):
            # redis-server's CPU per handshake, on the same cores as the service and load.
            per_api[api]["store_cpu_ms_per_handshake"] = (
                1000 * sum(r.store_cpu_seconds for r in rounds) / handshakes
            )
    return per_api


def _over(
    per_api: dict[str, dict[str, float]], top: str, bottom: str, figure: str = "handshakes_per_s"
) -> float | None:
    """per_api[top][figure] / per_api[bottom][figure]; None when either did not run."""
    if top not in per_api or bottom not in per_api:
        return None
    return round(per_api[top][figure] / per_api[bottom][figure], 3)


def _figures(
    per_api: dict[str, dict[str, float]],
    engine_rounds: list[EngineTimes],
    half_rate: dict[str, object] | None,
) -> dict[str, object]:
    """The headline figures: the best API against the engine, and the ratios."""
    engine_rate = statistics.median(t.handshakes / t.server_seconds for t in engine_rounds)
    client_ms = statistics.median(1000 * t.client_seconds / t.handshakes for t in engine_rounds)
    best = max(APIS, key=lambda api: per_api[api]["handshakes_per_s"])
    service_rate = per_api[best]["handshakes_per_s"]
    engine_server_ms = 1000 / engine_rate
    workers_cpu = {
        name: round(per_api[api]["service_cpu_ms_per_handshake"] / 1000, 6)
        if api in per_api
        else None
        for name, api in (("workers2", "stream_workers2"), ("workers1", "stream_workers1"))
    }
    return {
        "benchmark": "server_role_handshakes_through_one_service_process",
        "service_handshakes_per_s": round(service_rate, 1),
        "engine_handshakes_per_s": round(engine_rate, 1),
        "ratio": round(service_rate / engine_rate, 3),
        "best_api": best,
        "p50_ms": round(per_api[best]["p50_ms"], 2),
        "p99_ms": round(per_api[best]["p99_ms"], 2),
        # Multiplex at half its saturated rate, open loop: the latency a caller sees
        # with headroom left (target p99 < 10 ms).
        "multiplex_half_rate": half_rate,
        "engine_server_ms_per_handshake": round(engine_server_ms, 3),
        "engine_client_ms_per_handshake": round(client_ms, 3),
        # Service CPU per handshake against the engine's server time: the service's
        # overhead with the client's share of the cores taken out.
        "cpu_ratio": round(
            engine_server_ms / min(f["service_cpu_ms_per_handshake"] for f in per_api.values()), 3
        ),
        # The unary API with sessions in Redis over the same API on the memory store.
        "redis_ratio": _over(per_api, "unary_redis", "unary"),
        "redis_cpu_ratio": _over(per_api, "unary", "unary_redis", "service_cpu_ms_per_handshake"),
        # Two worker processes on one port over one (the stream API, the same connections).
        "workers2_ratio": _over(per_api, "stream_workers2", "stream_workers1"),
        # The service's CPU (the supervisor and every worker, from /proc) per handshake.
        "workers2_service_cpu_seconds_per_handshake": workers_cpu["workers2"],
        "workers1_service_cpu_seconds_per_handshake": workers_cpu["workers1"],
    }


WORKER_CONNS = 8


class WorkersContenders:
    """The stream API over WORKER_CONNS connections: to the one-process service, and to
    the `--workers 2` service (the kernel spreads connections, not RPCs, over workers)."""

    def __init__(
        self, service: Service, workers_service: Service | None, go_load: GoLoad | None
    ) -> None:
        self.channels: list[grpc.aio.Channel] = []
        self.targets: dict[str, tuple[Service, list[pb_grpc.HandshakerStub], GoLoad | None]] = {}
        if workers_service is None:
            return
        for name, target in (("stream_workers1", service), ("stream_workers2", workers_service)):
            load = go_load.for_service(target, WORKER_CONNS) if go_load is not None else None
            self.targets[name] = (target, self._stubs(target.address), load)

    def _stubs(self, address: str) -> list[pb_grpc.HandshakerStub]:
        stubs = []
        for _ in range(WORKER_CONNS):
            # A subchannel pool of its own: a connection of its own.
            channel = grpc.aio.insecure_channel(
                address, options=[("grpc.use_local_subchannel_pool", 1)]
            )
            self.channels.append(channel)
            stubs.append(pb_grpc.HandshakerStub(channel))  # type: ignore[no-untyped-call]
        return stubs

    async def round(
        self, name: str, seconds: float, concurrency: int, new_peer: PeerFactory
    ) -> ServiceRound:
        target, stubs, load = self.targets[name]
        if load is not None:
            return load.round("stream", seconds)
        return await service_round(
            stubs,
            stream_handshake,
            new_peer=new_peer,
            service=target,
            seconds=seconds,
            concurrency=concurrency,
        )

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close(None)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds for each contender")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="handshakes in flight (default 64: enough to keep one service process busy, so "
        "the rate is its capacity rather than a round-trip limit)",
    )
    parser.add_argument(
        "--load",
        choices=("go", "python"),
        default="go" if shutil.which("go") else "python",
        help="the load generator: Go callers with crypto/tls, or Python ones here",
    )
    parser.add_argument(
        "--peer",
        choices=("ssl", "engine"),
        default="ssl",
        help="the TLS client Python callers relay for (with --load python)",
    )
    parser.add_argument(
        "--no-redis",
        action="store_true",
        help="skip the unary API on a Redis session store (redis_ratio)",
    )
    parser.add_argument(
        "--no-workers",
        action="store_true",
        help="skip `serve --workers 2` against one process (workers2_ratio; needs redis-server)",
    )
    parser.add_argument(
        "--hsm",
        action="store_true",
        help="measure HSM-backed (a SoftHSM2 token key) against file-backed handshakes",
    )
    parser.add_argument("--hsm-api", choices=APIS, default="stream", help="the API for --hsm")
    parser.add_argument(
        "--hsm-tls", choices=("1.3", "1.2"), default="1.3", help="the TLS version for --hsm"
    )
    parser.add_argument(
        "--pkcs11-sessions", type=int, default=4, help="the HSM service's --pkcs11-sessions"
    )
    return parser


def _service_bench(args: argparse.Namespace, folder: Path) -> dict[str, object]:
    """The services (memory store; Redis store and two workers when redis-server is here)
    measured in one run; their exit codes in the result."""
    keystore = folder / "keystore"
    caps = ["--max-sessions-per-caller", str(max(1000, 4 * args.concurrency))]
    service = Service(keystore, caps)
    redis: RedisProcess | None = None
    others: dict[str, Service] = {}
    try:
        if not (args.no_redis and args.no_workers) and shutil.which("redis-server"):
            redis = RedisProcess(folder)
        if redis is not None and not args.no_redis:
            others["redis_service"] = Service(keystore, [*caps, "--session-store", redis.url])
        if redis is not None and not args.no_workers:
            # More than one worker needs the shared store (streams stay in each worker).
            others["workers_service"] = Service(
                keystore, [*caps, "--session-store", redis.url, "--workers", "2"]
            )
        result = asyncio.run(
            measure(
                args,
                keystore,
                service,
                folder,
                others.get("redis_service"),
                workers_service=others.get("workers_service"),
                redis_pid=redis.process.pid if redis is not None else None,
            )
        )
    finally:
        codes = {"service": service.stop()}
        codes.update((name, other.stop()) for name, other in others.items())
        if redis is not None:
            redis.stop()
    result.update({f"{name}_exit_code": code for name, code in codes.items()})
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.hsm:
        with tempfile.TemporaryDirectory(prefix="handshaker-bench-hsm-") as folder:
            print(json.dumps(asyncio.run(measure_hsm(args, Path(folder)))))
        return 0
    with tempfile.TemporaryDirectory(prefix="handshaker-bench-") as folder:
        print(json.dumps(_service_bench(args, Path(folder))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
