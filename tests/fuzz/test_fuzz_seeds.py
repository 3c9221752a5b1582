"""The fuzz targets' committed seeds still reach the states they were recorded for.

A stale seed (after a change to the engine's messages or the scenarios) would leave the
fuzzer exploring only the first parser it meets; `python tests/fuzz/make_corpus.py`
rewrites them. The targets themselves run under atheris in the test command
(tests/fuzz/run.sh); here each seed and a few mutations of it go through them once.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import scenarios
from handshaker.tls import ConnectionState

CORPUS = Path(__file__).with_name("corpus")


@pytest.mark.parametrize("mutual", [False, True], ids=["server-auth", "mutual"])
def test_the_server_seeds_complete_a_handshake(mutual: bool) -> None:
    suffix = "-mutual" if mutual else ""
    server = scenarios.server(mutual)
    server.receive_data((CORPUS / "server" / f"client-hello{suffix}").read_bytes()[1:])
    assert server.state is ConnectionState.HANDSHAKING
    server.data_to_send()
    server.receive_data((CORPUS / "server" / f"second-flight{suffix}").read_bytes()[1:])
    assert server.state is ConnectionState.COMPLETE


@pytest.mark.parametrize("mutual", [False, True], ids=["server-auth", "mutual"])
def test_the_client_seeds_complete_a_handshake(mutual: bool) -> None:
    suffix = "-mutual" if mutual else ""
    client = scenarios.client(mutual)
    client.data_to_send()
    client.receive_data((CORPUS / "client" / f"server-flight{suffix}").read_bytes()[1:])
    assert client.state is ConnectionState.COMPLETE


@pytest.mark.parametrize("target", ["server", "client", "options"])
def test_each_target_takes_its_seeds_and_their_mutations(target: str) -> None:
    pytest.importorskip("atheris", reason="atheris is missing: pip install -e '.[test]'")
    import targets

    run = targets.TARGETS[target]
    rng = random.Random(target)
    for seed in sorted((CORPUS / target).iterdir()):
        data = seed.read_bytes()
        run(data)
        for _ in range(50):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            run(bytes(mutated[: rng.randint(1, len(mutated))]))
