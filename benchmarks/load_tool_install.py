"""Installing the other load tools of benchmarks/compare_load_tools.py when they are missing:
Artillery with npm into a git-ignored folder (benchmarks/.tools/ by default; never committed),
Tsung with apt-get (Debian's ``tsung``, as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ARTILLERY = "artillery@2.0.21"


class ToolMissing(RuntimeError):
    """A tool that is not installed and could not be."""


def ensure_artillery(tools_dir: Path) -> Path:
    prefix = tools_dir / "artillery"
    binary = prefix / "node_modules" / ".bin" / "artillery"
    if binary.exists():
        return binary
    if shutil.which("npm") is None:
        raise ToolMissing("Artillery needs npm (Node.js 18+): apt-get install nodejs npm")
    print(f"installing {ARTILLERY} into {prefix} (npm) ...", file=sys.stderr, flush=True)
    env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1", "PUPPETEER_SKIP_DOWNLOAD": "1"}
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), ARTILLERY],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if done.returncode or not binary.exists():
        raise ToolMissing(f"npm install {ARTILLERY} failed:\n{done.stderr[-2000:]}")
    return binary


def ensure_tsung() -> Path:
    found = shutil.which("tsung")
    if found:
        return Path(found)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ToolMissing("Tsung is not installed: apt-get install tsung (Debian, as root)")
    print("installing tsung (apt-get) ...", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(
        ["apt-get", "install", "-y", "tsung"],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    found = shutil.which("tsung")
    if done.returncode or not found:
        raise ToolMissing(f"apt-get install tsung failed:\n{done.stderr[-2000:]}")
    return Path(found)


def ensure_tools(tools_dir: Path, tools: tuple[str, ...]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    if "artillery" in tools:
        out["artillery"] = ensure_artillery(tools_dir)
    if "tsung" in tools:
        out["tsung"] = ensure_tsung()
    return out


if __name__ == "__main__":
    # scripts/test.sh runs this before pytest, so no test waits on an install.
    paths = ensure_tools(Path(__file__).resolve().parent / ".tools", ("artillery", "tsung"))
    print(" ".join(f"{name}={path}" for name, path in paths.items()), file=sys.stderr)
