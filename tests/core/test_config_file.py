"""The TOML config file: every flag settable, namespaces, precedence and validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, clean_env, run_python, t

from hub.core.config import OPTIONS, Settings
from hub.core.config_file import NAMESPACE_KEYS, parse_config
from hub.core.errors import ConfigError
from hub.core.namespaces import ChannelOptions

EXAMPLE = """
port = 9001
history_size = 10
history_ttl_s = 60
max_buffered_bytes = "8MiB"

[[namespaces]]
pattern = "chat.*"
history_size = 1000
history_ttl_s = 3600
presence = true
join_leave = true

[[namespaces]]
pattern = "chat.lobby"
presence = true

[[namespaces]]
pattern = "ticker.*"
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "hub.toml"
    path.write_text(text)
    return str(path)


def test_the_file_sets_flags_and_namespaces(tmp_path: Path) -> None:
    """Top-level keys are settings; the first matching namespace gives a channel's options,
    and a channel matching none takes the global flags."""
    s = Settings.from_env({}, config=write(tmp_path, EXAMPLE))
    assert s.port == 9001 and s.max_buffered_bytes == 8 * 1024 * 1024
    rules = s.channel_rules()
    chat = rules.options_for("chat.lobby")
    assert chat.history_size == 1000 and chat.join_leave  # first match wins, not the second
    assert rules.options_for("ticker.eur") == ChannelOptions()
    other = rules.options_for("news")
    assert other.history_size == 10 and other.history_ttl_s == 60.0 and not other.presence


def test_flag_beats_env_beats_file_beats_default(tmp_path: Path) -> None:
    """A flag beats its HUB_* variable, which beats the file, which beats the default."""
    path = write(tmp_path, "port = 9001\nworkers = 3\nlog_level = 'warning'\n")
    env = {"HUB_CONFIG": path, "HUB_WORKERS": "2", "HUB_LOG_LEVEL": "error"}
    s = Settings.from_env(env, log_level="debug")
    assert (s.port, s.workers, s.log_level) == (9001, 2, "debug")
    assert Settings.from_env({}).port == 8765


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("prot = 1\n", "prot", 1),
        ("port = 'x'\n", "port", "x"),
        ("presence = 1\n", "presence", 1),
        ("[[namespaces]]\nhistory_size = 5\n", "namespaces[0]", None),
        ("[[namespaces]]\npattern = 'a'\nhistory_size = 5\n", "namespaces[0].history_ttl_s", 0.0),
        ("[[namespaces]]\npattern = 'a'\nhistroy = 5\n", "namespaces[0].histroy", 5),
        ("[[namespaces]]\npattern = 'a'\njoin_leave = true\n", "namespaces[0].join_leave", True),
        ("namespaces = 3\n", "namespaces", 3),
    ],
)
def test_a_bad_key_or_value_names_both(tmp_path: Path, text: str, key: str, value: object) -> None:
    """An unknown key or a badly typed value raises ConfigError naming the key and the value."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({}, config=write(tmp_path, text))
    assert info.value.key.endswith(key)
    if value is not None:
        assert info.value.value == value


def test_a_file_that_is_not_toml_or_missing(tmp_path: Path) -> None:
    """A file that is not TOML, or cannot be read, raises ConfigError saying which."""
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.from_env({}, config=write(tmp_path, "port = = 3"))
    with pytest.raises(ConfigError, match="cannot read"):
        Settings.from_env({}, config=str(tmp_path / "missing.toml"))


def test_history_needs_a_ttl_from_the_flags_too() -> None:
    """History from the environment needs a TTL, as in the file; the TTL, never set, is
    named by its flag (not by a variable the user did not set)."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"HUB_HISTORY_SIZE": "10"})
    assert info.value.key == "--history-ttl-s"


