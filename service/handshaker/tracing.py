"""OpenTelemetry traces of the RPCs, exported over OTLP/gRPC when --otlp-endpoint is given.

Off by default; the packages are the optional extra `handshaker[otel]`
(opentelemetry-sdk, -exporter-otlp-proto-grpc, -instrumentation-grpc) and are
imported only when the flag is used. Each RPC is one server span made by the
instrumentation's grpc.aio server interceptor; nothing of a request's bytes goes
into a span.
"""

from __future__ import annotations

import importlib.util
from typing import Any

MODULES = (
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.instrumentation.grpc",
)

_provider: Any = None


def check(endpoint: str | None) -> None:
    """ValueError (one line) when tracing is asked for without its packages."""
    if endpoint is None:
        return
    missing = [name for name in MODULES if not _importable(name)]
    if missing:
        raise ValueError(
            f"--otlp-endpoint needs the OpenTelemetry packages: pip install 'handshaker[otel]' "
            f"(missing: {', '.join(missing)})"
        )


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def interceptors(endpoint: str | None) -> list[Any]:
    """The server interceptors that trace each RPC (none when tracing is off)."""
    global _provider  # noqa: PLW0603 (one tracer provider per process)
    if endpoint is None:
        return []
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.instrumentation.grpc import aio_server_interceptor  # noqa: PLC0415
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    secure = endpoint.startswith("https://")
    target = endpoint.removeprefix("https://").removeprefix("http://")
    provider = TracerProvider(resource=Resource.create({"service.name": "handshaker"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=target, insecure=not secure))
    )
    _provider = provider
    return [aio_server_interceptor(tracer_provider=provider)]  # type: ignore[no-untyped-call]


def shutdown() -> None:
    """Export the spans still queued (at stop)."""
    global _provider
    provider, _provider = _provider, None
    if provider is not None:
        provider.shutdown()
