"""--metrics-listen: /metrics scraped over real HTTP while real handshakes run; --otlp-endpoint.

The counters are read from the Prometheus text format with prometheus-client's
own parser; one process serves its metrics itself, a supervisor those of its
workers (multiprocess mode). Tracing is switched on against an OTLP collector
run in the test, which must receive the RPCs' spans.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from handshaker import tracing
from handshaker.api.metrics import ServiceMetrics
from handshaker.keystore import AsyncKey, DirectoryKeyStore, KeyOperationError, keyops
from handshaker.tls.keyops import OperationKind, PrivateKeyOperation
from handshaker_wire.v1 import handshaker_pb2 as pb
from prometheus_client.parser import text_string_to_metric_families
from redis_kit import RedisServer
from service_kit import (
    COMPLETE,
    FAILED,
    ServiceProcess,
    StartService,
    StreamHandshake,
    UnaryHandshake,
    handshaker_stub,
    relay,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def client_options(service: ServiceProcess, name: str = "localhost") -> pb.ClientOptions:
    return pb.ClientOptions(server_name=name, trust_anchors_pem=service.dev_ca_pem)


def run_handshake(service: ServiceProcess, api: str = "unary", name: str = "localhost") -> int:
    with service.channel() as channel:
        stub = handshaker_stub(channel)
        make = StreamHandshake if api == "stream" else UnaryHandshake
        with make(stub, client_options(service, name)) as c, make(stub, pb.ServerOptions()) as s:
            last_c, _ = relay(c, s)
        return last_c.state


COMPLETED = {"version": "tls1.3", "result": "completed", "alert": ""}


@pytest.fixture
def metered(start_service: StartService) -> tuple[ServiceProcess, str]:
    address = f"127.0.0.1:{free_port()}"
    return start_service("--metrics-listen", address), address


def test_handshake_counters_and_latency_move_after_real_handshakes(
    metered: tuple[ServiceProcess, str],
) -> None:
    service, address = metered
    before = scrape(address)
    assert run_handshake(service, "unary") == COMPLETE
    assert run_handshake(service, "stream") == COMPLETE
    after = scrape(address)
    for role in ("client", "server"):
        total = "handshaker_handshakes_total"
        assert (
            value(after, total, role=role, **COMPLETED)
            == value(before, total, role=role, **COMPLETED) + 2
        )
        count = "handshaker_handshake_duration_seconds_count"
        assert value(after, count, role=role, result="completed") == 2
        assert value(after, "handshaker_handshake_duration_seconds_sum", role=role,
                     result="completed") > 0  # fmt: skip
    assert ("process_cpu_seconds_total", ()) in after


def test_a_failed_handshake_is_counted_with_its_alert(
    metered: tuple[ServiceProcess, str],
) -> None:
    service, address = metered
    # The client refuses the certificate: it does not name this server.
    assert run_handshake(service, "stream", name="not-this-host.test") == FAILED
    after = scrape(address)
    failed = {
        labels: v
        for (name, labels), v in after.items()
        if name == "handshaker_handshakes_total" and ("result", "failed") in labels
    }
    client = [dict(labels) for labels in failed if ("role", "client") in labels]
    assert client and client[0]["alert"] == "bad_certificate", failed
    assert value(after, "handshaker_handshake_duration_seconds_count", role="client",
                 result="failed") == 1  # fmt: skip


def test_sessions_in_flight_keystore_reloads_and_certificate_expiry(
    metered: tuple[ServiceProcess, str],
) -> None:
    service, address = metered
    leaf = x509.load_pem_x509_certificate((service.keystore / "localhost" / "tls.crt").read_bytes())
    samples = scrape(address)
    expiry = "handshaker_certificate_expiry_timestamp_seconds"
    assert value(samples, expiry, credential="localhost") == pytest.approx(
        leaf.not_valid_after_utc.timestamp()
    )
    with service.channel() as channel:
        UnaryHandshake(handshaker_stub(channel), client_options(service)).step()
        eventually(lambda: value(scrape(address), "handshaker_sessions_in_flight") == 1)
    # A new credential is a keystore reload, and has its expiry too.
    DirectoryKeyStore(service.keystore).generate("other", ["DNS:other.test"], "ecdsa-p256")
    eventually(lambda: value(scrape(address), expiry, credential="other") > 0)
    assert value(scrape(address), "handshaker_keystore_reloads_total") >= 1
    # A credential that does not load is a keystore error (logged once, counted once).
    (service.keystore / "broken").mkdir()
    (service.keystore / "broken" / "tls.crt").write_text("not a certificate")
    eventually(lambda: value(scrape(address), "handshaker_keystore_errors_total") >= 1)


class TokenKey(AsyncKey):
    """An awaited key whose backend answers after a few milliseconds, or fails."""

    def __init__(self, fails: bool) -> None:
        super().__init__("k", (0x0403,), backend="pkcs11:token=t")
        self.fails = fails

    async def sign(self, scheme: int, message: bytes) -> bytes:
        await asyncio.sleep(0.005)
        if self.fails:
            raise KeyOperationError(self.backend, "token removed")
        return b"signature"


def test_key_operation_latency_by_backend() -> None:
    # perform() is what the servicer awaits for every AsyncKey (PKCS#11 tokens, plugins);
    # the service's metrics observe it through keyops.observer.
    metrics = ServiceMetrics()
    keyops.observer = metrics.key_operation

    async def both() -> None:
        for fails in (False, True):
            operation = PrivateKeyOperation(OperationKind.SIGN, TokenKey(fails), 0x0403, b"m")
            with contextlib.suppress(KeyOperationError):
                await keyops.perform(operation)

    try:
        asyncio.run(both())
    finally:
        keyops.observer = None
    name = "handshaker_key_operation_duration_seconds"
    labels = {"backend": "pkcs11:token=t"}
    assert metrics.registry.get_sample_value(f"{name}_count", {**labels, "result": "ok"}) == 1
    assert metrics.registry.get_sample_value(f"{name}_count", {**labels, "result": "error"}) == 1
    assert metrics.registry.get_sample_value(f"{name}_sum", {**labels, "result": "ok"}) >= 0.005


def test_workers_metrics_are_served_by_the_supervisor(
    start_service: StartService, tmp_path: Path
) -> None:
    redis = RedisServer().start()
    try:
        address = f"127.0.0.1:{free_port()}"
        service = start_service(
            "--workers", "2", "--session-store", redis.url, "--metrics-listen", address
        )
        for _ in range(3):
            assert run_handshake(service, "unary") == COMPLETE
        # A unary session in flight is in Redis: every worker counts the fleet's.
        with service.channel() as channel:
            UnaryHandshake(handshaker_stub(channel), client_options(service)).step()
            # (Finished sessions stay there for GetKeys until they idle out, so >= 1.)
            eventually(lambda: value(scrape(address), "handshaker_shared_sessions") >= 1)
        samples = scrape(address)
        assert value(samples, "handshaker_handshakes_total", role="server", **COMPLETED) == 3
        assert value(samples, "handshaker_certificate_expiry_timestamp_seconds",
                     credential="localhost") > time.time()  # fmt: skip
        assert service.stop() == 0
    finally:
        redis.stop()


def test_a_taken_metrics_port_is_one_line(start_service: StartService, tmp_path: Path) -> None:
    import subprocess

    from service_kit import HANDSHAKER

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(HANDSHAKER), "serve", "--keystore", str(tmp_path / "ks"),
             "--listen", "127.0.0.1:0", "--metrics-listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


# --- tracing ---------------------------------------------------------------------------------


class Collector:
    """An OTLP/gRPC trace collector: keeps the names of the spans it is sent."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1 import (
            trace_service_pb2,
            trace_service_pb2_grpc,
        )

        spans = self.spans = []

        class Service(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request, context):  # type: ignore[no-untyped-def]
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        spans.extend(span.name for span in scope.spans)
                return trace_service_pb2.ExportTraceServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()


@pytest.fixture
def collector() -> Iterator[Collector]:
    pytest.importorskip("opentelemetry.instrumentation.grpc")
    running = Collector()
    yield running
    running.server.stop(None)


def test_otlp_tracing_exports_a_span_per_rpc(
    collector: Collector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    service = ServiceProcess(
        tmp_path / "keystore", args=("--otlp-endpoint", f"127.0.0.1:{collector.port}")
    ).start()
    try:
        assert run_handshake(service, "unary") == COMPLETE
        eventually(lambda: "/handshaker.v1.Handshaker/StartServer" in collector.spans)
        assert "/handshaker.v1.Handshaker/Feed" in collector.spans
    finally:
        assert service.stop() == 0


def test_otlp_endpoint_without_the_packages_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "MODULES", ("opentelemetry.no_such_module_here",))
    with pytest.raises(ValueError, match=r"pip install 'handshaker\[otel\]'"):
        tracing.check("127.0.0.1:4317")
    tracing.check(None)  # off: nothing is needed
