"""``hub publish --redis``: what it says it did, and a history channel that the command
cannot know without the hubs' configuration."""

from __future__ import annotations

from pathlib import Path

import redis.client
from cli_support import hub
from support import RedisServer, free_port


def test_it_counts_the_subscribed_processes_in_good_english(redis_server: RedisServer) -> None:
    """'1 hub process subscribed', not '1 hub processes'."""
    prefix = f"p{free_port()}:"
    subscribers: list[redis.client.PubSub] = []
    for number, expected in ((0, "0 hub processes"), (1, "1 hub process"), (2, "2 hub processes")):
        while len(subscribers) < number:
            pubsub = redis_server.client().pubsub()
            pubsub.subscribe(f"{prefix}news")
            pubsub.get_message(timeout=5)  # the subscribe's confirmation
            subscribers.append(pubsub)
        out = hub("publish", "news", "hi", "--redis", redis_server.url, "--channel-prefix", prefix)
        assert out.returncode == 0, out
        assert out.stdout == f"published to news ({expected} subscribed)\n"
    for pubsub in subscribers:
        pubsub.close()


def test_a_history_channel_is_not_published_without_history(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Without --config (or HUB_CONFIG), the command cannot know that chat.1 keeps history;
    Redis holds its history, so it refuses (exit 2, what to pass) and publishes nothing.
    With the hubs' config, from the flag or HUB_CONFIG, the message gets its offset. A
    channel with no history in Redis is published, and stderr says it went without history."""
    prefix = f"p{free_port()}:"
    config = tmp_path / "hub.toml"
    config.write_text(
        f'channel_prefix = "{prefix}"\n\n[[namespaces]]\npattern = "chat.*"\n'
        "history_size = 100\nhistory_ttl_s = 300\n"
    )
    redis_url = ("--redis", redis_server.url)
    first = hub("publish", "chat.1", "first", *redis_url, "--config", str(config))
    assert first.returncode == 0 and first.stdout == "published to chat.1 at offset 1\n", first

    refused = hub("publish", "chat.1", "second", *redis_url, "--channel-prefix", prefix)
    assert refused.returncode == 2, refused
    assert refused.stdout == ""
    assert "Redis holds a history for chat.1" in refused.stderr
    assert (
        "--config FILE or HUB_CONFIG" in refused.stderr
        and "Nothing was published" in refused.stderr
    )

    env = hub("publish", "chat.1", "second", *redis_url, env={"HUB_CONFIG": str(config)})
    assert env.returncode == 0 and env.stdout == "published to chat.1 at offset 2\n", env
    assert env.stderr == ""

    plain = hub("publish", "news", "hi", *redis_url, "--channel-prefix", prefix)
    assert plain.returncode == 0, plain
    assert plain.stdout == "published to news (0 hub processes subscribed)\n"
    assert "news was published without history" in plain.stderr
    assert "--config" in plain.stderr
    with_config = hub("publish", "news", "hi", *redis_url, "--config", str(config))
    assert with_config.returncode == 0 and with_config.stderr == "", with_config


def test_an_unreachable_redis_exits_1_with_the_password_hidden() -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    out = hub("publish", "news", "hi", "--redis", url, "--timeout", "2")
    assert out.returncode == 1, out
    assert out.stderr.startswith("hub publish: cannot publish through redis://:***@127.0.0.1:")
    assert "s3cret" not in out.stderr
