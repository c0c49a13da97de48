"""benchmarks/compare_load_tools.py: the Artillery and Tsung files it writes are valid for those
tools, its outside measurement of a process tree sees the sockets and the CPU of a grandchild,
Tsung's multi-dump log adds up, and its quick mode runs all three tools end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support import ROOT, free_port, t

sys.path.insert(0, str(ROOT / "benchmarks"))

from load_tool_configs import (
    TSUNG_DTD,
    Load,
    artillery_processor,
    artillery_script,
    tsung_xml,
)
from load_tool_install import ToolMissing, ensure_tools
from load_tool_reports import tsung_stats
from load_tool_watch import Watch

LOADS = {
    "conns": Load("conns", 9100, 500, 2.5, hold_s=4),
    "echo": Load("echo", 9100, 40, 2, rate=8, messages=16, size=80),
    "fanout": Load("fanout", 9100, 30, 1, hold_s=11.5, path="/cmp"),
}


@pytest.mark.parametrize("workload", sorted(LOADS))
def test_artillery_script_is_the_load(workload: str) -> None:
    load = LOADS[workload]
    script = yaml.safe_load(artillery_script(load))
    config, (scenario,) = script["config"], script["scenarios"]
    assert config["target"] == f"ws://127.0.0.1:9100{load.path}"
    assert config["phases"] == [
        {"duration": load.ramp_s, "arrivalCount": load.sockets, "name": "ramp"}
    ]
    assert scenario["engine"] == "ws"
    flow = scenario["flow"]
    if workload == "conns":
        assert flow == [{"think": "4000ms"}]  # Artillery reads a bare 4 as seconds, 0.1 as ms
    elif workload == "echo":
        (loop,) = flow
        send, think = loop["loop"]
        assert loop["count"] == 16
        assert think == {"think": "125ms"}
        payload = send["send"]["payload"]
        assert len(payload.encode()) == 80 and json.loads(payload)["n"] == 1
        assert send["send"]["capture"] == {"json": "$.n", "as": "n"}  # waits for the echo
    else:
        assert flow == [{"function": "listen"}] and config["processor"] == "./processor.js"


def test_artillery_hook_is_javascript(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: Artillery needs it too")
    hook = tmp_path / "processor.js"
    hook.write_text(artillery_processor(LOADS["fanout"]))
    subprocess.run([node, "--check", str(hook)], check=True, timeout=t(30))
    assert "setTimeout(next, 11500)" in hook.read_text()


@pytest.mark.parametrize("workload", sorted(LOADS))
def test_tsung_xml_is_the_load(workload: str, tmp_path: Path) -> None:
    load = LOADS[workload]
    text = tsung_xml(load)
    root = ET.fromstring(text.split("\n", 2)[2])  # after the XML declaration and the DOCTYPE
    (client,) = root.iter("client")
    assert client.get("use_controller_vm") == "true"  # no ssh to localhost for an agent
    assert int(client.get("maxusers", "0")) > load.sockets  # never a second VM
    (phase,) = root.iter("arrivalphase")
    (users,) = phase.iter("users")
    assert users.get("maxnumber") == str(load.sockets)
    assert float(users.get("arrivalrate", "0")) == pytest.approx(load.sockets / load.ramp_s)
    assert int(phase.get("duration", "0")) >= load.ramp_s * 1000
    (session,) = root.iter("session")
    assert session.get("type") == "ts_websocket"
    requests = [w.attrib for w in session.iter("websocket")]
    assert requests[0] == {"type": "connect", "path": load.path}
    if workload == "echo":
        (loop,) = session.iter("for")
        assert loop.get("to") == "16"
        (trip,) = loop.iter("transaction")  # the round trip, timed apart from the upgrade
        assert trip.get("name") == "rt" and len(list(trip.iter("websocket"))) == 1
        assert requests[1]["ack"] == "parse"  # timed to its reply
    xmllint = shutil.which("xmllint")
    if not Path(TSUNG_DTD).exists() or xmllint is None:
        pytest.skip(f"{TSUNG_DTD} or xmllint is missing: apt-get install tsung libxml2-utils")
    path = tmp_path / "tsung.xml"
    path.write_text(text)
    subprocess.run(
        [xmllint, "--noout", "--dtdvalid", TSUNG_DTD, str(path)], check=True, timeout=t(30)
    )


def test_tsung_log_adds_up_over_dumps(tmp_path: Path) -> None:
    # two 10 s dumps, as Tsung writes them: samples per interval, counters with a running total
    log = tmp_path / "tsung.log"
    log.write_text(
        textwrap.dedent("""\
            # stats: dump at 1796191184
            stats: request 10 2.0 0.1 5.0 1.0 0 0
            stats: size_rcv 1000 1000
            stats: websocket_succ 4 4
            # stats: dump at 1796191194
            stats: request 30 4.0 0.1 9.0 0.5 2.0 10
            stats: size_rcv 500 1500
            EndMonitor:{1796,191194,589902}
            """)
    )
    stats = tsung_stats(log)
    assert stats["request"] == {"count": 40, "mean": 3.5, "max": 9.0, "min": 0.5}
    assert stats["size_rcv"] == {"total": 1500}
    assert stats["websocket_succ"] == {"total": 4}


CHILD = """
import socket, subprocess, sys, time
held = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(25)]
burn = "import time\\nend = time.process_time() + 0.4\\nwhile time.process_time() < end: pass"
subprocess.run([sys.executable, "-c", burn], check=True)
time.sleep(1.0)
"""


@pytest.fixture
def listener() -> Iterator[int]:
    import socket

    port = free_port()
    server = socket.create_server(("127.0.0.1", port), backlog=100)
    try:
        yield port
    finally:
        server.close()


def test_watch_sees_the_sockets_and_a_grandchilds_cpu(listener: int) -> None:
    watch = Watch([sys.executable, "-c", CHILD, str(listener)], listener, interval=0.1)
    w = watch.wait()
    assert w.returncode == 0
    assert w.peak_held == 25  # counted on the server's side, by ss
    assert w.cpu_s >= 0.4  # the grandchild's CPU, reaped by the child, is the tool's
    assert w.baseline().held == 0 and w.peak_rss > 0


def test_quick_mode_runs_every_tool_end_to_end() -> None:
    try:
        ensure_tools(ROOT / "benchmarks" / ".tools", ("artillery", "tsung"))
    except ToolMissing as e:
        pytest.skip(f"Artillery or Tsung cannot be installed here: {e}")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compare_load_tools.py"), "--quick",
         "--only", "echo,fanout"],
        capture_output=True, text=True, timeout=t(600), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    by = {(row["workload"], row["tool"]): row for row in rows}
    assert set(by) == {
        (w, tool) for w in ("echo", "fanout") for tool in ("hub", "artillery", "tsung")
    }
    for tool in ("hub", "artillery", "tsung"):
        echo, fanout = by["echo", tool], by["fanout", tool]
        assert echo["server_frames"] == echo["expected"], (tool, echo)  # every round trip came back
        assert fanout["subscribers"] == 20 and fanout["independent"]["lost"] == 0, (tool, fanout)
        assert echo["held"] == 20 and echo["msgs_per_core_s"] > 0
    for tool in ("hub", "artillery", "tsung"):  # each tool's own count of its round trips
        assert by["echo", tool]["own"]["received"] == by["echo", tool]["expected"], tool
    assert by["echo", "hub"]["own"]["lost"] == 0
    assert by["fanout", "artillery"]["own"]["received"] == by["fanout", "artillery"]["expected"]
    assert "| tsung |" in done.stdout and "### fanout" in done.stdout
