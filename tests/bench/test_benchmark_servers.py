"""benchmarks/targets.py: ``HUB_SERVER_PYTHONPATH`` runs the server of another checkout, so
that a before/after compares two servers (before this was checked, both ran this one's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from targets import server_env


def test_the_server_comes_from_the_other_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    (other / "hub").mkdir(parents=True)
    (other / "hub" / "__init__.py").write_text("")
    (other / "hub" / "__main__.py").write_text("print(__file__)\n")
    monkeypatch.setenv("HUB_SERVER_PYTHONPATH", str(other))
    ran = subprocess.run(
        [sys.executable, "-m", "hub", "serve"],
        cwd=ROOT,  # where the benchmarks run from: this checkout's hub is in the way
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert Path(ran.stdout.strip()) == other / "hub" / "__main__.py"
