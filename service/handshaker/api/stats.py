"""Handshake counters, reported in one periodic log line rather than a line per handshake."""

from __future__ import annotations

from collections import Counter


class HandshakeStats:
    """Completed and failed handshakes by role, and their summed duration, since the last take()."""

    __slots__ = ("_counts", "_milliseconds")

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._milliseconds = 0.0

    def completed(self, role: str, milliseconds: float) -> None:
        self._counts[f"{role}_completed"] += 1
        self._milliseconds += milliseconds

    def failed(self, role: str) -> None:
        self._counts[f"{role}_failed"] += 1

    def take(self) -> dict[str, float]:
        """The counts since the last take (empty when nothing happened), and reset them."""
        counts, self._counts = self._counts, Counter()
        milliseconds, self._milliseconds = self._milliseconds, 0.0
        if not counts:
            return {}
        report: dict[str, float] = dict(sorted(counts.items()))
        completed = counts["client_completed"] + counts["server_completed"]
        if completed:
            report["mean_ms"] = round(milliseconds / completed, 2)
        return report
