"""``hub serve --print-config``: every setting as the config file's TOML, with its value,
where it came from and its help; the text is a config file that ``--config`` reads back."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from support import ROOT, clean_env, t

from hub.core.config import OPTIONS, Settings


def hub_serve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``hub serve ARGS`` as a user runs it, with only ``env`` as HUB_* variables."""
    return subprocess.run(
        [sys.executable, "-m", "hub", "serve", *args],
        capture_output=True,
        text=True,
        timeout=t(20),
        cwd=ROOT,
        env=clean_env(**env),
    )


def setting_lines(text: str) -> dict[str, str]:
    """The printed ``key = value`` lines (not the commented ones), by key."""
    return {
        line.split(" = ")[0]: line
        for line in text.splitlines()
        if line and not line.startswith(("#", "[", "pattern")) and " = " in line
    }


def block_of(text: str, key: str) -> str:
    """The comment lines above ``key = …`` (or ``# key = …``), and that line."""
    blocks = text.split("\n\n")
    return next(b for b in blocks if f"\n{key} = " in b or f"\n# {key} = " in b)


def test_it_prints_every_setting_its_source_and_help_and_does_not_serve(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(
        'redis = "redis://127.0.0.1:6390/0"\nhistory-size = 50\nhistory_ttl_s = 60\n\n'
        '[[namespaces]]\npattern = "chat.*"\nhistory_size = 1000\nhistory_ttl_s = 3600\n'
        "presence = true\n"
    )
    out = hub_serve(
        "--print-config", "--config", str(config), "--port", "9100", HUB_WORKERS="3",
        HUB_JWT_SECRET="do-not-print-me",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # it did not start: no log line, no port taken
    text = out.stdout
    doc = tomllib.loads(text)  # valid TOML
    assert doc["port"] == 9100 and doc["workers"] == 3 and doc["redis_url"].endswith(":6390/0")
    assert "now from flag --port" in block_of(text, "port")
    assert "now from env HUB_WORKERS" in block_of(text, "workers")
    assert f"now from file {config}: redis" in block_of(text, "redis_url")
    assert "key redis_url (or redis), flag --redis, env HUB_REDIS_URL" in text
    assert "now from default" in block_of(text, "host")
    assert "do-not-print-me" not in text and "# jwt_secret = (set, not printed)" in text
    for opt in OPTIONS:  # each with its help text, and its line set or commented out
        block = block_of(text, opt.name)
        assert opt.help.split()[0] in block and f"flag {opt.flag}, env {opt.env}" in block
    assert doc["namespaces"] == [
        {"pattern": "chat.*", "history_size": 1000, "history_ttl_s": 3600.0,
         "history_meta_ttl_s": 30 * 24 * 3600.0, "presence": True, "join_leave": False,
         "proxy_subscribe": False, "proxy_publish": False}
    ]  # fmt: skip


def test_the_printed_config_round_trips_through_config(tmp_path: Path) -> None:
    """What --print-config prints, given back as --config with no flag and no variable,
    is the same configuration: every printed value, and the namespaces."""
    config = tmp_path / "hub.toml"
    config.write_text(
        'channel-prefix = "app:\\"q\\"\\t"\nmax_buffered_bytes = "8MiB"\n'
        "[[namespaces]]\npattern = 'ticker.*'\n"
    )
    first = hub_serve(
        "--print-config", "--config", str(config), "--compression", "--publish-rate", "2.5",
        "--allowed-origins", "https://a.example,https://b.example", HUB_LOG_LEVEL="debug",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    printed = tmp_path / "printed.toml"
    printed.write_text(first.stdout)
    again = hub_serve("--print-config", "--config", str(printed))
    assert again.returncode == 0, again.stderr
    assert setting_lines(again.stdout) == setting_lines(first.stdout)
    expected = Settings.from_env(
        {"HUB_LOG_LEVEL": "debug"}, config=str(config), compression=True, publish_rate=2.5,
        allowed_origins="https://a.example,https://b.example",
    )  # fmt: skip
    assert Settings.from_env({}, config=str(printed)) == expected.replace(config=str(printed))
    assert expected.channel_prefix == 'app:"q"\t' and expected.max_buffered_bytes == 8 << 20


def test_an_invalid_configuration_is_refused_not_printed(tmp_path: Path) -> None:
    out = hub_serve("--print-config", HUB_PORT="http")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("hub serve: bad setting HUB_PORT='http'")
