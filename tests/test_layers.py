"""The layers of docs/architecture.md, checked on the source: one rule per folder.

Each rule names what a folder (or top-level module) of ``hub/`` may import, so a new module
is covered by the rule of the folder it lands in, with no list to keep by hand.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT

HUB = ROOT / "hub"

#: Third-party packages that do I/O; the pure core imports none of them.
IO_PACKAGES = {"asyncio", "websockets", "redis", "hiredis", "uvloop", "aiohttp", "picows"}


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(*parts: str) -> Iterator[Path]:
    """The .py files of a folder of hub/, or one module."""
    path = HUB.joinpath(*parts)
    if path.suffix == ".py":
        yield path
    else:
        yield from sorted(path.rglob("*.py"))


def hub_imports(path: Path) -> set[str]:
    return {n for n in imports_of(path) if n == "hub" or n.startswith("hub.")}


def top(name: str) -> str:
    """``hub.core.protocol`` → ``hub.core``; ``hub.node`` → ``hub.node``."""
    return ".".join(name.split(".")[:2])


#: folder or module → the parts of hub it may import (besides itself).
MAY_IMPORT: dict[str, set[str]] = {
    "core": {"hub"},
    "brokers": {"hub.core"},
    "node": {"hub.core", "hub.brokers"},
    "ws": {"hub.core", "hub.node"},
    "http": {"hub.core", "hub.node"},
    "metrics.py": {"hub", "hub.core"},
    "app.py": {"hub", "hub.core", "hub.brokers", "hub.node", "hub.ws", "hub.http", "hub.metrics"},
    "client": {"hub", "hub.core", "hub.brokers"},
    "cli": {"hub", "hub.core", "hub.brokers", "hub.app", "hub.bench", "hub.client"},
    "bench": {"hub", "hub.core"},
}


def test_every_module_is_under_a_rule() -> None:
    """A new folder or top-level module gets a rule here before it lands."""
    ruled = {HUB / name for name in MAY_IMPORT}
    exempt = {HUB / n for n in ("__init__.py", "__main__.py", "py.typed", "static")}
    unruled = [p for p in HUB.iterdir() if p not in ruled | exempt and p.name != "__pycache__"]
    assert not unruled, f"add a rule to MAY_IMPORT for {unruled}"


@pytest.mark.parametrize("name", sorted(MAY_IMPORT))
def test_folder_imports_only_what_its_layer_may(name: str) -> None:
    """Imports point down the layers: each folder names only the parts below it."""
    own = "hub." + name.removesuffix(".py")
    allowed = MAY_IMPORT[name] | {own}
    for path in modules(name):
        bad = {n for n in hub_imports(path) if top(n) not in allowed}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: not below its layer"


def test_core_imports_no_io() -> None:
    """hub/core is pure: no asyncio, sockets, Redis or websockets."""
    for path in modules("core"):
        bad = {n for n in imports_of(path) if n.split(".")[0] in IO_PACKAGES}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_only_ws_imports_websockets() -> None:
    """hub/ws is the only package of the server that imports websockets (the bench and the
    Python client are clients of their own)."""
    for path in HUB.rglob("*.py"):
        if any(path.is_relative_to(HUB / name) for name in ("ws", "bench", "client")):
            continue
        bad = {n for n in imports_of(path) if n.split(".")[0] == "websockets"}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: only hub/ws may"


def test_node_knows_only_the_broker_protocol() -> None:
    """hub/node never names a concrete broker."""
    for path in modules("node"):
        bad = {n for n in hub_imports(path) if n.startswith("hub.brokers")}
        assert bad <= {"hub.brokers.base"}, (path, bad)


def test_brokers_never_import_websockets_or_aiohttp() -> None:
    for path in modules("brokers"):
        bad = {n for n in imports_of(path) if n.split(".")[0] in ("websockets", "aiohttp")}
        assert not bad, path
