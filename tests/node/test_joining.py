"""A join in two steps (``hub.node.joining``): what a replay may cost, and a partial
recovery that closes the member instead of joining it."""

from __future__ import annotations

from support.node import FakeMember

from hub.core.envelope import BINARY, TEXT, Envelope
from hub.core.namespaces import ChannelOptions
from hub.node.joining import Joining, within
from hub.node.state import Member, PendingJoin


def messages(n: int, size: int, kind: int = TEXT) -> list[Envelope]:
    return [Envelope(b"x" * size, kind, i + 1, "e") for i in range(n)]


def test_a_replay_that_fits_is_kept_whole() -> None:
    """Within the budget, every message is kept and its wire size counted."""
    replay = messages(3, 100)
    kept, size = within("c", replay, 10_000, oldest=True)
    assert kept == replay and size == 3 * (100 + 96 + 1)


def test_a_recovery_keeps_its_oldest_and_a_backlog_its_newest() -> None:
    """Past the budget, a recovery keeps the oldest messages that fit (the rest comes in the
    next round); a backlog keeps the newest."""
    replay = messages(10, 1000)
    oldest, size = within("c", replay, 3500, oldest=True)
    assert [m.offset for m in oldest] == [1, 2, 3] and size <= 3500
    newest, _ = within("c", replay, 3500, oldest=False)
    assert [m.offset for m in newest] == [8, 9, 10]


def test_binary_is_counted_as_its_base64() -> None:
    """A binary message costs its base64 length on a hub.v1 wire."""
    kept, size = within("c", messages(1, 300, BINARY), 10_000, oldest=True)
    assert kept and size == 400 + 96 + 1


class Host:
    """The node's side of a join, recorded."""

    max_buffered_bytes = 1 << 20

    def __init__(self) -> None:
        self.committed: list[PendingJoin] = []
        self.aborted: list[PendingJoin] = []
        self.closed: list[Member] = []

    def options_for(self, channel: str) -> ChannelOptions:
        return ChannelOptions(history_size=10, history_ttl_s=60)

    def commit_join(self, join: PendingJoin) -> list[Envelope]:
        self.committed.append(join)
        return join.replay

    def abort_join(self, join: PendingJoin) -> None:
        self.aborted.append(join)

    def evict_slow(self, member: Member) -> None:
        self.closed.append(member)

    def close_slow(self, member: Member) -> None:
        self.closed.append(member)


def test_a_partial_recovery_writes_what_fits_joins_nothing_and_closes() -> None:
    """A recovery cut to its budget writes the reply and the part, aborts every join, and
    closes the member, so no live message can follow a partial replay."""
    host, member = Host(), FakeMember()
    joining = Joining(host, member)
    join = PendingJoin("c", member)
    join.replay = messages(2, 10)
    joining.pending.append(join)
    joining.is_partial = True
    joining.commit(b"ack")
    assert member.written == [(b"ack", [("c", join.replay)])]
    assert host.committed == [] and host.aborted == [join] and host.closed == [member]


def test_a_whole_join_commits_and_writes_once() -> None:
    """Without a cut, every join is committed and the reply and replays go in one write."""
    host, member = Host(), FakeMember()
    joining = Joining(host, member)
    join = PendingJoin("c", member)
    join.replay = messages(1, 10)
    joining.pending.append(join)
    joining.commit(b"ack")
    assert host.committed == [join] and host.closed == []
    assert member.written == [(b"ack", [("c", join.replay)])]
