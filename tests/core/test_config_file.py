"""The TOML config file: every flag settable, namespaces, precedence and validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import run_python

from hub.core.config import Settings
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
    with pytest.raises(ConfigError) as info:
        Settings.from_env({}, config=write(tmp_path, text))
    assert info.value.key.endswith(key)
    if value is not None:
        assert info.value.value == value


def test_a_file_that_is_not_toml_or_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.from_env({}, config=write(tmp_path, "port = = 3"))
    with pytest.raises(ConfigError, match="cannot read"):
        Settings.from_env({}, config=str(tmp_path / "missing.toml"))


def test_history_needs_a_ttl_from_the_flags_too() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"HUB_HISTORY_SIZE": "10"})
    assert info.value.key == "HUB_HISTORY_TTL_S"


def test_hub_serve_exits_2_on_a_bad_file(tmp_path: Path) -> None:
    """A bad config file stops `hub serve` at once with status 2, naming key and value."""
    path = write(tmp_path, "[[namespaces]]\npattern = 'a'\nhistory_size = -1\n")
    out = run_python("-m", "hub", "serve", "--config", path)
    assert out.returncode == 2
    assert "namespaces[0].history_size=-1" in out.stderr
