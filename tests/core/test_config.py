"""Settings from the environment and flags (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.cli import build_parser
from hub.core.config import OPTIONS, Settings, describe_default, parse_bytes, read_config_file
from hub.core.errors import ConfigError


def test_defaults() -> None:
    """Host 127.0.0.1, port 8765, 1 MiB frames, 4 MiB slow-consumer bound, no compression."""
    s = Settings.from_env({})
    assert (s.host, s.port, s.redis_url) == ("127.0.0.1", 8765, None)
    assert s.max_message_bytes == 1 << 20 and s.max_buffered_bytes == 4 << 20
    assert s.compression is False and s.channel_prefix == "hub:"


def test_environment_and_overrides() -> None:
    """HUB_* variables set fields; explicit overrides (flags) win."""
    env = {
        "HUB_PORT": "9000",
        "HUB_REDIS_URL": "redis://r:1",
        "HUB_COMPRESSION": "yes",
        "HUB_MAX_BUFFERED_BYTES": "512KiB",
        "HUB_WORKERS": "4",
    }
    s = Settings.from_env(env, port=9100)
    assert s.port == 9100 and s.redis_url == "redis://r:1" and s.compression is True
    assert s.max_buffered_bytes == 512 * 1024 and s.num_workers == 4


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"HUB_PORT": "eighty"}, "HUB_PORT"),
        ({"HUB_PORT": "70000"}, "HUB_PORT"),
        ({"HUB_COMPRESSION": "maybe"}, "HUB_COMPRESSION"),
        ({"HUB_LOG_FORMAT": "xml"}, "HUB_LOG_FORMAT"),
        ({"HUB_MAX_MESSAGE_BYTES": "0"}, "HUB_MAX_MESSAGE_BYTES"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], key: str) -> None:
    """A bad value raises ConfigError naming the variable and the value."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert info.value.key == key and key in str(info.value)


def test_byte_sizes() -> None:
    """parse_bytes (core/sizes.py, see test_sizes.py) is also config's, for the CLI."""
    assert parse_bytes("4MiB") == parse_bytes("4m") == 4 << 20
    assert parse_bytes("1024") == 1024 and parse_bytes("2k") == 2048


@pytest.mark.parametrize(
    ("value", "shown"), [(None, "unset"), (True, "on"), (False, "off"), (8765, "8765"), ("x", "x")]
)
def test_describe_default(value: object, shown: str) -> None:
    """Unset, on/off for flags, the value itself otherwise: as --help and the README say."""
    assert describe_default(value) == shown


def test_read_config_file_reads_hub_config(tmp_path: Path) -> None:
    """The file's settings and namespaces; a file that cannot be read names HUB_CONFIG."""
    path = tmp_path / "hub.toml"
    path.write_text('port = 9001\n[[namespaces]]\npattern = "a.*"\n')
    values, namespaces = read_config_file(str(path))
    assert values == {"port": 9001} and [n.pattern for n in namespaces] == ["a.*"]
    with pytest.raises(ConfigError) as info:
        read_config_file(str(tmp_path / "missing.toml"))
    assert info.value.key == "HUB_CONFIG" and "cannot read" in info.value.reason


@pytest.mark.parametrize(
    "changes",
    [
        {"workers": -1},
        {"tls_cert": "c.pem"},
        {"jwt_secret": "s", "jwt_public_key": "k"},
        {"api_port": 8765},
        {"api_port": 9000, "api_host": "0.0.0.0"},
        {"probe_interval_s": 5.0},
    ],
)
def test_negative_numbers_and_bad_combinations_are_refused(changes: dict[str, object]) -> None:
    """Negative numbers and settings that contradict each other raise ConfigError."""
    with pytest.raises(ConfigError):
        Settings().replace(**changes)


def test_num_workers_is_one_per_cpu_when_zero() -> None:
    """--workers N is N workers; 0 means one per CPU, and at least one."""
    assert Settings(workers=3).num_workers == 3
    assert Settings().num_workers >= 1


def test_every_option_has_a_flag_an_env_and_help() -> None:
    """`hub serve --help` documents every option with its variable and default."""
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    text = serve.format_help()
    for opt in OPTIONS:
        assert opt.flag in text and opt.env in text
        assert opt.env.startswith("HUB_")


def test_readme_documents_every_option() -> None:
    """The README's flag table lists every flag, environment variable and TOML key."""
    from support import ROOT

    readme = (ROOT / "README.md").read_text()
    missing = [
        o.flag
        for o in OPTIONS
        if o.flag not in readme
        or o.env not in readme
        or (f"| `{o.name}` |" not in readme and o.name != "config")
    ]
    assert not missing, f"README lacks {missing}"
