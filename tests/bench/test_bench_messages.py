"""hub.bench.messages: what the coordinator and the workers say to each other crosses a pipe or
a queue pickled, and cannot be changed on the way."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from hub.bench import messages
from hub.bench.messages import Command, Event, Progress, Result, Snapshot, Start
from hub.bench.stats import Tally

KINDS = [
    getattr(messages, name)
    for name in messages.__all__
    if isinstance(getattr(messages, name), type)
    and issubclass(getattr(messages, name), Command | Event)
    and getattr(messages, name) not in (Command, Event)
]

SAMPLES: list[object] = [
    Start(t0_ns=123),
    Progress(worker=1, snapshot=Snapshot(connected=3, interval_hist=b"\x01")),
    Result(
        worker=0,
        snapshot=Snapshot(sent=5),
        tally=Tally(received=4, unique=4),
        other_frames=0,
        errors={"OSError": 1},
        hist=b"",
        pid=42,
        rss_bytes=1,
        cpu_s=0.5,
        cpu_percent_max=10.0,
        cpu_percent_phase=9.0,
        receivers=2,
        loop_lag={"max_ms": 1.0, "mean_ms": 0.1},
    ),
]


def test_every_kind_is_a_frozen_slotted_dataclass() -> None:
    assert len(KINDS) >= 12
    for kind in KINDS:
        params = kind.__dataclass_params__
        assert params.frozen, kind
        assert "__slots__" in vars(kind), kind


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_messages_survive_pickling(message: object) -> None:
    """The multiprocessing transport pickles them: they come out equal."""
    assert pickle.loads(pickle.dumps(message)) == message


def test_messages_are_read_only() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Start(t0_ns=1).t0_ns = 2  # type: ignore[misc]


def test_events_name_their_worker() -> None:
    assert all(issubclass(kind, Event) == hasattr(kind, "worker") for kind in KINDS)
