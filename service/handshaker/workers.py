"""Worker processes: `handshaker serve --workers N` runs N service processes on one port.

The process started by `serve` becomes a supervisor: it checks what every worker
will need (the listen address, the keystore, Redis), reserves the port (a port 0
is resolved here, once), then starts N workers, each `python -m
handshaker.workers` with the same settings, that listen on that port with
SO_REUSEPORT, so the kernel spreads new connections over them. A worker reports
"listening" through a pipe; the supervisor says "listening" once all of them do.

A worker that dies is started again, after a backoff that doubles from 0.5 s to
30 s while it keeps dying young (and starts over once one has run 30 s); each
exit and restart is logged. On SIGTERM or SIGINT the supervisor forwards SIGTERM
to every worker, which drains like a lone process (NOT_SERVING, then up to
--shutdown-grace for in-flight RPCs), waits the grace and 5 s more, then kills
the ones left; it exits 0 when every worker stopped cleanly. A worker whose
supervisor is gone stops by itself.

Unary sessions must be reachable from every worker, so more than one worker
needs the Redis store; a Unix socket cannot be shared this way (server.check_workers).
With --metrics-listen the supervisor serves /metrics for all the workers
(prometheus-client's multiprocess mode, api/metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from handshaker import server
from handshaker.api import metrics
from handshaker.logs import refuse
from handshaker.sessions.redis_store import store_name
from handshaker.settings import READY_FD_ENV, Settings

log = logging.getLogger("handshaker.workers")

SETTINGS_ENV = "HANDSHAKER_WORKER_SETTINGS"
PATH_FIELDS = ("keystore", "tls_cert", "tls_key", "tls_client_ca")
START_TIMEOUT = 60.0
BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
# A worker that ran this long before it died starts the backoff over.
STABLE_SECONDS = 30.0
# Past the grace, how long the supervisor still waits before it kills a worker.
DRAIN_MARGIN = 5.0


def encode_settings(settings: Settings) -> str:
    values = dataclasses.asdict(settings)
    for name in PATH_FIELDS:
        if values[name] is not None:
            values[name] = str(values[name])
    return json.dumps(values)


def decode_settings(text: str) -> Settings:
    values = json.loads(text)
    for name in PATH_FIELDS:
        if values.get(name) is not None:
            values[name] = Path(values[name])
    return Settings(**values)


def reserve_port(listen: str) -> tuple[str, socket.socket]:
    """HOST:PORT with the port resolved, and a socket that holds it (bound, SO_REUSEPORT,
    never listening) while workers come and go; StartError when it is taken."""
    host, _, port = listen.rpartition(":")
    ip = host.strip("[]")
    ip = "127.0.0.1" if ip == "localhost" else ip
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    # First without SO_REUSEPORT, so a port that another process serves (even another
    # handshaker's workers) is refused rather than shared.
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, int(port)))
        except OSError as error:
            raise server.StartError(
                f"cannot listen on {listen}: {error.strerror or error} (another handshaker serve?)"
            ) from None
        chosen = probe.getsockname()[1]
    hold = socket.socket(family, socket.SOCK_STREAM)
    hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        hold.bind((ip, chosen))
    except OSError as error:
        hold.close()
        raise server.StartError(f"cannot listen on {listen}: {error.strerror or error}") from None
    return f"{host}:{chosen}", hold


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    restarts: int = 0


class Supervisor:
    """Starts the workers, restarts the ones that die, drains them all on a signal."""

    def __init__(self, settings: Settings, address: str, metrics_dir: str | None) -> None:
        self.settings = settings
        self.address = address
        self.metrics_dir = metrics_dir
        self.workers = [Worker(index) for index in range(settings.workers)]

    def _worker_settings(self, worker: Worker) -> Settings:
        return dataclasses.replace(
            self.settings,
            listen=self.address,
            workers=1,
            worker_index=worker.index,
            reuse_port=True,
        )

    async def spawn(self, worker: Worker) -> bool:
        """Start the worker; whether it came to listen."""
        read_fd, write_fd = os.pipe()
        env = {
            **os.environ,
            SETTINGS_ENV: encode_settings(self._worker_settings(worker)),
            READY_FD_ENV: str(write_fd),
        }
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "handshaker.workers",
                stdin=subprocess.DEVNULL,
                pass_fds=(write_fd,),
                env=env,
            )
        finally:
            os.close(write_fd)
        worker.process, worker.started = process, time.monotonic()
        loop = asyncio.get_running_loop()
        # b"" when the worker exits (or is killed) before it listens. The pipe is closed
        # once the read returns, even when this start is cancelled meanwhile.
        reading = loop.run_in_executor(None, os.read, read_fd, 1)
        reading.add_done_callback(lambda _: os.close(read_fd))
        done, _ = await asyncio.wait({reading}, timeout=START_TIMEOUT)
        if not done:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        ready = await reading
        return ready == b"1"

    async def keep(self, worker: Worker) -> None:
        """Restart the worker whenever it exits, with backoff."""
        delay = BACKOFF_MIN
        while True:
            process = worker.process
            assert process is not None
            code = await process.wait()
            if self.metrics_dir is not None:
                metrics.mark_dead(process.pid, self.metrics_dir)
            if time.monotonic() - worker.started >= STABLE_SECONDS:
                delay = BACKOFF_MIN
            log.warning(
                "worker exited; restarting it",
                extra={"fields": {**_exit_fields(worker, process.pid, code), "restart_in": delay}},
            )
            await asyncio.sleep(delay)
            delay = min(2 * delay, BACKOFF_MAX)
            worker.restarts += 1
            if await self.spawn(worker):
                assert worker.process is not None
                log.info(
                    "worker restarted",
                    extra={
                        "fields": {
                            "worker": worker.index,
                            "pid": worker.process.pid,
                            "restarts": worker.restarts,
                        }
                    },
                )

    async def drain(self) -> int:
        """SIGTERM to every worker, the grace to stop, then SIGKILL; 0 if all stopped cleanly."""
        running = [w.process for w in self.workers if w.process and w.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        waits = asyncio.gather(*(p.wait() for p in running))
        try:
            await asyncio.wait_for(
                asyncio.shield(waits), self.settings.grace_seconds + DRAIN_MARGIN
            )
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    log.warning("worker killed: still running past the grace",
                                extra={"fields": {"pid": process.pid}})  # fmt: skip
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            await waits
        codes = [w.process.returncode for w in self.workers if w.process is not None]
        log.info("stopped", extra={"fields": {"worker_exit_codes": codes}})
        return 0 if all(code == 0 for code in codes) else 1

    async def run(self) -> int:
        stop = asyncio.Event()
        server._stop_on_signals(stop)
        started = await asyncio.gather(*(self.spawn(w) for w in self.workers))
        if not all(started):
            failed = [w.index for w, ok in zip(self.workers, started, strict=True) if not ok]
            log.error("workers did not start", extra={"fields": {"workers": failed}})
            await self.drain()
            return 2
        log.info(
            "listening",
            extra={
                "fields": {
                    "address": self.address,
                    "workers": len(self.workers),
                    "pids": [w.process.pid for w in self.workers if w.process is not None],
                    "tls": self.settings.tls_cert is not None,
                    "mtls": self.settings.tls_client_ca is not None,
                    "session_store": store_name(self.settings.session_store),
                    "metrics": self.settings.metrics_listen,
                }
            },
        )
        keepers = [asyncio.create_task(self.keep(w)) for w in self.workers]
        await stop.wait()
        log.info(
            "shutting down",
            extra={"fields": {"grace_seconds": self.settings.grace_seconds, "workers": True}},
        )
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        return await self.drain()


def _exit_fields(worker: Worker, pid: int, code: int) -> dict[str, object]:
    fields: dict[str, object] = {"worker": worker.index, "pid": pid}
    if code < 0:
        fields["signal"] = signal.Signals(-code).name
    else:
        fields["exit_code"] = code
    return fields


async def _check_store(settings: Settings) -> None:
    """Redis reachable before any worker starts (StoreError, one line, when not)."""
    store, _ = await server.open_session_store(settings)
    await store.close()


def supervise(settings: Settings) -> int:
    """The supervisor of `serve --workers N` (N > 1): the exit status."""
    try:
        asyncio.run(_check_store(settings))
        address, hold = reserve_port(settings.listen)
    except ValueError as error:
        return refuse(str(error))
    metrics_dir: str | None = None
    try:
        if settings.metrics_listen is not None:
            metrics_dir = tempfile.mkdtemp(prefix="handshaker-metrics-")
            os.environ[metrics.MULTIPROC_ENV] = metrics_dir
            metrics.serve_http(settings.metrics_listen, metrics.multiprocess_registry(metrics_dir))
        return asyncio.run(Supervisor(settings, address, metrics_dir).run())
    except ValueError as error:
        return refuse(str(error))
    finally:
        hold.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def main() -> int:
    """A worker: `python -m handshaker.workers`, its settings in the environment."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    text = os.environ.pop(SETTINGS_ENV, None)
    if text is None:
        print(f"handshaker worker: {SETTINGS_ENV} is not set (started by serve --workers)",
              file=sys.stderr)  # fmt: skip
        return 2
    return server.run(decode_settings(text))


if __name__ == "__main__":
    sys.exit(main())
