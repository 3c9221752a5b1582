"""The committed Python stubs in clients/python/handshaker_wire/v1 match a fresh generation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "clients" / "python" / "handshaker_wire" / "v1"
SCRIPT = ROOT / "scripts" / "gen_protos.sh"
# Hand-written files that live next to the generated ones.
NOT_GENERATED = {"__init__.py"}


def _normalized(path: Path) -> list[str]:
    return [line.rstrip() for line in path.read_text().splitlines()]


def _generated_files(directory: Path) -> set[str]:
    return {
        p.name
        for p in directory.iterdir()
        if p.is_file() and p.suffix in {".py", ".pyi"} and p.name not in NOT_GENERATED
    }


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable)
    run = subprocess.run(
        ["bash", str(SCRIPT), "--python-out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    fresh = tmp_path / "handshaker_wire" / "v1"

    fresh_names = _generated_files(fresh)
    assert fresh_names, "the script generated nothing"
    assert _generated_files(COMMITTED) == fresh_names, "run scripts/gen_protos.sh"
    stale = [n for n in sorted(fresh_names) if _normalized(fresh / n) != _normalized(COMMITTED / n)]
    assert not stale, f"stale stubs {stale}: run scripts/gen_protos.sh"


def test_stubs_import_under_the_package_layout() -> None:
    from handshaker_wire.v1 import handshaker_pb2, handshaker_pb2_grpc

    assert handshaker_pb2.DESCRIPTOR.package == "handshaker.v1"
    assert handshaker_pb2_grpc.HandshakerStub.__name__ == "HandshakerStub"
    service = handshaker_pb2.DESCRIPTOR.services_by_name["Handshaker"]
    assert {m.name for m in service.methods} >= {
        "StartClient",
        "StartServer",
        "Feed",
        "GetKeys",
        "Abort",
        "Handshake",
    }


def test_secret_fields_are_marked_debug_redact() -> None:
    from handshaker_wire.v1 import handshaker_pb2

    def redacted(message: str, field: str) -> bool:
        descriptor = handshaker_pb2.DESCRIPTOR.message_types_by_name[message]
        return bool(descriptor.fields_by_name[field].GetOptions().debug_redact)

    for field in ("secret", "key", "iv"):
        assert redacted("TrafficKeys", field)
    assert redacted("SessionKeys", "exporter_master_secret")
    assert redacted("SessionKeys", "keylog")
    assert redacted("ExportKeyingMaterialResponse", "keying_material")
    assert not redacted("TrafficKeys", "sequence_number")
