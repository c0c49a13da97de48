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


def run_example(heading: str, hub: HubProcess) -> list[str]:
    """The output lines of the example after ``heading``, run against ``hub``; it must end
    on its own, successfully."""
    code = python_block_after(heading).replace("127.0.0.1:8765", f"127.0.0.1:{hub.port}")
    out = run_python("-c", code)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_the_hub_v1_python_example_runs_to_its_end(start_hub: Callable[..., HubProcess]) -> None:
    """Both halves run (hub.v1, then raw mode), and the script ends on its own."""
    lines = run_example("## One socket, many channels", start_hub("--workers", "1"))
    assert '"type":"ack","op":"subscribe"' in lines[0]
    assert any("'data': {'msg': 'hi'}" in line for line in lines[1:4])
    assert any("'binary': 'AAFiaW5hcnkgcGF5bG9hZA=='" in line for line in lines[1:4])
    assert lines[-1] == "hello"  # the raw-mode half ran


def test_the_python_client_example_runs_to_its_end(start_hub: Callable[..., HubProcess]) -> None:
    """hub.client's example: subscribe, publish, print the message back, and end."""
    lines = run_example("## The Python client", start_hub("--workers", "1"))
    assert lines == ["news {'headline': 'hi'}"]
