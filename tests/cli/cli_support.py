"""Running ``hub …`` as a user does: a process of its own from the repository root, with the
environment a test gives it (no other HUB_* variable), and the TLS files a wss:// hub needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key, made with the
    openssl command line (as an operator would)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=hub test", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key
