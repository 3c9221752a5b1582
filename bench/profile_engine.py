"""Where an engine handshake's time goes: crypto vs the rest, by function, as one JSON object.

Runs bench/engine.py's engine handshake (both sides in process, same
certificate, group and suite) in a loop, and either profiles it with cProfile
or leaves the sampling to py-spy and summarises py-spy's collapsed stacks:

    python bench/profile_engine.py [--no-cache] [--group G] [--seconds S]
    py-spy record --native -f raw -o stacks.txt -- python bench/profile_engine.py --loop
    python bench/profile_engine.py --collapsed stacks.txt
    python bench/profile_engine.py --phases   # median time of each step, no profiler

Crypto is time inside `cryptography`, hashlib or OpenSSL: "public_key" (key
exchange, signatures: the crypto floor's work), "x509" (certificate parsing,
path building and its signature check), "symmetric" (hashing, HMAC, AEAD).
Outside it: "outside_crypto:key_schedule_python" (the engine's HMAC/HKDF glue
in Python), ":engine_python" (the rest of the engine), ":other_python", and,
for cProfile, "interpreter_builtins" (len, bytes methods, ... wherever called).
cProfile adds a cost to every Python call, so it overstates the Python share;
py-spy samples without that bias.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import re
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import engine
from handshaker.tls import ClientConnection, HandshakeComplete, ServerConnection

# Matched against a crypto call's entry point: the first frame (or cProfile
# entry) inside `cryptography`, hashlib or OpenSSL, which names the API used.
_CATEGORIES = (
    ("x509", re.compile(r"x509|X509|verification|load_der|[Cc]ertificate|PolicyBuilder|Verifier")),
    (
        "public_key",
        re.compile(
            r"x25519|X25519|x448|X448|mlkem|MLKEM|ECPrivateKey|ECPublicKey|/ec\.py|ed25519"
            r"|ed448|rsa\.py|RsaP|derive_private_key|asymmetric"
        ),
    ),
    ("symmetric", re.compile(r"hashlib|hashopenssl|hmac|aead|AESGCM|ChaCha|ciphers|[Hh]ash")),
)


_CRYPTO_CATEGORIES = frozenset(("x509", "public_key", "symmetric", "crypto_other"))


def _category(name: str, fallback: str) -> str:
    for category, pattern in _CATEGORIES:
        if pattern.search(name):
            return category
    return fallback


def _python_category(where: str) -> str:
    """Outside the crypto: the engine's key schedule glue, the rest of the engine, the rest."""
    if "key_schedule.py" in where:
        return "outside_crypto:key_schedule_python"
    if "handshaker/" in where:
        return "outside_crypto:engine_python"
    return "outside_crypto:other_python"


def _is_crypto_frame(frame: str) -> bool:
    return (
        "cryptography/" in frame
        or "_rust.abi3.so" in frame
        or "libcrypto" in frame
        or "_hashlib" in frame
        or "_hashopenssl" in frame
    )


def _handshake(args: argparse.Namespace) -> Callable[[], None]:
    ca, leaf, key = engine.bench_pki()
    handshake = engine.engine_handshake_factory(
        ca, leaf, key, verified_chain_cache=not args.no_cache, group=args.group
    )
    for _ in range(50):
        handshake()
    return handshake


def _loop(handshake: Callable[[], None], seconds: float) -> int:
    count = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(10):
            handshake()
        count += 10
    return count


def _shares(weights: Mapping[str, float], total: float) -> dict[str, float]:
    ordered = sorted(weights.items(), key=lambda item: -item[1])
    shares = {name: round(100 * value / total, 1) for name, value in ordered}
    crypto = sum(v for name, v in weights.items() if name in _CRYPTO_CATEGORIES)
    return {
        "crypto_total": round(100 * crypto / total, 1),
        "outside_crypto_total": round(100 - 100 * crypto / total, 1),
        **shares,
    }


def _cprofile(args: argparse.Namespace) -> dict[str, object]:
    handshake = _handshake(args)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    count = _loop(handshake, args.seconds)
    profile.disable()
    elapsed = time.perf_counter() - start
    # pstats keeps (file, line, function) -> (calls, primitive calls, own time, cumulative, callers)
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in stats.values())
    by_category: defaultdict[str, float] = defaultdict(float)
    rows: list[tuple[float, str, str, int]] = []
    for (file, line, function), (_, calls, own, _cumulative, _callers) in stats.items():
        where = f"{file}:{line}({function})" if file != "~" else function
        if "cryptography/" in file:
            category = _category(where, "crypto_other")
        elif file == "~":
            category = _category(function, "interpreter_builtins")
        else:
            category = _python_category(file)
        by_category[category] += own
        rows.append((own, category, where, calls))
    rows.sort(reverse=True)
    return {
        "tool": "cProfile",
        "handshakes": count,
        "handshakes_per_s_under_profiler": round(count / elapsed, 1),
        "profiled_ms_per_handshake": round(1000 * total / count, 3),
        "percent_by_category": _shares(by_category, total),
        "top_functions": _top(rows, total, count, args.top, lambda category: True),
        "top_outside_crypto": _top(
            rows, total, count, args.top, lambda category: category.startswith("outside_crypto")
        ),
    }


def _top(
    rows: Iterable[tuple[float, str, str, int]],
    total: float,
    count: int,
    limit: int,
    keep: Callable[[str], bool],
) -> list[dict[str, object]]:
    chosen = [row for row in rows if keep(row[1])][:limit]
    return [
        {
            "percent": round(100 * own / total, 1),
            "us_per_handshake": round(1e6 * own / count, 1),
            "calls_per_handshake": round(calls / count, 1),
            "category": category,
            "where": where.replace(str(Path.cwd()) + "/", ""),
        }
        for own, category, where, calls in chosen
    ]


