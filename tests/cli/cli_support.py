"""Running ``hub …`` as a user does: a process of its own from the repository root, with the
environment a test gives it (no other HUB_* variable), and the TLS files a wss:// hub needs."""

from __future__ import annotations

import subprocess
import sys

from support import ROOT, clean_env, t


def hub(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``python -m hub ARGS``; its exit status and output (``timeout`` is scaled)."""
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        capture_output=True,
        text=True,
        timeout=t(timeout),
        cwd=ROOT,
        env=clean_env(**(env or {})),
        stdin=subprocess.DEVNULL,
    )
