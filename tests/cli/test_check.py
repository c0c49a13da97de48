"""``hub check``: the configuration ``hub serve`` would run with, or why it is invalid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import hub
from support import ROOT, RedisServer, clean_env, free_port, run_python, t
from support.cluster import RedisCluster
from support.sentinel import SentinelDeployment

from hub.cli import main


@pytest.fixture(autouse=True)
def no_hub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("HUB_")]:
        monkeypatch.delenv(name)


def test_it_prints_every_setting_with_its_source(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Flag > env > config file > default, as serve reads them; secrets are not printed."""
    config = tmp_path / "hub.toml"
    config.write_text(
        'history_size = 50\nhistory_ttl_s = 60\n\n[[namespaces]]\npattern = "chat.*"\n'
        "history_size = 1000\nhistory_ttl_s = 3600\npresence = true\n"
    )
    monkeypatch.setenv("HUB_JWT_SECRET", "do-not-print-me")
    monkeypatch.setenv("HUB_PORT", "9001")
    code = main(
        [
            *("check", "--offline", "--config", str(config), "--port", "9002"),
            *("--redis", "redis://:pw@127.0.0.1:1/0"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "configuration OK" in out
    assert "do-not-print-me" not in out and "pw@" not in out
    lines = {
        line.split()[0]: line for line in out.splitlines()[3:] if line.strip().startswith("--")
    }
    assert "9002" in lines["--port"] and "(flag --port)" in lines["--port"]
    assert "(set)" in lines["--jwt-secret"] and "(env HUB_JWT_SECRET)" in lines["--jwt-secret"]
    assert "50" in lines["--history-size"] and "config file" in lines["--history-size"]
    assert "(default)" in lines["--host"]
    assert "namespace 'chat.*'" in out and "history_size=1000" in out
    assert "auth: JWT, HS256" in out


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--history-size", "10"], {}, "--history-ttl-s=0.0"),
        ([], {"HUB_PORT": "http"}, "HUB_PORT"),
        (["--jwt-public-key", "/nonexistent.pem"], {}, "cannot read the PEM file"),
        (["--config", "/nonexistent.toml"], {}, "cannot read the config file"),
        (["--tls-cert", "/nonexistent.pem"], {}, "needs both"),
    ],
)
def test_an_invalid_configuration_exits_2_with_the_reason(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    says: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["check", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hub check: invalid configuration:") and says in err


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://127.0.0.1:7000?partitions=0", "partitions must be"),
        ("redis+sentinel://127.0.0.1:26379", "no master name"),
        ("redis+sentinel://h:26379/m?x=1", "unknown option"),
        ("foo://x", "use redis://"),
        ("redis://h:notaport", "Port"),
        ("redis+cluster://u:s3cret@h1:1,h2:x", "u:***@h1:1,h2:x"),
    ],
)
def test_serve_refuses_a_broker_url_once_before_starting_workers(url: str, says: str) -> None:
    """With several workers, a bad --redis used to make every worker die with a traceback,
    restarted by the supervisor forever; now serve refuses it once, exit 2."""
    out = run_python("-m", "hub", "serve", "--workers", "2", "--port", "0", "--redis", url)
    assert out.returncode == 2, out.stderr
    assert says in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert "s3cret" not in out.stderr


def test_it_visits_the_redis_and_says_what_is_there(redis_server: RedisServer) -> None:
    """By default hub check connects: the Redis version and role, the history script loads,
    the round trip."""
    out = hub("check", "--redis", redis_server.url, "--workers", "1")
    assert out.returncode == 0, out
    assert "configuration OK" in out.stdout
    broker = out.stdout[out.stdout.index("broker: Redis at") :]
    assert "(standalone), role master, 0 replicas" in broker
    assert "history script: loads" in broker and "round trip: " in broker and " ms " in broker
    assert "1 worker on" in out.stdout  # not "1 worker(s)"


def test_a_redis_that_cannot_be_reached_exits_1_unless_offline() -> None:
    """Nothing listens there: exit 1 and why, the password masked; --offline checks the
    configuration only, as hub check did before."""
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    out = hub("check", "--redis", url)
    assert out.returncode == 1, out
    assert out.stderr.startswith("hub check: cannot use Redis at redis://:***@127.0.0.1:")
    assert "refused" in out.stderr and "s3cret" not in out.stderr + out.stdout
    assert "configuration OK" in out.stdout and "broker: UNUSABLE" in out.stdout
    offline = hub("check", "--offline", "--redis", url)
    assert offline.returncode == 0, offline
    assert "configuration OK" in offline.stdout and "broker:" not in offline.stdout


def test_a_replica_is_no_broker(redis_server: RedisServer) -> None:
    """--redis naming a replica: reachable, but it cannot take the history script's writes."""
    with RedisServer.running("--replicaof", "127.0.0.1", str(redis_server.port)) as replica:
        out = hub("check", "--redis", replica.url)
    assert out.returncode == 1, out
    assert "answers as a replica" in out.stderr and "master" in out.stderr


def test_sentinel_topology() -> None:
    with SentinelDeployment.running() as deployment:
        out = hub("check", "--redis", deployment.url)
        master_port = deployment.master_port()
    assert out.returncode == 0, out
    assert "role master, 1 replica" in out.stdout
    assert f"sentinel: 'mymaster' at 127.0.0.1:{master_port}, 1 replica" in out.stdout
    assert "3 of 3 sentinels answered" in out.stdout


def test_cluster_topology() -> None:
    with RedisCluster(3) as cluster:
        out = hub("check", "--redis", cluster.url)
    assert out.returncode == 0, out
    assert "(cluster): state ok, 3 masters, 0 replicas, 16384 of 16384 slots" in out.stdout
    assert "history script: loads" in out.stdout


@pytest.mark.parametrize("offline", [True, False], ids=["offline", "online"])
def test_a_reader_that_closes_early_gets_no_traceback(
    redis_server: RedisServer, offline: bool
) -> None:
    """``hub check | head -1``: the reader is gone before hub check writes (here it closes
    its end first). No BrokenPipeError on stderr, and the status is the check's."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "hub", "check", "--redis", redis_server.url]
            + (["--offline"] if offline else []),
            stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=clean_env(),
            timeout=t(30),
        )  # fmt: skip
    finally:
        os.close(write)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
