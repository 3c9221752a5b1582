"""The layers import downwards only (the architecture's rule), read from the source.

handshaker_wire (stubs, HKDF, record protection) is the bottom; the client stands on it
alone; the engine (handshaker.tls) on it alone and without I/O; keystore, sessions, api
and the server above, in that order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (ROOT / "service", ROOT / "clients" / "python")

# Each layer and the project layers it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "handshaker_wire": set(),
    "handshaker_client": {"handshaker_wire"},
    "handshaker.tls": {"handshaker_wire"},
    "handshaker.keystore": {"handshaker.tls", "handshaker_wire"},
    "handshaker.sessions": {"handshaker.tls", "handshaker.keystore", "handshaker_wire"},
    "handshaker.api": {
        "handshaker.tls", "handshaker.keystore", "handshaker.sessions", "handshaker_wire",
    },
}
# The engine has no I/O, threads, clock or RNG of its own; connection.py only names the
# process's clock and RNG as the defaults a caller may replace.
ENGINE_FORBIDDEN = {"grpc", "socket", "threading", "asyncio", "time", "os", "random", "secrets"}
ENGINE_DEFAULTS = {"connection.py"}
# compiled.py chooses, once at import, where the engine's modules load from: it reads
# HANDSHAKER_ENGINE and the package's own files, and nothing while a handshake runs.
ENGINE_LOADER = "compiled.py"


def _modules() -> list[tuple[str, Path]]:
    found = []
    for base in SOURCES:
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if parts[0] not in ("handshaker", "handshaker_client", "handshaker_wire"):
                continue
            if "v1" in parts:  # generated
                continue
            found.append((".".join(p for p in parts if p != "__init__"), path))
    return found


def _imports(module: str, path: Path) -> set[str]:
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names.add(".".join([*base, *([node.module] if node.module else [])]))
            else:
                names.add(node.module or "")
    return names


def _layer(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "handshaker" and len(parts) > 1 else parts[0]


MODULES = _modules()


def test_the_sources_were_found() -> None:
    layers = {_layer(m) for m, _ in MODULES}
    assert set(ALLOWED) <= layers


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_a_layer_imports_only_the_layers_below_it(module: str, path: Path) -> None:
    layer = _layer(module)
    if layer not in ALLOWED:
        return  # server, cli, workers: the top, which may use everything
    ours = {n for n in map(_layer, _imports(module, path)) if n.startswith("handshaker")}
    upward = ours - ALLOWED[layer] - {layer}
    assert not upward, f"{module} imports {sorted(upward)}, above or beside its layer"


@pytest.mark.parametrize(
    ("module", "path"),
    [(m, p) for m, p in MODULES if _layer(m) == "handshaker.tls"],
    ids=[m for m, _ in MODULES if _layer(m) == "handshaker.tls"],
)
def test_the_engine_does_no_io_of_its_own(module: str, path: Path) -> None:
    roots = {name.split(".")[0] for name in _imports(module, path)}
    forbidden = roots & ENGINE_FORBIDDEN
    if path.name in ENGINE_DEFAULTS:
        forbidden -= {"os", "time"}
    if path.name == ENGINE_LOADER and path.parent.name == "tls":
        forbidden -= {"os"}
    assert not forbidden, f"{module} imports {sorted(forbidden)}"
