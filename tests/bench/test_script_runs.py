"""``hub bench script`` over a real hub: the three executors, exact counts across --procs,
per-VU data, errors counted with one traceback each, expect timeouts, interrupted
iterations, and bad scripts or flags refused (exit status 2) before anything connects."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT, HubProcess, RedisServer, stop_process, t, wait_until
from test_bench_targets import seen, start_echo
from test_script_examples import run_script


@pytest.fixture(scope="module")
def hub_url() -> Iterator[str]:
    with RedisServer.running() as redis, HubProcess("--redis", redis.url, "--workers", "1") as hub:
        hub.wait_ready()
        yield f"ws://127.0.0.1:{hub.port}"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


ECHO = """
async def user(vu):
    await vu.connect(f"/runs-{vu.id}-{vu.iteration}")
    vu.send("ping")
    vu.check("pong", await vu.expect(lambda m: m == "ping") is not None)
    await vu.sleep(SLEEP)
"""


def echo_script(tmp_path: Path, sleep_s: float) -> Path:
    return write(tmp_path, "echo.py", f"SLEEP = {sleep_s}\n{ECHO}")


def test_arrival_rate_starts_exactly_rate_times_duration(hub_url: str, tmp_path: Path) -> None:
    """20/s for 2 s over 2 workers: 40 iterations, each started once, all done."""
    rc, report, stderr = run_script(
        tmp_path, echo_script(tmp_path, 0.05), "--url", hub_url,
        "--arrival-rate", "20", "--duration", "2", "--max-vus", "4", "--procs", "2",
    )  # fmt: skip
    assert rc == 0, stderr
    runs = report["script"]["iterations"]
    assert runs["completed"] + runs["dropped"] == 40
    assert (runs["failed"], runs["interrupted"]) == (0, 0)
    assert report["script"]["checks"]["by_name"]["pong"] == {
        "passes": runs["completed"],
        "fails": 0,
    }
    assert report["script"]["executor"]["kind"] == "constant-arrival-rate"


def test_arrival_rate_drops_what_no_free_vu_can_start(hub_url: str, tmp_path: Path) -> None:
    """10/s for 1 s with 2 VUs busy for a second each: 2 start, the other 8 are dropped."""
    rc, report, stderr = run_script(
        tmp_path, echo_script(tmp_path, 1.5), "--url", hub_url,
        "--arrival-rate", "10", "--duration", "1", "--max-vus", "2", "--procs", "1",
    )  # fmt: skip
    assert rc == 0, stderr
    runs = report["script"]["iterations"]
    assert (runs["completed"], runs["dropped"], runs["interrupted"]) == (2, 8, 0)
    assert report["script"]["vus_peak"] == 2


def test_ramping_vus_follow_the_stages(hub_url: str, tmp_path: Path) -> None:
    rc, report, stderr = run_script(
        tmp_path, echo_script(tmp_path, 0.1), "--url", hub_url,
        "--stages", "1s:4,1s:4,1s:0", "--procs", "2",
    )  # fmt: skip
    assert rc == 0, stderr
    script = report["script"]
    assert script["vus_peak"] == 4
    assert script["iterations"]["completed"] > 10
    # Ramping down lets an iteration finish: none is cut off.
    assert script["iterations"]["interrupted"] == 0
    assert script["checks"]["fails"] == 0
    assert 3.0 <= report["measured_s"] < 3.0 + t(10)


def test_per_vu_data_rows(hub_url: str, tmp_path: Path) -> None:
    users = write(tmp_path, "users.csv", "name\n" + "".join(f"user{i}\n" for i in range(3)))
    script = write(
        tmp_path,
        "data.py",
        "async def user(vu):\n"
        "    vu.check('row of my id', vu.data['name'] == f'user{vu.id % 3}')\n"
        "    vu.check('iteration counts up', vu.iteration >= 0)\n"
        "    await vu.connect('/data')\n"
        "    await vu.sleep(0.1)\n",
    )
    rc, report, stderr = run_script(
        tmp_path, script, "--url", hub_url, "--vus", "5", "--duration", "1", "--procs", "2",
        "--data", str(users),
    )  # fmt: skip
    assert rc == 0, stderr
    checks = report["script"]["checks"]["by_name"]
    assert checks["row of my id"]["fails"] == 0
    assert checks["row of my id"]["passes"] >= 5
    assert report["script"]["vus_peak"] == 5


def test_an_error_is_counted_told_once_and_the_run_goes_on(hub_url: str, tmp_path: Path) -> None:
    """Every odd iteration raises: each is counted, its traceback printed once over both
    workers, and the even ones go on; by default the run fails, 'errors<N' allows them."""
    script = write(
        tmp_path,
        "errs.py",
        "async def user(vu):\n"
        "    await vu.connect('/errs')\n"
        "    if vu.iteration % 2:\n"
        "        raise ValueError('odd iteration')\n"
        "    vu.check('even', True)\n"
        "    await vu.sleep(0.05)\n",
    )
    args = ["--url", hub_url, "--vus", "4", "--duration", "1.5", "--procs", "2"]
    rc, report, stderr = run_script(tmp_path, script, *args)
    assert rc == 1
    script_report = report["script"]
    key = "ValueError: odd iteration (errs.py:4)"
    runs = script_report["iterations"]
    assert script_report["errors"] == {key: runs["failed"]}
    assert runs["failed"] >= 4
    assert script_report["checks"]["by_name"]["even"]["passes"] == runs["completed"]
    assert runs["completed"] >= 4
    assert stderr.count("Traceback (most recent call last)") == 1, stderr
    assert "raise ValueError('odd iteration')" in stderr  # the script's line, shown
    assert key in script_report["tracebacks"]
    assert next(c for c in report["thresholds"] if c["failed"])["name"] == "errors = 0"

    rc, report, _ = run_script(tmp_path, script, *args, "--threshold", "errors<100000")
    assert rc == 0
    assert "errors = 0" not in {c["name"] for c in report["thresholds"]}


def test_expect_timeouts_fail_the_checks_threshold(hub_url: str, tmp_path: Path) -> None:
    """Nobody answers: each expect returns None after its timeout, counted as timed out."""
    script = write(
        tmp_path,
        "silent.py",
        "async def user(vu):\n"
        "    await vu.connect(f'/silent-{vu.id}')\n"
        "    vu.check('answered', await vu.expect(timeout=0.2) is not None)\n",
    )
    rc, report, stderr = run_script(
        tmp_path, script, "--url", hub_url, "--vus", "2", "--duration", "1", "--procs", "1",
        "--threshold", "checks>99%",
    )  # fmt: skip
    assert rc == 1, stderr
    script_report = report["script"]
    assert script_report["expects"]["matched"] == 0
    timed_out = script_report["expects"]["timed_out"]
    assert timed_out == script_report["checks"]["fails"] >= 2
    assert script_report["checks"]["rate"] == 0.0
    assert "expect_latency" not in script_report["trends_us"]


def test_iterations_still_running_at_the_end_are_interrupted(hub_url: str, tmp_path: Path) -> None:
    script = write(
        tmp_path,
        "long.py",
        "async def user(vu):\n    await vu.connect('/long')\n    await vu.sleep(60)\n",
    )
    rc, report, stderr = run_script(
        tmp_path, script, "--url", hub_url, "--vus", "3", "--duration", "1",
        "--graceful-stop", "0.5", "--procs", "2",
    )  # fmt: skip
    assert rc == 0, stderr
    runs = report["script"]["iterations"]
    assert (runs["completed"], runs["interrupted"], runs["failed"]) == (0, 3, 0)
    assert report["connections"]["connected"] == 3
    assert report["measured_s"] < 1.5 + t(5)


@pytest.fixture
def listener() -> Iterator[tuple[str, socket.socket]]:
    """A TCP port that counts who connects (nobody should)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    try:
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}", sock
    finally:
        sock.close()


