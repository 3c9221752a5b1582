"""Benchmark: snapshot sizes of every waiting state, and what a snapshot and restore cost.

For each group, with and without HelloRetryRequest, a handshake is driven
between two engine connections and every waiting connection is snapshotted
once its output is taken, as a service would store it (client after its
ClientHello, server after its flight, and so on). Reported: the sizes by state
(typical = median, worst = max; client authentication adds the client's chain,
DER, to the server's states after it), and the time of snapshot() + restore()
per step next to the time of a whole handshake measured in the same run. The
last line printed is one JSON object.

    python bench/snapshot.py [--json] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from dataclasses import replace

from engine import bench_pki, engine_configs
from handshaker.tls import (
    ClientConfig,
    ClientConnection,
    ConnectionState,
    NamedGroup,
    ServerConfig,
    ServerConnection,
)

GROUPS = {
    "x25519": NamedGroup.X25519,
    "secp384r1": NamedGroup.SECP384R1,
    "ffdhe2048": NamedGroup.FFDHE2048,
    "x25519mlkem768": NamedGroup.X25519MLKEM768,
    "secp384r1mlkem1024": NamedGroup.SECP384R1MLKEM1024,
    "mlkem1024": NamedGroup.MLKEM1024,
}
Connection = ClientConnection | ServerConnection


def _configs(
    base: tuple[ClientConfig, ServerConfig], group: int, *, hrr: bool
) -> tuple[ClientConfig, ServerConfig]:
    client, server = base
    other = NamedGroup.SECP256R1 if group == NamedGroup.X25519 else NamedGroup.X25519
    client = replace(
        client,
        supported_groups=(group, other) if hrr else (group,),
        key_share_groups=(other,) if hrr else (group,),
    )
    return client, replace(server, supported_groups=(group,))


def _state_name(conn: Connection) -> str:
    role = "client" if isinstance(conn, ClientConnection) else "server"
    return f"{role}:{type(conn._state).__name__}"


def _run(
    client_config: ClientConfig, server_config: ServerConfig, sizes: dict[str, list[int]]
) -> float:
    """One handshake with a snapshot and restore of each side at every wait; their seconds."""
    spent = 0.0
    conns: dict[str, Connection] = {
        "client": ClientConnection(client_config),
        "server": ServerConnection(server_config),
    }
    outbox = {"client": conns["client"].data_to_send(), "server": b""}
    sizes[_state_name(conns["client"])].append(len(conns["client"].snapshot()))
    for _ in range(8):
        moved = False
        for name, other in (("client", "server"), ("server", "client")):
            data, outbox[name] = outbox[name], b""
            sink = conns[other]
            if not data or sink.state is not ConnectionState.HANDSHAKING:
                continue
            sink.receive_data(data)
            outbox[other] += sink.data_to_send()
            moved = True
            if sink.state is ConnectionState.HANDSHAKING:
                state = _state_name(sink)
                start = time.perf_counter()
                snapshot = sink.snapshot()
                if isinstance(sink, ClientConnection):
                    conns[other] = ClientConnection.restore(snapshot, client_config)
                else:
                    conns[other] = ServerConnection.restore(snapshot, server_config)
                spent += time.perf_counter() - start
                sizes[state].append(len(snapshot))
        if not moved:
            break
    assert all(c.state is ConnectionState.COMPLETE for c in conns.values())
    return spent


def _plain(client_config: ClientConfig, server_config: ServerConfig) -> float:
    start = time.perf_counter()
    client = ClientConnection(client_config)
    server = ServerConnection(server_config)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--rounds", type=int, default=20, help="handshakes per scenario")
    args = parser.parse_args(argv)
    ca, leaf, key = bench_pki()
    base = engine_configs(ca, leaf, key)
    sizes: dict[str, list[int]] = defaultdict(list)
    restore_ms: list[float] = []
    plain_ms: list[float] = []
    for group in GROUPS.values():
        for hrr in (False, True):
            client_config, server_config = _configs(base, group, hrr=hrr)
            for _ in range(args.rounds):
                restore_ms.append(_run(client_config, server_config, sizes) * 1000)
                if not hrr and group == NamedGroup.X25519:
                    plain_ms.append(_plain(client_config, server_config) * 1000)
    every = [n for values in sizes.values() for n in values]
    result = {
        "benchmark": "tls13_snapshot_sizes_and_restore",
        "groups": list(GROUPS),
        "snapshot_bytes_typical": int(statistics.median(every)),
        "snapshot_bytes_worst": max(every),
        "snapshot_bytes_by_state": {
            state: {"typical": int(statistics.median(v)), "worst": max(v)}
            for state, v in sorted(sizes.items())
        },
        "snapshot_and_restore_ms_per_handshake_median": round(statistics.median(restore_ms), 3),
        "x25519_handshake_ms_median": round(statistics.median(plain_ms), 3),
    }
    if not args.json:
        print(f"snapshots: typical {result['snapshot_bytes_typical']} B, worst {max(every)} B")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