# The engine module that makes a crypto call says what the call is for.
_CALLER_CATEGORIES = (
    ("certificates.py", "x509"),
    ("groups.py", "public_key"),
    ("signatures.py", "public_key"),
    ("signer.py", "public_key"),
    ("key_schedule.py", "symmetric"),
    ("record.py", "symmetric"),
    ("common.py", "symmetric"),
)
_PYTHON_FRAME = re.compile(r"\.py:\d+\)$|<string>:\d+\)$")


def _crypto_category(entry: str, caller: str) -> str:
    if _CATEGORIES[0][1].search(entry):
        return "x509"  # certificate objects, wherever they are used
    for module, category in _CALLER_CATEGORIES:
        if f"handshaker/tls/{module}" in caller or f"tls13/{module}" in caller:
            return category
    return _category(entry, "crypto_other")


def _collapsed(path: Path, limit: int) -> dict[str, object]:
    """Summarise py-spy's raw output: a sample is crypto if any frame is in a crypto library."""
    by_category: Counter[str] = Counter()
    crypto_entry: Counter[str] = Counter()
    outside_line: Counter[str] = Counter()
    outside_function: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, weight = line.rpartition(" ")
        if "handshake (engine.py" not in stack:
            continue  # set-up, imports, the loop itself
        samples = int(weight)
        total += samples
        frames = stack.split(";")
        crypto = next((i for i, frame in enumerate(frames) if _is_crypto_frame(frame)), None)
        if crypto is not None:
            callers = [f for f in frames[:crypto] if "handshaker/" in f]
            caller = callers[-1] if callers else ""
            category = _crypto_category(frames[crypto], caller)
            by_category[category] += samples
            crypto_entry[f"{category}: {caller}"] += samples
            continue
        python_frames = [f for f in frames if _PYTHON_FRAME.search(f)]
        leaf = python_frames[-1] if python_frames else frames[-1]
        by_category[_python_category(leaf)] += samples
        outside_line[leaf] += samples
        function = re.sub(r":\d+\)$", ")", leaf)
        if leaf.endswith("(<string>)") or "(<string>:" in leaf:
            # A generated __init__ (dataclasses): name the code that built the object.
            function = (
                f"dataclass __init__ <- {python_frames[-2] if len(python_frames) > 1 else ''}"
            )
        outside_function[function] += samples
    return {
        "tool": "py-spy --native",
        "samples_in_handshakes": total,
        "percent_by_category": _shares(by_category, total),
        "top_crypto_call_sites": _percentages(crypto_entry, total, limit, "call_site"),
        "top_outside_crypto_functions": _percentages(outside_function, total, limit, "function"),
        "top_outside_crypto_lines": _percentages(outside_line, total, limit, "where"),
    }


def _percentages(
    counts: Counter[str], total: int, limit: int, label: str
) -> list[dict[str, object]]:
    return [
        {"percent": round(100 * n / total, 1), label: name} for name, n in counts.most_common(limit)
    ]


_PHASES = (
    "client: ClientConnection() and its ClientHello",
    "server: ClientHello in, its flight out",
    "client: the server's flight in, Finished out",
    "server: the client's Finished in",
)


def _phases(args: argparse.Namespace) -> dict[str, object]:
    """Median microseconds of each step of the benchmark's handshake, timed one by one."""
    ca, leaf, key = engine.bench_pki()
    client_config, server_config = engine.engine_configs(
        ca, leaf, key, verified_chain_cache=not args.no_cache, group=args.group
    )
    samples: list[list[float]] = [[] for _ in _PHASES]
    deadline = time.perf_counter() + args.seconds
    warm_up = 100
    while time.perf_counter() < deadline or warm_up > 0:
        clock = time.perf_counter
        t0 = clock()
        client = ClientConnection(client_config)
        t1 = clock()
        server = ServerConnection(server_config)
        hello = client.data_to_send()
        t2 = clock()
        server.receive_data(hello)
        flight = server.data_to_send()
        t3 = clock()
        client.receive_data(flight)
        finished = client.data_to_send()
        t4 = clock()
        server.receive_data(finished)
        t5 = clock()
        if not isinstance(server.next_event(), HandshakeComplete):
            raise RuntimeError("engine handshake did not complete")
        warm_up -= 1
        if warm_up < 0:
            for phase, seconds in enumerate((t1 - t0, t3 - t2, t4 - t3, t5 - t4)):
                samples[phase].append(1e6 * seconds)
    medians = [statistics.median(phase) for phase in samples]
    return {
        "tool": "perf_counter around each step",
        "handshakes": len(samples[0]),
        "median_us": {name: round(us, 1) for name, us in zip(_PHASES, medians, strict=True)},
        "sum_of_medians_us": round(sum(medians), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-cache", action="store_true", help="verified-chain cache off")
    parser.add_argument("--group", choices=sorted(engine._ENGINE_GROUPS), default="x25519")
    parser.add_argument("--seconds", type=float, default=2.0, help="how long to run")
    parser.add_argument("--top", type=int, default=15, help="rows in each top list")
    parser.add_argument("--loop", action="store_true", help="only run, for py-spy to sample")
    parser.add_argument("--collapsed", type=Path, help="summarise py-spy raw output instead")
    parser.add_argument("--phases", action="store_true", help="time each step of a handshake")
    args = parser.parse_args(argv)
    if args.collapsed:
        result = _collapsed(args.collapsed, args.top)
    elif args.phases:
        result = _phases(args)
    elif args.loop:
        count = _loop(_handshake(args), args.seconds)
        result = {"handshakes_per_s": round(count / args.seconds, 1)}
    else:
        result = _cprofile(args)
    result.update(group=args.group, verified_chain_cache=not args.no_cache)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
