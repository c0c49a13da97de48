"""``hub listen`` and ``hub publish --url``: the command-line faces of hub.client, against
real hubs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
from support import ROOT, HubProcess, RedisServer, clean_env, free_port, run_python, t
from support.counting import count, history_publisher

from hub.cli.listen import format_message, parse_since
from hub.client import Message, Position, Publisher

HISTORY = ("--history-size", "1000", "--history-ttl-s", "300")


def test_listen_keeps_going_across_a_hub_restart(redis_server: RedisServer, tmp_path: Path) -> None:
    """The hub stops, messages are published while it is down, it comes back on the same
    port: hub listen reconnects and prints every message once, in order, one per line."""
    prefix = f"l{free_port()}:"
    port = free_port()
    args = ("--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix, *HISTORY)
    publisher = history_publisher(redis_server.url, prefix)
    hub = HubProcess(*args, port=port, log_dir=tmp_path).wait_ready()
    listen, lines = start_listen("feed", "--url", hub.url(), "--json", "--backoff-max-s", "0.3")
    try:
        lines.wait_subscribed(lambda: publisher.publish("feed", data={"n": 0}))
        for n in range(1, 10):
            publisher.publish("feed", data={"n": n})
        hub.stop()
        for n in range(10, 20):  # while no hub runs: kept in the history
            publisher.publish("feed", data={"n": n})
        hub = HubProcess(*args, port=port, log_dir=tmp_path).wait_ready()
        for n in range(20, 30):
            publisher.publish("feed", data={"n": n})
        assert lines.wait(lambda got: json.loads(got[-1])["data"]["n"] == 29, t(30)), lines.got
    finally:
        listen.kill()
        listen.wait()
        hub.stop()
        publisher.close()
    printed = [json.loads(line) for line in lines.got]
    numbers = [line["data"]["n"] for line in printed]
    counts = count([n for n in numbers if n], range(1, 30))
    assert counts.is_exact, (counts, numbers)
    assert [line["offset"] for line in printed] == sorted(line["offset"] for line in printed)


class LineReader:
    """The lines a process prints, gathered by a thread, so a test can wait for some."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.got: list[str] = []
        self._changed = threading.Condition()
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.got.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait(self, check: Callable[[list[str]], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: bool(self.got) and check(self.got), timeout)

    def wait_subscribed(self, publish: Callable[[], object]) -> None:
        """Publish until the first line comes: before it, hub listen may not be subscribed
        yet, so what it misses of these is not counted."""
        deadline = time.monotonic() + t(20)
        while not self.wait(lambda got: True, 0.1):
            assert time.monotonic() < deadline, "hub listen never printed anything"
            publish()


def start_listen(*args: str) -> tuple[subprocess.Popen[str], LineReader]:
    """``hub listen ARGS`` in a process of its own, and the lines it prints."""
    listen = subprocess.Popen(
        [sys.executable, "-m", "hub", "listen", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=clean_env(),
    )  # fmt: skip
    return listen, LineReader(listen)


def test_publish_through_a_hub_as_a_client(redis_server: RedisServer, tmp_path: Path) -> None:
    """``hub publish --url`` publishes as a hub.v1 client; ``hub listen`` prints it; with
    ``--count N`` it exits after N lines."""
    hub = HubProcess("--redis", redis_server.url, "--workers", "1", log_dir=tmp_path).wait_ready()
    publisher = Publisher(redis_server.url)
    listen, lines = start_listen("cli.v1", "--url", hub.url(), "--count", "3")
    try:
        lines.wait_subscribed(lambda: publisher.publish("cli.v1", text="warm-up"))
        lines.wait(lambda got: False, 0.3)  # warm-ups still on their way
        warm_ups = len(lines.got)
        for message, kind in (('{"a": 1}', "json"), ("two\nlines", "text")):
            out = run_python(
                "-m", "hub", "publish", "cli.v1", message, "--kind", kind, "--url", hub.url()
            )
            assert out.returncode == 0, out.stderr
        assert listen.wait(t(20)) == 0
        lines.wait(lambda got: len(got) >= 3, t(5))
        assert lines.got[warm_ups:] == ['{"a":1}', '"two\\nlines"'][: 3 - warm_ups]
        assert len(lines.got) == 3
        refused = run_python("-m", "hub", "publish", "cli.v1", "x", "--url", "ftp://nowhere")
        assert refused.returncode == 2 and "cannot publish" in refused.stderr
    finally:
        listen.kill()
        hub.stop()
        publisher.close()


def test_listen_renews_its_token_with_a_command(redis_server: RedisServer, tmp_path: Path) -> None:
    """--token-command mints the first token and a fresh one each time the hub closes the
    connection with 4001; nothing published meanwhile is lost."""
    secret = "a-secret-of-at-least-32-bytes-long!"
    prefix = f"l{free_port()}:"
    hub = HubProcess(
        "--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix,
        "--jwt-secret", secret, *HISTORY, log_dir=tmp_path,
    ).wait_ready()  # fmt: skip
    publisher = history_publisher(redis_server.url, prefix)
    calls = tmp_path / "calls"
    mint = (
        f"echo run >> {calls} && "
        f"{sys.executable} -m hub token --secret {secret} --channels feed --ttl 2s"
    )
    listen, lines = start_listen(
        "feed", "--url", hub.url(), "--json", "--token-command", mint, "--backoff-max-s", "0.3"
    )
    try:
        lines.wait_subscribed(lambda: publisher.publish("feed", data={"n": 0}))
        for n in range(1, 50):  # 5 s: the 2 s tokens expire on the way
            publisher.publish("feed", data={"n": n})
            time.sleep(0.1)
        assert lines.wait(lambda got: json.loads(got[-1])["data"]["n"] == 49, t(30)), lines.got
    finally:
        listen.kill()
        _, err = listen.communicate()
        hub.stop()
        publisher.close()
    numbers = [json.loads(line)["data"]["n"] for line in lines.got]
    counts = count([n for n in numbers if n], range(1, 50))
    assert counts.is_exact, (counts, numbers, err)
    assert len(calls.read_text().splitlines()) >= 2  # the first token, then renewals


def test_line_formats() -> None:
    """One line per message, whatever it holds; --json keeps the position."""
    assert format_message(Message("c", "text", text="a\nb"), as_json=False) == '"a\\nb"'
    assert format_message(Message("c", "binary", binary=b"\x00"), as_json=False) == "AA=="
    line = format_message(Message("c", "json", data=[1], offset=4, epoch="e1"), as_json=True)
    assert json.loads(line) == {"channel": "c", "epoch": "e1", "offset": 4, "data": [1]}
    assert parse_since("a1:b2:41") == Position("a1:b2", 41)
    with pytest.raises(ValueError, match="EPOCH:OFFSET"):
        parse_since("41")
