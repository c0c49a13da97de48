"""The layers of docs/architecture.md, checked on the source: one rule per folder.

Each rule names what a folder (or top-level module) of ``hub/`` may import, so a new module
is covered by the rule of the folder it lands in, with no list to keep by hand. Two more rules
hold for the whole of ``hub/``: hub/core is pure (see ``core_io``), and no two modules import
each other, however indirectly (see ``import_cycles``).
"""

from __future__ import annotations

import ast
import sys
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
    "ws": {"hub.core", "hub.node", "hub.hooks"},
    "http": {"hub.core", "hub.node", "hub.hooks"},
    "hooks": {"hub.core"},
    "metrics": {"hub", "hub.core"},
    "runtime": {"hub.core"},
    "wiring.py": {
        "hub",
        "hub.core",
        "hub.brokers",
        "hub.node",
        "hub.ws",
        "hub.http",
        "hub.hooks",
        "hub.metrics",
        "hub.runtime",
    },
    "client": {"hub", "hub.core", "hub.brokers"},
    "cli": {"hub", "hub.core", "hub.brokers", "hub.app", "hub.bench", "hub.client", "hub.runtime"},
    "bench": {"hub", "hub.core", "hub.runtime"},
}
#: app.py wires what wiring.py builds.
MAY_IMPORT["app.py"] = MAY_IMPORT["wiring.py"] | {"hub.wiring"}


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
    """hub/core imports no asyncio, sockets, Redis or websockets."""
    for path in modules("core"):
        bad = {n for n in imports_of(path) if n.split(".")[0] in IO_PACKAGES}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


#: Standard modules that do I/O or touch the process: files, sockets, TLS, processes,
#: signals, threads, the interpreter's streams. hub/core imports none of them.
IO_MODULES = {
    "os",
    "sys",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "glob",
    "mmap",
    "fcntl",
    "ssl",
    "socket",
    "socketserver",
    "select",
    "selectors",
    "resource",
    "subprocess",
    "signal",
    "threading",
    "multiprocessing",
    "concurrent",
    "ctypes",
    "http.client",
    "http.server",
    "urllib.request",
}
#: Builtins that do I/O.
IO_BUILTINS = {"open", "print", "input"}
#: Methods of pathlib and file objects that touch the file system.
IO_METHODS = {
    "read_text",
    "read_bytes",
    "write_text",
    "write_bytes",
    "open",
    "exists",
    "is_file",
    "is_dir",
    "stat",
    "iterdir",
    "glob",
    "rglob",
    "mkdir",
    "unlink",
    "rename",
    "touch",
}
#: The only I/O of hub/core: a setting's own input, read where the setting is built. Each
#: entry must be in use, so the list cannot outlive its reason.
CORE_IO_ALLOWED: dict[str, set[str]] = {
    # Settings.from_env reads the HUB_* variables and the HUB_CONFIG file; num_workers is
    # one per CPU when --workers is 0.
    "config.py": {"import os", "os.environ", "os.cpu_count", "import pathlib", ".read_bytes()"},
    # Authenticator.create takes HUB_JWT_PUBLIC_KEY as PEM text or the path of a PEM file.
    "auth.py": {"import pathlib", ".read_text()"},
}


def core_io(path: Path) -> set[str]:
    """The I/O that ``path`` does, as the names it uses: ``import M`` for a module of
    IO_MODULES (``from M import x`` too), ``os.NAME`` for each name of ``os`` it uses,
    ``NAME()`` for a call of a builtin of IO_BUILTINS and ``.NAME()`` for a call of a method
    of IO_METHODS, whatever its object.

    "Pure" here means: what a function of hub/core returns depends on its arguments (and on
    the clock or randomness only when it takes them as arguments or says so), and calling
    it opens, reads and writes nothing: no files, sockets, processes, signals or threads. Two
    things are not counted: the ``logging`` module (its records go to whatever handlers the
    process configured, outside core), and randomness (``random``, for backoff jitter).
    """
    uses: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if node.module == "os":
                uses.update(f"os.{a.name}" for a in node.names)
        else:
            names = []
        for name in names:
            parts = name.split(".")
            uses.update(
                f"import {'.'.join(parts[:i])}"
                for i in range(1, len(parts) + 1)
                if ".".join(parts[:i]) in IO_MODULES
            )
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            uses.add(f"os.{node.attr}")
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in IO_BUILTINS:
                uses.add(f"{node.func.id}()")
            elif isinstance(node.func, ast.Attribute) and node.func.attr in IO_METHODS:
                uses.add(f".{node.func.attr}()")
    return uses


