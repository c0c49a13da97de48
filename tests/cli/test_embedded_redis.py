"""The redis-server command line, and the embedded redis-server that a multi-worker hub owns."""

from __future__ import annotations

import redis
from support import free_port

from hub.cli.embedded_redis import (
    PUBSUB_BUFFER_LIMIT,
    EmbeddedRedis,
    redis_answers_ping,
    redis_server_argv,
)


def option(argv: list[str], name: str) -> str:
    """The value of the last ``name`` option: the one redis-server applies."""
    return argv[len(argv) - 1 - argv[::-1].index(name) + 1]


def test_argv_on_a_port_binds_loopback_and_keeps_nothing_on_disk() -> None:
    argv = redis_server_argv(dir="/tmp/d", port=6400)
    assert option(argv, "--port") == "6400" and option(argv, "--bind") == "127.0.0.1"
    assert option(argv, "--save") == "" and option(argv, "--appendonly") == "no"
    assert option(argv, "--dir") == "/tmp/d" and "--unixsocket" not in argv
    assert option(argv, "--client-output-buffer-limit") == PUBSUB_BUFFER_LIMIT


def test_argv_on_a_unix_socket_listens_on_no_port_and_extra_options_win() -> None:
    argv = redis_server_argv(dir="/tmp/d", unix_socket="/tmp/r.sock", extra=("--appendonly", "yes"))
    assert option(argv, "--port") == "0" and "--bind" not in argv
    assert option(argv, "--unixsocket") == "/tmp/r.sock"
    assert option(argv, "--unixsocketperm") == "700"
    assert option(argv, "--appendonly") == "yes" and argv[-2:] == ["--appendonly", "yes"]


def test_embedded_redis_runs_in_memory_with_the_roomier_pubsub_limit() -> None:
    """The owned server answers on its socket with its options, and stop removes its directory."""
    server = EmbeddedRedis()
    try:
        server.start()
        client = redis.Redis(unix_socket_path=str(server.socket_path), socket_timeout=2)
        try:
            config = client.config_get("*")
        finally:
            client.close()
        assert config["save"] == "" and config["appendonly"] == "no"
        assert config["port"] == "0" and config["unixsocketperm"] == "700"
        assert config["maxclients"] == "10000" and config["loglevel"] == "warning"
        assert "pubsub 268435456 134217728 60" in config["client-output-buffer-limit"]
        assert redis_answers_ping(server.socket_path)
    finally:
        server.stop()
    assert not server.socket_path.parent.exists()
    assert not redis_answers_ping(server.socket_path)


def test_nothing_listening_answers_no_ping() -> None:
    assert not redis_answers_ping(("127.0.0.1", free_port()), 0.5)
