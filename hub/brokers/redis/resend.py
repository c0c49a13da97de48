"""What a Redis error reply means for the command it answers: sent again (and whether the
connection's server is the wrong one), or refused for good.

The pipeline sends a command that met a "not here, not now" reply again, first and in order,
after a reconnect; one refused for good is dropped and counted. The reader retries a read
while its slot migrates and reconnects after the others. One table serves both.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MIGRATING",
    "MOVED",
    "NO_REPLICAS",
    "NO_SCRIPT",
    "REFUSED",
    "REPLICA",
    "Resend",
    "resend",
]


@dataclass(frozen=True, slots=True)
class Resend:
    """The decision for one error reply."""

    #: What Redis said, for the logs.
    reason: str
    #: Sent again, first and in order, after a reconnect (False: dropped and counted).
    again: bool
    #: The key's slot is elsewhere or moving: pause before reconnecting, and follow it.
    follow: bool
    #: The server is not (or no longer) the key's master: every later command of the same
    #: connection ran there too and is sent again, whatever it answered.
    wrong_server: bool


#: For good (a wrong type, a script error …).
REFUSED = Resend("refused", again=False, follow=False, wrong_server=False)
#: NOSCRIPT: Redis lost its script cache; sent again once the scripts are loaded.
NO_SCRIPT = Resend("NOSCRIPT", again=True, follow=False, wrong_server=False)
#: READONLY: the server is a replica now (a failover).
REPLICA = Resend("READONLY", again=True, follow=False, wrong_server=True)
#: NOREPLICAS: the master has fewer replicas in reach than ``min-replicas-to-write`` (it
#: may be cut off, and about to be replaced): the write is held, and tried again after a
#: reconnect (with Sentinel, to wherever the master is then). Only writes meet it (the
#: history script); a plain PUBLISH is not a write and is never refused so.
NO_REPLICAS = Resend("NOREPLICAS", again=True, follow=False, wrong_server=False)
#: MOVED: the slot lives elsewhere (a resharding, a failover); CLUSTERDOWN: nowhere, yet.
MOVED = Resend("MOVED", again=True, follow=True, wrong_server=True)
#: ASK, TRYAGAIN: the slot is migrating. Following ASK would SPUBLISH where no subscriber
#: listens yet (sharded pub/sub stays on the source until the slot is handed over), so the
#: command waits for the MOVED instead.
MIGRATING = Resend("migrating", again=True, follow=True, wrong_server=True)

_BY_CODE = {
    "NOSCRIPT": NO_SCRIPT,
    "READONLY": REPLICA,
    "NOREPLICAS": NO_REPLICAS,
    "MOVED": MOVED,
    "CLUSTERDOWN": MOVED,
    "ASK": MIGRATING,
    "TRYAGAIN": MIGRATING,
}


def resend(error: BaseException | str) -> Resend:
    """The decision for an error reply, by its code (the first word Redis sent)."""
    return _BY_CODE.get(str(error).partition(" ")[0], REFUSED)
