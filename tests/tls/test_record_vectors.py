"""The engine's record protection and key update against tests/vectors/records.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from handshaker.tls.errors import AlertError
from handshaker.tls.key_schedule import CipherSuiteParams, TrafficSecret
from handshaker.tls.record import RecordProtection

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "records.json").read_text()
)


@pytest.mark.parametrize("suite", VECTORS["suites"], ids=lambda s: s["name"])
def test_keys_key_updates_and_records(suite: dict[str, Any]) -> None:
    params = CipherSuiteParams.for_suite(suite["cipher_suite"])
    keys = TrafficSecret.derive(params, bytes.fromhex(suite["traffic_secret"]))
    assert (keys.key.hex(), keys.iv.hex()) == (suite["key"], suite["iv"])
    for vector in suite["records"]:
        content = bytes.fromhex(vector["content"])
        seq = vector["sequence_number"]
        sealed = RecordProtection(params, keys.key, keys.iv, seq).seal(
            vector["content_type"], content, vector["padding"]
        )
        assert sealed.hex() == vector["record"]
        opened = RecordProtection(params, keys.key, keys.iv, seq).open(sealed)
        assert opened == (vector["content_type"], content)
    for generation in suite["key_updates"]:
        keys = keys.next_generation(params)
        assert (keys.secret.hex(), keys.key.hex(), keys.iv.hex()) == (
            generation["secret"],
            generation["key"],
            generation["iv"],
        )


def _rejected_record(name: str) -> tuple[dict[str, Any], bytes, int]:
    scenario = next(s for s in VECTORS["scenarios"] if s["name"] == name)
    step = next(s for s in scenario["steps"] if "error" in s["expect"])
    return scenario, bytes.fromhex(step["data"]), step["expect"]["error"]["alert"]


@pytest.mark.parametrize(
    "name",
    [
        "content_too_long",
        "padding_only_record",
        "inner_plaintext_too_long",
    ],
)
def test_open_refuses_what_the_scenarios_refuse(name: str) -> None:
    scenario, record, alert = _rejected_record(name)
    read = scenario["read"]
    params = CipherSuiteParams.for_suite(scenario["cipher_suite"])
    protection = RecordProtection(
        params, bytes.fromhex(read["key"]), bytes.fromhex(read["iv"]), read["sequence_number"]
    )
    # Each scenario's earlier steps, if any, carry exactly one record before this one.
    protection.sequence_number += sum(
        s["action"] == "receive" and "error" not in s["expect"] for s in scenario["steps"]
    )
    with pytest.raises(AlertError) as raised:
        protection.open(record)
    assert raised.value.description == alert
