"""The service's log lines: one JSON object per line on stderr, the audit trail's own
stream, and the one line that says why serve cannot start."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from handshaker.api.audit import audit_log


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's fields."""

    # In a worker process (workers.py), every line says which worker wrote it.
    worker: int | None = None
    # The time's whole-second part, formatted once a second: every handshake writes
    # an audit line, and strftime cost more than a microsecond each time.
    _second = -1
    _second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        entry: dict[str, Any] = {
            "time": f"{self._second_text}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker is not None:
            entry["worker"] = self.worker
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO, audit: str = "stderr") -> None:
    # Nothing we write names a source line, thread or process: the Logging HOWTO's
    # "Optimization" settings skip collecting them on every record (every handshake
    # writes an audit line: 40 us a line before, 29 us after).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    configure_audit_log(audit)


def configure_audit_log(target: str) -> None:
    """The audit trail's own stream: stderr, a file (appended, 0600), or off.

    It never propagates to the root logger, so --log-level does not silence it and
    a file target keeps it out of the operational log.
    """
    audit_log.propagate = False
    audit_log.setLevel(logging.INFO)
    for old in audit_log.handlers:
        old.close()
    if target == "off":
        audit_log.handlers[:] = [logging.NullHandler()]
        audit_log.disabled = True
        return
    audit_log.disabled = False
    handler: logging.Handler
    if target == "stderr":
        handler = logging.StreamHandler(sys.stderr)
    else:
        path = Path(target)
        # Created owner-only: the trail says who used which key, from where.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    audit_log.handlers[:] = [handler]


def refuse(message: str) -> int:
    """One line saying why serve cannot start; exit status 2.

    Plain text for a person at a terminal; a JSON line otherwise, so stderr carries
    only JSON lines for a log collector.
    """
    if sys.stderr.isatty():
        print(f"handshaker serve: {message}", file=sys.stderr)
    else:
        print(
            json.dumps(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "level": "error",
                    "logger": "handshaker.server",
                    "message": f"handshaker serve: {message}",
                }
            ),
            file=sys.stderr,
        )
    return 2
