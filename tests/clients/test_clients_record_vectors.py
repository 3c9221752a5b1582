"""The Python record layer against tests/vectors/records.json, the vectors every client runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from handshaker_client import (
    ApplicationData,
    BaseRecordLayer,
    CloseNotifyReceived,
    KeyUpdateReceived,
    LocalProtocolError,
    PeerAlertError,
    RecordLayer,
    RecordProtection,
    Tls12RecordLayer,
    Tls12RecordProtection,
    TLSProtocolError,
    TrafficKeys,
)
from handshaker_client.record import next_traffic_keys, traffic_keys_from_secret

ROOT = Path(__file__).resolve().parents[2]
VECTORS_PATH = ROOT / "tests" / "vectors" / "records.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text())


def traffic_keys(keys: dict[str, Any]) -> TrafficKeys:
    return TrafficKeys(
        bytes.fromhex(keys["secret"]),
        bytes.fromhex(keys["key"]),
        bytes.fromhex(keys["iv"]),
        keys.get("sequence_number", 0),
    )


def event_json(event: object) -> dict[str, Any]:
    if isinstance(event, ApplicationData):
        return {"type": "application_data", "data": event.data.hex()}
    if isinstance(event, KeyUpdateReceived):
        return {"type": "key_update", "update_requested": event.update_requested}
    assert isinstance(event, CloseNotifyReceived), event
    return {"type": "close_notify"}


def run_step(layer: BaseRecordLayer, step: dict[str, Any]) -> dict[str, Any]:
    """One step against the layer: what it produced, in the vectors' terms."""
    action = step["action"]
    got: dict[str, Any] = {}
    if action == "receive":
        layer.receive_data(bytes.fromhex(step["data"]))
        events: list[dict[str, Any]] = []
        try:
            while (event := layer.next_event()) is not None:
                events.append(event_json(event))
        except LocalProtocolError as error:
            got["error"] = {"alert": error.alert, "sent_by_peer": False}
        except PeerAlertError as error:
            got["error"] = {"alert": error.alert, "sent_by_peer": True}
        got["events"] = events
    elif action == "send":
        try:
            layer.send_application_data(bytes.fromhex(step["data"]))
        except TLSProtocolError:
            got["refused"] = True
    elif action == "update_keys":
        try:
            layer.update_keys(step["request_peer_update"])
        except TLSProtocolError:
            got["refused"] = True
    elif action == "close":
        layer.close()
    else:
        raise AssertionError(f"unknown action {action}")
    got["output"] = layer.data_to_send().hex()
    return got


def run_scenario(scenario: dict[str, Any]) -> None:
    kind = Tls12RecordLayer if scenario.get("version") == 0x0303 else RecordLayer
    layer = kind(
        scenario["cipher_suite"],
        traffic_keys(scenario["read"]),
        traffic_keys(scenario["write"]),
        peer_record_size_limit=scenario["peer_record_size_limit"],
    )
    for index, step in enumerate(scenario["steps"]):
        expect = step["expect"]
        got = run_step(layer, step)
        where = f"{scenario['name']} step {index} ({step['action']})"
        if "events" in expect:
            assert got["events"] == expect["events"], where
        assert got.get("error") == expect.get("error"), where
        assert got.get("refused", False) == expect.get("refused", False), where
        assert got["output"] == expect["output"], where
        if "error" in expect:
            return


@pytest.mark.parametrize("suite", VECTORS["suites"], ids=lambda s: s["name"])
def test_traffic_keys_and_the_key_update_chain(suite: dict[str, Any]) -> None:
    cipher_suite = suite["cipher_suite"]
    keys = traffic_keys_from_secret(cipher_suite, bytes.fromhex(suite["traffic_secret"]))
    assert (keys.key.hex(), keys.iv.hex()) == (suite["key"], suite["iv"])
    for generation in suite["key_updates"]:
        keys = next_traffic_keys(cipher_suite, keys)
        assert keys.secret.hex() == generation["secret"]
        assert (keys.key.hex(), keys.iv.hex()) == (generation["key"], generation["iv"])


@pytest.mark.parametrize("suite", VECTORS["suites"], ids=lambda s: s["name"])
def test_single_records_seal_and_open(suite: dict[str, Any]) -> None:
    cipher_suite = suite["cipher_suite"]
    base = traffic_keys_from_secret(cipher_suite, bytes.fromhex(suite["traffic_secret"]))
    for vector in suite["records"]:
        keys = TrafficKeys(base.secret, base.key, base.iv, vector["sequence_number"])
        record = bytes.fromhex(vector["record"])
        content = bytes.fromhex(vector["content"])
        if vector["padding"] == 0:
            sealed = RecordProtection(cipher_suite, keys).seal(vector["content_type"], content)
            assert sealed == record, vector["sequence_number"]
        opened = RecordProtection(cipher_suite, keys).open(record[:5], record[5:])
        assert opened == (vector["content_type"], content), vector["sequence_number"]


@pytest.mark.parametrize("scenario", VECTORS["scenarios"], ids=lambda s: s["name"])
def test_scenario(scenario: dict[str, Any]) -> None:
    run_scenario(scenario)


@pytest.mark.parametrize("suite", VECTORS["tls12_suites"], ids=lambda s: s["name"])
def test_tls12_single_records_seal_and_open(suite: dict[str, Any]) -> None:
    cipher_suite = suite["cipher_suite"]
    key, iv = bytes.fromhex(suite["key"]), bytes.fromhex(suite["iv"])
    for vector in suite["records"]:
        keys = TrafficKeys(b"", key, iv, vector["sequence_number"])
        record = bytes.fromhex(vector["record"])
        content = bytes.fromhex(vector["content"])
        sealed = Tls12RecordProtection(cipher_suite, keys).seal(vector["content_type"], content)
        assert sealed == record, vector["sequence_number"]
        opened = Tls12RecordProtection(cipher_suite, keys).open(record[0], record[5:])
        assert opened == content, vector["sequence_number"]


@pytest.mark.parametrize("scenario", VECTORS["tls12_scenarios"], ids=lambda s: s["name"])
def test_tls12_scenario(scenario: dict[str, Any]) -> None:
    run_scenario(scenario)


def test_a_deliberate_mismatch_fails() -> None:
    """The runner is not vacuous: one flipped output byte is caught."""
    scenario = next(s for s in VECTORS["scenarios"] if s["name"].startswith("key_update_burst"))
    broken = json.loads(json.dumps(scenario))
    step = next(s for s in broken["steps"] if s["action"] == "send")
    output = bytearray.fromhex(step["expect"]["output"])
    output[-1] ^= 1
    step["expect"]["output"] = output.hex()
    with pytest.raises(AssertionError):
        run_scenario(broken)


def test_the_vectors_are_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "vectors" / "gen_records.py"), "--check"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "service")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