@pytest.mark.parametrize("path", list(modules("core")), ids=lambda p: p.name)
def test_core_is_pure(path: Path) -> None:
    """hub/core does no I/O but the settings' own inputs that CORE_IO_ALLOWED names."""
    allowed = CORE_IO_ALLOWED.get(path.name, set())
    uses = core_io(path)
    assert uses <= allowed, f"{path.relative_to(ROOT)} does I/O: {sorted(uses - allowed)}"
    assert allowed <= uses, f"CORE_IO_ALLOWED names what {path.name} no longer does"


def test_core_io_sees_each_kind_of_io(tmp_path: Path) -> None:
    """The purity check catches an I/O import, an os name, an open() and a file method."""
    source = tmp_path / "impure.py"
    source.write_text(
        "import ssl\nfrom os import getpid\nfrom concurrent.futures import Future\n"
        "def f(p):\n    open(p)\n    os.getcwd()\n    return p.read_text()\n"
    )
    assert core_io(source) == {
        "import ssl",
        "import os",
        "os.getpid",
        "import concurrent",
        "open()",
        "os.getcwd",
        ".read_text()",
    }


def hub_module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of ``root``/hub/, by its dotted name (a package by its own name)."""
    found = {}
    for path in (root / "hub").rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the modules of hub/ it imports anywhere: at the top, inside a function or
    under ``TYPE_CHECKING``. A relative import is resolved; ``hub.a.b`` or ``from hub.a
    import b`` counts as an import of the deepest module of the name that exists."""

    def deepest(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: list[str] = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets += [f"{base}.{a.name}" for a in node.names]
        graph[name] = {d for d in map(deepest, targets) if d is not None and d != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(cycles)


def test_no_import_cycles() -> None:
    """No module of hub/ imports itself through others, not even inside a function or
    under TYPE_CHECKING: the imports of hub/ run one way."""
    cycles = import_cycles(import_graph(hub_module_files()))
    listed = "\n".join(f"  {len(c)} modules: {', '.join(c)}" for c in cycles)
    assert not cycles, f"import cycles in hub/:\n{listed}"


def test_import_cycles_are_found_through_functions_and_relative_imports(tmp_path: Path) -> None:
    """A circle closed by a relative import, an import inside a function and one under
    TYPE_CHECKING is found, once, with its modules; a module outside it is not listed."""
    files = {
        "__init__.py": "",
        "a.py": "from . import b\n",
        "b.py": "def f():\n    from hub.pkg.c import x\n",
        "pkg/__init__.py": "",
        "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import y\n",
        "d.py": "import hub.a.nothing\n",
    }
    for name, text in files.items():
        (tmp_path / "hub" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "hub" / name).write_text(text)
    graph = import_graph(hub_module_files(tmp_path))
    assert graph["hub.d"] == {"hub.a"}  # the deepest module that exists
    assert import_cycles(graph) == [["hub.a", "hub.b", "hub.pkg.c"]]
    assert import_cycles({"x": {"y"}, "y": {"x"}, "z": {"z"}}) == [["x", "y"]]


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


def test_the_architecture_names_every_module() -> None:
    """docs/architecture.md's tree names each module of hub/, so it cannot drift silently."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    unnamed = [
        str(path.relative_to(HUB))
        for path in sorted(HUB.rglob("*.py"))
        if path.name not in ("__init__.py", "__main__.py") and path.name not in text
    ]
    assert not unnamed, f"docs/architecture.md does not name {unnamed}"
