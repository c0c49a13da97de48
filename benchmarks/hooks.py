"""What the backend hooks cost: connections per second through the connect hook against a JWT,
and the p99 of a publish on a channel with the publish hook against one without.

    python benchmarks/hooks.py --repeat 3 [--sockets 2000] [--seconds 10] [--rate 200]

Starts one redis-server, the worked example backend (``examples/backend.py``) and one
``hub serve --workers 1`` with the connect and publish hooks (``chat.*`` has
``proxy_publish``) and a JWT secret, so the same hub serves both sides of each comparison:

* **connects:** ``hub bench conns -n SOCKETS`` with a ``Cookie: session=…`` header (no JWT:
  the connect hook decides each handshake) and with ``--token`` (a valid JWT: no hook);
* **publishes:** ``hub bench echo --protocol hub.v1`` at a fixed rate on ``chat.bench``
  (every publish goes through the publish hook, which rewrites it) and on ``plain.bench``.

Runs alternate, and the medians of ``--repeat`` runs are printed as JSON with their ratios.
Run nothing else heavy meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt

sys.path.insert(0, str(Path.cwd() / "benchmarks"))

from targets import PY, bench, free_port, redis_server, stop, wait_port

SECRET = "bench-secret"
CONFIG = """
[[namespaces]]
pattern = "chat.*"
proxy_publish = true
"""


@contextlib.contextmanager
def backend() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [PY, "examples/backend.py", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield port
    finally:
        stop([proc])


@contextlib.contextmanager
def hooked_hub(redis_url: str, backend_port: int) -> Iterator[int]:
    hooks = f"http://127.0.0.1:{backend_port}/hooks"
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(CONFIG)
    port = free_port()
    argv = [
        PY, "-m", "hub", "serve", "--port", str(port), "--workers", "1",
        "--redis", redis_url, "--jwt-secret", SECRET, "--config", f.name,
        "--proxy-connect-url", f"{hooks}/connect", "--proxy-publish-url", f"{hooks}/publish",
        "--proxy-header", "Cookie", "--ping-interval-s", "0",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(1)
        yield port
    finally:
        stop([proc])
        Path(f.name).unlink(missing_ok=True)


def token() -> str:
    claims = {"sub": "bench", "channels": ["*"], "exp": int(time.time()) + 3600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def connects(port: int, sockets: int, auth: list[str]) -> dict[str, Any]:
    report = bench(
        "conns", "--url", f"ws://127.0.0.1:{port}/", "--protocol", "hub.v1", "--channel", "chat.c",
        "-n", str(sockets), "--hold", "1", *auth,
    )  # fmt: skip
    return {
        "connected": report["connections"]["connected"],
        "failed": report["connections"]["failed"],
        "per_s": report["connections"].get("connect_rate_per_s"),
    }


def publishes(port: int, channel: str, rate: int, seconds: float) -> dict[str, Any]:
    report = bench(
        "echo", "--url", f"ws://127.0.0.1:{port}/", "--protocol", "hub.v1",
        "--channel", channel, "-n", "20", "--rate", str(rate), "-d", str(seconds),
        "--token", token(),
    )  # fmt: skip
    latency = {k: v / 1000 for k, v in report["latency_us"].items() if isinstance(v, int | float)}
    return {
        "received": report["messages"]["received"],
        "lost": report["messages"]["lost"],
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=200, help="publishes per second in all")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"hook": [], "jwt": [], "chat": [], "plain": []}
    with redis_server() as redis_url, backend() as backend_port:
        with hooked_hub(redis_url, backend_port) as port:
            for _ in range(args.repeat):
                runs["hook"].append(connects(port, args.sockets, ["-H", "Cookie: session=bench"]))
                runs["jwt"].append(connects(port, args.sockets, ["--token", token()]))
                runs["chat"].append(publishes(port, "chat.bench", args.rate, args.seconds))
                runs["plain"].append(publishes(port, "plain.bench", args.rate, args.seconds))
                for name, values in runs.items():
                    print(json.dumps({name: values[-1]}), flush=True)

    def median(name: str, key: str) -> float:
        return statistics.median(float(r[key] or 0) for r in runs[name])

    summary = {
        "connects_per_s": {"hook": median("hook", "per_s"), "jwt": median("jwt", "per_s")},
        "publish_p99_ms": {"hook": median("chat", "p99_ms"), "none": median("plain", "p99_ms")},
        "publish_p50_ms": {"hook": median("chat", "p50_ms"), "none": median("plain", "p50_ms")},
    }
    summary["ratios"] = {
        "connects_hook_over_jwt": round(
            summary["connects_per_s"]["hook"] / summary["connects_per_s"]["jwt"], 3
        ),
        "publish_p99_hook_over_none": round(
            summary["publish_p99_ms"]["hook"] / summary["publish_p99_ms"]["none"], 3
        ),
    }
    print(json.dumps({"median": summary}))


if __name__ == "__main__":
    main()
