"""The README's examples run as written, against a real hub."""

from __future__ import annotations

import re
from collections.abc import Callable

from support import ROOT, HubProcess, run_python


def python_block_after(heading: str) -> str:
    """The first ```python block after ``heading`` in the README."""
    text = (ROOT / "README.md").read_text()
    start = text.index(heading)
    match = re.compile(r"```python\n(.*?)```", re.S).search(text, start)
    assert match is not None, f"no python block after {heading!r}"
    return match.group(1)


def test_the_hub_v1_python_example_runs_to_its_end(start_hub: Callable[..., HubProcess]) -> None:
    """Both halves run (hub.v1, then raw mode), and the script ends on its own."""
    hub = start_hub("--workers", "1")
    code = python_block_after("## One socket, many channels").replace(
        "127.0.0.1:8765", f"127.0.0.1:{hub.port}"
    )
    out = run_python("-c", code)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert '"type":"ack","op":"subscribe"' in lines[0]
    assert any("'data': {'msg': 'hi'}" in line for line in lines[1:4])
    assert any("'binary': 'AAFiaW5hcnkgcGF5bG9hZA=='" in line for line in lines[1:4])
    assert lines[-1] == "hello"  # the raw-mode half ran
