"""``hub check``: the configuration ``hub serve`` would run with, or why it is invalid."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import run_python

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
        ["check", "--config", str(config), "--port", "9002", "--redis", "redis://:pw@127.0.0.1:1/0"]
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