def nobody_connected(sock: socket.socket) -> bool:
    try:
        sock.accept()[0].close()
    except BlockingIOError:
        return True
    return False


def hub_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=t(60),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("import not_a_module_anywhere\n\nasync def user(vu):\n    pass\n", "does not import"),
        ("async def person(vu):\n    pass\n", "defines no 'user'"),
        ("def user(vu):\n    pass\n", "must be 'async def user(vu):'"),
        ("async def user(vu)\n", "does not compile"),
    ],
)
def test_a_bad_script_exits_2_before_anything_connects(
    listener: tuple[str, socket.socket], tmp_path: Path, text: str, message: str
) -> None:
    url, sock = listener
    script = write(tmp_path, "bad.py", text)
    result = hub_bench("script", str(script), "--url", url, "--vus", "2", "--duration", "1")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "bad.py" in result.stderr
    assert nobody_connected(sock)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--stages", "1s:3", "--vus", "3"], "drop --vus"),
        (["--stages", "1s"], "DURATION:TARGET"),
        (["--arrival-rate", "5"], "needs --max-vus"),
        (["--max-vus", "5"], "goes with --arrival-rate"),
        (["--data", "/nonexistent/users.csv"], "--data"),
        (["--threshold", "room_join.p42<1s"], "one of"),
    ],
)
def test_bad_flags_exit_2(
    listener: tuple[str, socket.socket], tmp_path: Path, flags: list[str], message: str
) -> None:
    url, sock = listener
    script = echo_script(tmp_path, 0.1)
    result = hub_bench("script", str(script), "--url", url, *flags)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert nobody_connected(sock)


