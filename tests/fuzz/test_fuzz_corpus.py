"""The fuzz targets replay their committed corpus cleanly, and the corpus is what real
handshakes produce today (so a seed that stopped reaching deep states is noticed)."""

from __future__ import annotations

import fuzz_targets as targets
import pytest


@pytest.mark.parametrize("target", sorted(targets.TARGETS))
def test_every_committed_seed_runs_clean(target: str) -> None:
    folder = targets.CORPUS / target
    seeds = sorted(folder.iterdir())
    assert seeds, f"no seeds in {folder}"
    for seed in seeds:
        targets.TARGETS[target](seed.read_bytes())


def test_the_committed_corpus_matches_real_handshakes() -> None:
    for target, named in targets.seeds().items():
        for name, data in named.items():
            path = targets.CORPUS / target / name
            assert path.read_bytes() == data, f"{path} is stale: tests/fuzz/run.py --make-corpus"


def test_the_recorded_flights_complete_a_handshake() -> None:
    client = targets.new_client()
    client.data_to_send()
    client.receive_data(targets.seeds()["client_receive"]["server-flight"][1:])
    assert client.state.name == "COMPLETE"
