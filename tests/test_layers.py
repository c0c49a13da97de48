"""The import rules of the architecture (DESIGN.md), checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

from support import ROOT

HUB = ROOT / "hub"


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_pure_modules_import_no_io() -> None:
    """The pure modules import no asyncio, websockets or redis."""
    for mod in ("protocol", "channels", "errors", "config", "backoff", "registry"):
        bad = {
            n
            for n in imports_of(HUB / f"{mod}.py")
            if n.split(".")[0] in ("asyncio", "websockets", "redis", "hiredis", "uvloop")
        }
        assert not bad, f"hub/{mod}.py imports {bad}"


def test_node_knows_only_the_broker_protocol() -> None:
    """node.py never names a concrete broker."""
    names = imports_of(HUB / "node.py")
    assert not {n for n in names if n.startswith("hub.brokers.") and n != "hub.brokers.base"}


def test_brokers_never_import_the_node_or_server() -> None:
    for path in (HUB / "brokers").glob("*.py"):
        names = imports_of(path)
        assert not names & {"hub.node", "hub.server", "hub.app"}, path


def test_client_side_never_imports_the_server_side() -> None:
    """hub/bench and hub/client.py speak the wire protocol only."""
    server_side = {"hub.node", "hub.server", "hub.app", "hub.fanout", "hub.registry", "hub.brokers"}
    paths = [*list((HUB / "bench").glob("*.py")), HUB / "client.py"]
    for path in paths:
        if path.exists():
            assert not {
                n for n in imports_of(path) if n in server_side or n.startswith("hub.brokers")
            }, path
