"""What both record-vector generators share, version-neutral: a scenario's recorded steps
(receive, send, close, with what each must produce) and the event and error shapes.

gen_records.py (TLS 1.3) and gen_records12.py (TLS 1.2) subclass Steps with their own
keys and record sealing; the JSON each step writes is the same for both versions.
"""

from __future__ import annotations

from typing import Any


class Steps:
    """A scenario's steps as the vectors' JSON records them."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def receive(
        self,
        data: bytes,
        *,
        events: list[dict[str, Any]] | None = None,
        output: bytes = b"",
        error: dict[str, Any] | None = None,
        note: str = "",
    ) -> None:
        events = events or []
        expect: dict[str, Any] = {
            "events": events,
            "application_data": b"".join(
                bytes.fromhex(e["data"]) for e in events if e["type"] == "application_data"
            ).hex(),
            "close_notify": any(e["type"] == "close_notify" for e in events),
            "key_updates_received": sum(e["type"] == "key_update" for e in events),
            "output": output.hex(),
        }
        if error is not None:
            expect["error"] = error
        self._step({"action": "receive", "data": data.hex()}, expect, note)

    def send(self, data: bytes, output: bytes, note: str = "") -> None:
        self._step({"action": "send", "data": data.hex()}, {"output": output.hex()}, note)

    def send_refused(self, data: bytes, note: str = "") -> None:
        self._step({"action": "send", "data": data.hex()}, {"output": "", "refused": True}, note)

    def close(self, output: bytes, note: str = "") -> None:
        self._step({"action": "close"}, {"output": output.hex()}, note)

    def _step(self, step: dict[str, Any], expect: dict[str, Any], note: str) -> None:
        if note:
            step["note"] = note
        step["expect"] = expect
        self.steps.append(step)


def data_event(data: bytes) -> dict[str, Any]:
    return {"type": "application_data", "data": data.hex()}


CLOSE_EVENT: dict[str, Any] = {"type": "close_notify"}


def local_error(alert: int) -> dict[str, Any]:
    return {"alert": alert, "sent_by_peer": False}