def test_help_teaches_a_script(hub_url: str, tmp_path: Path) -> None:
    """--help's example runs as written, with the thresholds it shows, and passes them."""
    result = hub_bench("script", "--help")
    assert result.returncode == 0
    for needle in ("vu.expect", "vu.metric", "--stages", "--arrival-rate", "room_join.p99<1s"):
        assert needle in result.stdout
    lines = result.stdout.split("    # chat.py", 1)[1].split("\n\n", 1)[0].splitlines()
    example = write(tmp_path, "chat.py", "\n".join(line[4:] for line in lines[1:]) + "\n")
    rc, report, stderr = run_script(
        tmp_path, example, "--url", hub_url, "--vus", "4", "--duration", "2", "--procs", "2",
        "--threshold", "checks>99%", "--threshold", "expect_latency.p95<2s",
        "--threshold", "room_join.p99<5s",
    )  # fmt: skip
    assert rc == 0, stderr
    assert report["script"]["checks"]["by_name"]["heard my own message"]["passes"] >= 4


def test_a_hub_v1_refusal_is_the_script_s_error(hub_url: str, tmp_path: Path) -> None:
    """hub.v1 refuses a bad channel with an error frame: subscribe raises it, and the run
    counts it by its code, with the message the hub gave."""
    script = write(
        tmp_path,
        "refused.py",
        "async def user(vu):\n"
        "    conn = await vu.connect(protocol='hub.v1')\n"
        "    await conn.subscribe('/not a channel')\n",
    )
    rc, report, stderr = run_script(
        tmp_path, script, "--url", hub_url, "--vus", "1", "--duration", "0.5", "--procs", "1",
    )  # fmt: skip
    assert rc == 1
    (key,) = report["script"]["errors"]
    assert key.startswith("HubV1Error: hub.v1 subscribe: bad_channel")
    assert report["script"]["errors"][key] == report["script"]["iterations"]["failed"] >= 1
    assert "conn.subscribe('/not a channel')" in stderr


def test_an_iteration_that_never_waits_leaves_room_for_the_others(
    hub_url: str, tmp_path: Path
) -> None:
    """A user() that awaits nothing still lets every VU of its worker run."""
    script = write(tmp_path, "busy.py", "async def user(vu):\n    vu.check(f'vu {vu.id}', True)\n")
    _rc, report, stderr = run_script(
        tmp_path, script, "--url", hub_url, "--vus", "3", "--duration", "0.5", "--procs", "1",
    )  # fmt: skip
    by_name = report["script"]["checks"]["by_name"]
    assert sorted(by_name) == ["vu 0", "vu 1", "vu 2"], stderr
    assert all(counts["passes"] > 0 for counts in by_name.values())
    # It connected nowhere: a run that opened no socket measured nothing, and fails.
    assert report["ok"] is False


