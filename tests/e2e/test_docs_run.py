"""Every Python, shell and JavaScript block of the README and docs/ runs as written.

Each runs against one real "docs world": a redis-server and a hub with the HTTP API
(key ``secret``), history on every channel and the README's own ``hub.toml``. The addresses the
docs use (``127.0.0.1:8765``, ``:8766``, ``redis://127.0.0.1:6379``, ``wss://hub.example.com``,
the embedded Redis's socket, …) are rewritten to that world's; nothing else in a block changes.
Python and shell blocks run as processes; JavaScript blocks run as a module script in headless
Chromium, on a page of the hub's own origin. A block must end with exit status 0 (or, in a
browser, without an uncaught error), or, when marked ``expect TEXT`` (support/docs.py), print
TEXT. A block that cannot run here (it sets a machine up, or loads it for minutes) is marked
``skip`` with its reason, and its command lines still parse in tests/test_docs_snippets.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from support import HubProcess, RedisServer, clean_env, stop_process, t
from support.browser import chromium
from support.docs import Block, blocks

API_KEY = "secret"  # the README's KEY
JWT_SECRET = "change-me"  # the README's SECRET
TICKED = ("news", "chat", "chat.1")  # the channels the docs' listeners read
RUNNABLE = [b for language in ("python", "sh", "js") for b in blocks(language)]
#: A reader-supplied value the docs name but do not define, for each language.
PRELUDE = {
    "sh": 'set -eo pipefail\ncurl() { command curl -sS --fail-with-body "$@"; }\n',
    "js": "window.jwt = '';\n",
}


@dataclass
class World:
    redis: RedisServer
    hub: HubProcess
    cwd: Path

    def rewrite(self, body: str) -> str:
        ws, http = f"127.0.0.1:{self.hub.port}", self.hub.base_url
        for old, new in [
            (r"wss://hub(-[a-z])?\.example\.com", f"ws://{ws}"),
            (r"https://hub(-[a-z])?\.example\.com", http),
            (r"https://api\.example\.com", self.hub.api_url),
            (r"(localhost|127\.0\.0\.1|10\.0\.0\.\d+):8765", ws),
            (r"http://127\.0\.0\.1:8766", self.hub.api_url),
            (r"redis://(127\.0\.0\.1|my-redis):6379", self.redis.url),
            (r"unix:///tmp/hub-redis-X+/redis\.sock", self.redis.url),
            (r"(?<![\w/])\.venv/bin/", str(Path(sys.executable).parent) + "/"),
        ]:
            body = re.sub(old, new, body)
        return body


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    cwd = tmp_path_factory.mktemp("docs-world")
    (cwd / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (cwd / "hub.toml").write_text(next(b.body for b in blocks("toml")))
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (cwd / "signing-key.pem").write_bytes(pem)
    with RedisServer.running() as redis:
        hub = HubProcess(
            *("--workers", "1", "--redis", redis.url, "--api-key", API_KEY),
            *("--config", str(cwd / "hub.toml"), "--history-size", "100"),
            *("--history-ttl-s", "300"),
            api=True,
        )
        try:
            yield World(redis, hub.wait_ready(20), cwd)
        finally:
            hub.stop()


def test_every_block_runs_or_says_why_not() -> None:
    """A block with no mark runs; a skip always gives its reason."""
    assert len(RUNNABLE) >= 10
    for block in RUNNABLE:
        if block.mark == "skip":
            assert len(block.argument.split()) >= 3, f"{block}: say why it is not run"
        elif block.language == "js":  # a page never "ends": say what it prints
            assert block.mark == "expect", f"{block}: mark it expect TEXT, or skip REASON"


def _runnable(block: Block) -> bool:
    return block.mark != "skip"


@pytest.mark.parametrize(
    "block", [b for b in RUNNABLE if b.language != "js" and _runnable(b)], ids=str
)
def test_block_runs(block: Block, world: World) -> None:
    code = PRELUDE.get(block.language, "") + world.rewrite(block.body)
    argv = [sys.executable, "-c", code] if block.language == "python" else ["bash", "-c", code]
    env = clean_env(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        # The hubs' own settings, as a reader's shell has them.
        HUB_REDIS_URL=world.redis.url,
        HUB_CONFIG=str(world.cwd / "hub.toml"),
        HUB_JWT_SECRET=JWT_SECRET,
    )
    # Its own process group: a shell block's commands are stopped with it (by that group's id).
    proc = subprocess.Popen(
        argv,
        cwd=world.cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + t(30)
    stop_ticking = threading.Event()
    threading.Thread(target=tick_sync, args=(world, stop_ticking), daemon=True).start()
    try:
        if block.mark == "expect":
            os.set_blocking(proc.stdout.fileno(), False)
            text = ""
            while block.argument not in text:
                text += (proc.stdout.read() or b"").decode(errors="replace")
                if proc.poll() is not None:
                    text += (proc.stdout.read() or b"").decode(errors="replace")
                    assert proc.returncode == 0, f"{block} exited {proc.returncode}:\n{text}"
                    assert block.argument in text, f"{block}: no {block.argument!r} in:\n{text}"
                assert time.monotonic() < deadline, f"{block}: no {block.argument!r} in:\n{text}"
                time.sleep(0.05)
        else:
            out, _ = proc.communicate(timeout=t(30))
            assert proc.returncode == 0, f"{block} exited {proc.returncode}:\n{out.decode()}"
    finally:
        stop_ticking.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        stop_process(proc, t(5))


def tick_sync(world: World, stop: threading.Event) -> None:
    """As :func:`tick`, for the blocks that run as processes, until ``stop``."""
    for n in itertools.count():
        for channel in TICKED:
            request = urllib.request.Request(
                f"{world.hub.api_url}/api/publish/{channel}",
                data=f"docs-tick {n}".encode(),
                headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "text/plain"},
            )
            urllib.request.urlopen(request, timeout=t(5)).close()
        if stop.wait(0.2):
            return


async def tick(world: World) -> None:
    """Publish ``docs-tick N`` to the channels the docs listen on, every 0.2 s."""
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "text/plain"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for n in itertools.count():
            for channel in TICKED:
                url = f"{world.hub.api_url}/api/publish/{channel}"
                async with http.post(url, data=f"docs-tick {n}") as reply:
                    assert reply.status == 200, await reply.text()
            await asyncio.sleep(0.2)


@pytest.mark.parametrize(
    "block", [b for b in RUNNABLE if b.language == "js" and _runnable(b)], ids=str
)
async def test_browser_block_runs(block: Block, world: World) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        logs: list[str] = []
        errors: list[str] = []
        done = asyncio.Event()

        def log(text: str, into: list[str]) -> None:
            into.append(text)
            if into is errors or block.argument in text:
                done.set()

        page.on("console", lambda m: log(m.text, logs))
        page.on("pageerror", lambda e: log(str(e), errors))
        # The reader's own backend, which the docs' pages fetch a token from: here it hands
        # out the docs world's API key, which every endpoint accepts.
        await page.route("**/hub-token", lambda route: route.fulfill(body=API_KEY))
        await page.goto(world.hub.base_url + "/healthz")  # a page of the hub's origin
        await page.add_script_tag(content=PRELUDE["js"])
        await page.add_script_tag(content=world.rewrite(block.body), type="module")
        ticker = asyncio.create_task(tick(world))  # for the blocks that only listen
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), t(20))
        ticker.cancel()
        await asyncio.sleep(0.2)  # an error just after the text still counts
        assert not errors, f"{block}: {errors}"
        assert any(block.argument in line for line in logs), f"{block}: {logs}"


async def test_the_readme_backend_hooks_block_runs_with_the_example_backend(
    tmp_path: Path,
) -> None:
    """The README's hooks block, which serves until stopped, run as written: examples/backend.py
    on the block's port (rewritten to a free one) and ``hub serve`` with the block's flags; a
    browser-like client with a session cookie is let in by the connect hook, and an RPC goes
    to the backend."""
    import json

    from support import free_port, wait_until
    from support.waits import ROOT
    from websockets.asyncio.client import connect

    [block] = [b for b in blocks("sh") if "examples/backend.py" in b.body]
    backend_port, hub_port = free_port(), free_port()
    text = block.body.replace(":8080", f":{backend_port}").replace("\\\n", " ")
    backend_line, hub_line = (line.strip() for line in text.strip().splitlines())
    backend_argv = backend_line.removesuffix("&").split()
    assert backend_argv[:2] == ["python", "examples/backend.py"], backend_line
    backend_argv[0] = sys.executable
    backend_argv[backend_argv.index("--port") + 1] = str(backend_port)
    hub_argv = hub_line.split()
    assert hub_argv[:2] == ["hub", "serve"], hub_line
    log = (tmp_path / "backend.log").open("wb")
    backend = subprocess.Popen(backend_argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _is_open(backend_port), 15, "the example backend")
        args = (*hub_argv[2:], "--workers", "1")
        with HubProcess(*args, port=hub_port, log_dir=tmp_path) as hub:
            hub.wait_ready()
            headers = {"Cookie": "session=reader"}
            async with connect(
                hub.url(),
                subprotocols=["hub.v1"],
                additional_headers=headers,  # type: ignore[list-item]
            ) as ws:
                connected = json.loads(await asyncio.wait_for(ws.recv(), t(5)))
                assert connected["type"] == "connected" and connected["user"] == "reader"
                await ws.send(json.dumps({"op": "rpc", "method": "whoami", "id": 1}))
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), t(5)))
                    if frame.get("type") == "rpc":
                        break
                assert frame["id"] == 1 and "reader" in json.dumps(frame["result"])
    finally:
        stop_process(backend, t(5))
        log.close()


def _is_open(port: int) -> bool:
    import socket

    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False
