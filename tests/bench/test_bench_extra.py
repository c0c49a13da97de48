"""The load tester is an extra: the server installs none of what only the bench uses."""

from __future__ import annotations

import ast
import tomllib

from support import ROOT, run_python

from hub import DISTRIBUTION
from hub.bench import REQUIRES

BENCH_ONLY = {
    "hdrhistogram": "hdrh",
    "numpy": "numpy",
    "rich": "rich",
    "picows": "picows",
    "psutil": "psutil",
}


def requirement_names(requirements: list[str]) -> set[str]:
    return {r.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip() for r in requirements}


def test_the_bench_extra_holds_what_only_the_bench_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION
    bench = requirement_names(project["optional-dependencies"]["bench"])
    assert bench == set(BENCH_ONLY)
    assert set(REQUIRES) == set(BENCH_ONLY.values())
    assert not bench & requirement_names(project["dependencies"])
    for path in (ROOT / "hub").rglob("*.py"):
        if path.is_relative_to(ROOT / "hub" / "bench"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] not in REQUIRES, f"{path} imports {name}"


def test_hub_bench_without_the_extra_says_how_to_install_it() -> None:
    """With picows missing, `hub bench` exits 2 and names the extra, with no traceback."""
    code = (
        "import sys; sys.modules['picows'] = None; from hub.cli import main; "
        "sys.exit(main(['bench', 'fanout', '--help']))"
    )
    out = run_python("-c", code, timeout=30)
    assert out.returncode == 2, out.stderr
    assert f"pip install '{DISTRIBUTION}[bench]'" in out.stderr
    assert "Traceback" not in out.stderr