def test_a_send_on_a_closed_connection_is_an_error_not_a_frame(
    hub_url: str, tmp_path: Path
) -> None:
    script = write(
        tmp_path,
        "closed.py",
        "async def user(vu):\n"
        "    conn = await vu.connect('/closed')\n"
        "    conn.close()\n"
        "    vu.check('closed', conn.closed)\n"
        "    conn.send('too late')\n",
    )
    rc, report, _ = run_script(
        tmp_path, script, "--url", hub_url, "--vus", "1", "--duration", "0.3", "--procs", "1",
        "--threshold", "errors<100000",
    )  # fmt: skip
    assert rc == 0
    script_report = report["script"]
    (key,) = script_report["errors"]
    assert key == "ConnectionResetError: send on a closed connection (closed.py:5)"
    assert script_report["checks"]["fails"] == 0
    assert report["messages"]["sent"] == 0


def test_the_live_view_counts_the_vus_sockets(hub_url: str, tmp_path: Path) -> None:
    """While it runs, the live OpenMetrics file (what the live table shows too) counts the
    connections the VUs hold, out of the VUs."""
    script = write(
        tmp_path,
        "hold.py",
        "async def user(vu):\n    await vu.connect('/hold')\n    await vu.sleep(3)\n",
    )
    live = tmp_path / "live.prom"
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.bench", "script", str(script), "--url", hub_url,
         "--vus", "3", "--duration", "1.5", "--procs", "2", "--openmetrics", str(live), "-q"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def live_connected() -> list[str]:
            lines = live.read_text().splitlines() if live.exists() else []
            return [
                line.rsplit(" ", 1)[1]
                for line in lines
                if line.startswith("hub_bench_live_sockets{") and 'state="connected"' in line
            ]

        wait_until(lambda: "3" in live_connected(), 20, "the live file to count 3 connected")
        assert process.wait(t(30)) == 0
    finally:
        stop_process(process, t(10))
    assert "hub_bench_script_iterations" in live.read_text()  # the final totals replaced it


def test_wss_and_per_connection_headers(tmp_path: Path) -> None:
    """vu.connect over TLS (--ca-file trusts the self-signed certificate), each connection
    with its own headers, to a plain websockets echo server; without the CA, every connect
    fails and is counted by kind."""
    script = write(
        tmp_path,
        "tls.py",
        "async def user(vu):\n"
        "    conn = await vu.connect(f'/tls-{vu.id}',"
        " headers={'Authorization': f'Bearer vu-{vu.id}'})\n"
        "    conn.send(b'\\xffbinary')  # not UTF-8: it comes back as bytes\n"
        "    vu.check('echoed', await conn.expect(lambda m: m == b'\\xffbinary') is not None)\n"
        "    conn.send('text')\n"
        "    vu.check('text', await conn.expect(lambda m: m == 'text') is not None)\n"
        "    await vu.sleep(5)\n",
    )
    for url, log in start_echo(tmp_path, tls=True):
        args = ["--url", url, "--vus", "2", "--duration", "0.5", "--procs", "2"]
        rc, report, stderr = run_script(
            tmp_path, script, *args, "--ca-file", str(tmp_path / "cert.pem"),
            "--graceful-stop", "0",
        )  # fmt: skip
        assert rc == 0, stderr
        checks = report["script"]["checks"]["by_name"]
        assert checks == {n: {"passes": 2, "fails": 0} for n in ("echoed", "text")}, checks
        assert sorted((e["path"], e["authorization"]) for e in seen(log)) == [
            ("/tls-0", "Bearer vu-0"),
            ("/tls-1", "Bearer vu-1"),
        ]
        rc, report, stderr = run_script(tmp_path, script, *args)
        assert rc == 1
        assert report["connections"]["connected"] == 0
        (kind,) = report["connections"]["errors"]
        assert kind.startswith("SSLCertVerificationError"), report["connections"]
        assert report["connections"]["failed"] == report["script"]["iterations"]["failed"] >= 2