def test_a_key_may_be_spelled_as_its_flag(tmp_path: Path) -> None:
    """`redis = …` sets redis_url (the key of --redis), dashes or underscores, in namespaces
    too; the same setting twice, or an unknown key, is refused saying what to write."""
    text = (
        'redis = "redis://127.0.0.1:6390/0"\nhistory-size = 5\nhistory_ttl_s = 9\n'
        "[[namespaces]]\npattern = 'a.*'\nhistory-size = 3\nhistory-ttl-s = 4\n"
    )
    s = Settings.from_env({}, config=write(tmp_path, text))
    assert s.redis_url == "redis://127.0.0.1:6390/0" and (s.history_size, s.history_ttl_s) == (5, 9)
    assert s.channel_rules().options_for("a.1").history_size == 3
    assert s.source("redis_url").where.endswith("hub.toml: redis")
    with pytest.raises(ConfigError, match="redis_url sets the same setting already"):
        Settings.from_env({}, config=write(tmp_path, "redis_url = 'a'\nredis = 'b'\n"))
    with pytest.raises(ConfigError, match=r"did you mean redis_url\?") as info:
        Settings.from_env({}, config=write(tmp_path, "redis_uri = 'x'\n"))
    assert "hub serve --print-config" in info.value.reason


def serve_error(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """The one line `hub serve ARGS` prints on stderr as it exits with status 2."""
    out = subprocess.run(
        [sys.executable, "-m", "hub", "serve", *args],
        capture_output=True, text=True, timeout=t(20), cwd=ROOT, env=clean_env(**(env or {})),
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hub serve: "), out.stderr
    return lines[0]


def test_hub_serve_names_where_the_bad_value_came_from(tmp_path: Path) -> None:
    """The flag, the variable or the file and its key that set the value, never a HUB_*
    variable that the user did not set; every message starts with `hub serve: `."""
    missing = str(tmp_path / "bad.toml")
    line = serve_error(tmp_path, "--config", missing)
    assert f"--config={missing!r}: cannot read" in line and "HUB_" not in line
    line = serve_error(tmp_path, env={"HUB_CONFIG": missing})
    assert f"HUB_CONFIG={missing!r}" in line
    path = write(tmp_path, "port = 70000\n")
    assert f"{path}: port=70000: must be between" in serve_error(tmp_path, "--config", path)
    path = write(tmp_path, 'redis = "foo://x"\n')  # refused after Settings, by the broker check
    line = serve_error(tmp_path, "--config", path)
    assert f"{path}: redis='foo://x': use redis://" in line and "HUB_" not in line
    line = serve_error(tmp_path, "--redis", "foo://x")
    assert "--redis='foo://x'" in line and "HUB_" not in line
    line = serve_error(tmp_path, "--probe-interval-s", "5", env={"HUB_PROBE_TIMEOUT_S": "4"})
    assert "HUB_PROBE_TIMEOUT_S=4.0: must exceed --probe-interval-s (5.0)" in line
    line = serve_error(tmp_path, "--tls-cert", missing)
    assert "--tls-key=None: TLS needs both --tls-cert and --tls-key (--tls-cert)" in line
    line = serve_error(tmp_path, "--tls-cert", missing, "--tls-key", missing)
    assert f"--tls-cert={missing!r}: cannot load it" in line


def test_hub_serve_exits_2_on_a_bad_file(tmp_path: Path) -> None:
    """A bad config file stops `hub serve` at once with status 2, naming key and value."""
    path = write(tmp_path, "[[namespaces]]\npattern = 'a'\nhistory_size = -1\n")
    out = run_python("-m", "hub", "serve", "--config", path)
    assert out.returncode == 2
    assert "namespaces[0].history_size=-1" in out.stderr


def test_parse_config_takes_bytes_and_only_the_settings_it_is_given() -> None:
    """Pure: bytes in, typed values out; a key outside the settings given is unknown."""
    values, namespaces = parse_config(b"port = 1\nhistory_ttl_s = 5\n", "f.toml", OPTIONS)
    assert values == {"port": 1, "history_ttl_s": 5.0} and namespaces == ()
    assert isinstance(values["history_ttl_s"], float)  # an int where a float goes
    with pytest.raises(ConfigError, match="unknown setting"):
        parse_config(b"port = 1\n", "f.toml", [o for o in OPTIONS if o.name != "port"])
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config(b"port = '\xff'\n", "f.toml", OPTIONS)


def test_sizes_in_the_file_and_the_keys_of_a_namespace() -> None:
    """A *_bytes setting takes "2k" or a number; a bad size says what a size looks like."""
    values, _ = parse_config(b'max_message_bytes = "2k"\n', "f.toml", OPTIONS)
    assert values == {"max_message_bytes": 2048}
    with pytest.raises(ConfigError, match="a size such as"):
        parse_config(b'max_message_bytes = "lots"\n', "f.toml", OPTIONS)
    assert NAMESPACE_KEYS[0] == "pattern" and "history_size" in NAMESPACE_KEYS
