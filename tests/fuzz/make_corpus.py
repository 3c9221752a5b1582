"""Writes the seed corpus of each fuzz target (tests/fuzz/corpus/TARGET/) from real
handshakes: the recorded flights of tests/fuzz/scenarios.py, with the scenario byte the
targets read first, and option messages the service's tests send. Run after a change to
the scenarios or the engine's messages; the files are committed."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import scenarios
from handshaker_wire.v1 import handshaker_pb2 as pb

CORPUS = Path(__file__).with_name("corpus")


def _write(target: str, name: str, seed: bytes) -> None:
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(seed)


def main() -> None:
    for mutual in (False, True):
        hello, _, second = scenarios.server_flights(mutual)
        flag = int(mutual)
        suffix = "-mutual" if mutual else ""
        _write("server", f"client-hello{suffix}", bytes((flag,)) + hello)
        _write("server", f"second-flight{suffix}", bytes((flag | 2,)) + second)
        _write(
            "client", f"server-flight{suffix}", bytes((flag,)) + scenarios.client_flights(mutual)[1]
        )
    for index, options in enumerate(
        (
            pb.ClientOptions(server_name="localhost"),
            pb.ClientOptions(
                server_name="localhost", alpn_protocols=["h2", "http/1.1"], keylog=True
            ),
            pb.ClientOptions(insecure_skip_verify=True, groups=[0x1D, 0x11EC]),
            pb.ClientOptions(
                server_name="localhost", credential="localhost", trust_bundle="default"
            ),
        )
    ):
        _write("options", f"client-{index}", b"\x00" + options.SerializeToString())
    for index, server_options in enumerate(
        (
            pb.ServerOptions(),
            pb.ServerOptions(credential="localhost", alpn_protocols=["h2"]),
            pb.ServerOptions(client_auth=pb.CLIENT_AUTH_REQUIRED, client_trust_bundle="default"),
        )
    ):
        _write("options", f"server-{index}", b"\x01" + server_options.SerializeToString())


if __name__ == "__main__":
    main()
