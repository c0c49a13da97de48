"""``hub listen`` and ``hub publish --url``: the command-line faces of hub.client, against
real hubs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import ROOT, HubProcess, RedisServer, clean_env, free_port, run_python, t
from support.counting import count

from hub.cli.listen import format_message, parse_since
from hub.client import Message, Position, Publisher
from hub.core.namespaces import ChannelOptions, ChannelRules

HISTORY = ("--history-size", "1000", "--history-ttl-s", "300")


def test_listen_keeps_going_across_a_hub_restart(redis_server: RedisServer, tmp_path: Path) -> None:
    """The hub stops, messages are published while it is down, it comes back on the same
    port: hub listen reconnects and prints every message once, in order, one per line."""
    prefix = f"l{free_port()}:"
    port = free_port()
    args = ("--redis", redis_server.url, "--workers", "1", "--channel-prefix", prefix, *HISTORY)
    publisher = Publisher(
        redis_server.url,
        channel_prefix=prefix,
        rules=ChannelRules((), ChannelOptions(history_size=1000, history_ttl_s=300)),
    )
    hub = HubProcess(*args, port=port, log_dir=tmp_path).wait_ready()
    listen = subprocess.Popen(
        [sys.executable, "-m", "hub", "listen", "feed", "--url", hub.url(), "--json",
         "--count", "30", "--backoff-max-s", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=clean_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + t(20)
        while publisher.publish("feed", data={"n": 0}).offset is None or not _subscribed(
            redis_server, prefix
        ):
            assert time.monotonic() < deadline, "hub listen never subscribed"
            time.sleep(0.05)
        for n in range(1, 10):
            publisher.publish("feed", data={"n": n})
        hub.stop()
        for n in range(10, 20):  # while no hub runs: kept in the history
            publisher.publish("feed", data={"n": n})
        hub = HubProcess(*args, port=port, log_dir=tmp_path).wait_ready()
        time.sleep(0.5)
        for n in range(20, 30):
            publisher.publish("feed", data={"n": n})
        out, err = listen.communicate(timeout=t(30))
    finally:
        if listen.poll() is None:
            listen.kill()
        hub.stop()
        publisher.close()
    assert listen.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    numbers = [line["data"]["n"] for line in lines]
    # The first publish may come before the subscription; everything after it is counted.
    counts = count(numbers[numbers.index(1) :], range(1, 30)) if 1 in numbers else None
    assert counts is not None and counts.is_exact, (counts, numbers)
    assert [line["offset"] for line in lines] == sorted(line["offset"] for line in lines)


def _subscribed(redis_server: RedisServer, prefix: str) -> bool:
    numsub = redis_server.client().pubsub_numsub(f"{prefix}feed")
    return bool(numsub and numsub[0][1])


def test_publish_through_a_hub_as_a_client(
    redis_server: RedisServer, start_hub: object, tmp_path: Path
) -> None:
    """``hub publish --url`` publishes as a hub.v1 client; ``hub listen`` prints it."""
    hub = HubProcess("--redis", redis_server.url, "--workers", "1", log_dir=tmp_path).wait_ready()
    try:
        listen = subprocess.Popen(
            [sys.executable, "-m", "hub", "listen", "cli.v1", "--url", hub.url(), "--count", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env=clean_env(),
        )  # fmt: skip
        deadline = time.monotonic() + t(20)
        while not redis_server.client().pubsub_numsub("hub:cli.v1")[0][1]:
            assert time.monotonic() < deadline, "hub listen never subscribed"
            time.sleep(0.05)
        for message, kind in (('{"a": 1}', "json"), ("two\nlines", "text")):
            out = run_python(
                "-m", "hub", "publish", "cli.v1", message, "--kind", kind, "--url", hub.url()
            )
            assert out.returncode == 0, out.stderr
        printed, err = listen.communicate(timeout=t(20))
        assert listen.returncode == 0, err
        assert printed.splitlines() == ['{"a":1}', '"two\\nlines"']
        refused = run_python("-m", "hub", "publish", "cli.v1", "x", "--url", "ftp://nowhere")
        assert refused.returncode == 2 and "cannot publish" in refused.stderr
    finally:
        hub.stop()


def test_line_formats() -> None:
    """One line per message, whatever it holds; --json keeps the position."""
    assert format_message(Message("c", "text", text="a\nb"), as_json=False) == '"a\\nb"'
    assert format_message(Message("c", "binary", binary=b"\x00"), as_json=False) == "AA=="
    line = format_message(Message("c", "json", data=[1], offset=4, epoch="e1"), as_json=True)
    assert json.loads(line) == {"channel": "c", "epoch": "e1", "offset": 4, "data": [1]}
    assert parse_since("a1:b2:41") == Position("a1:b2", 41)
    with pytest.raises(ValueError, match="EPOCH:OFFSET"):
        parse_since("41")
