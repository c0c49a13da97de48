"""``hub bench``: a load tester for WebSocket broadcast servers: the hub, or any server that
speaks raw frames, hub.v1 or Socket.IO (``--protocol``).

It is a side layer: it speaks the wire protocol and never imports the server side of hub. It is
installed as an extra, so a server's install carries none of what only it uses.

Its modules, from the command line down:

- ``cli.py``: ``hub bench`` (``python -m hub.bench``): parse, run, write the files, print the
  verdict; ``hub bench plot`` draws a saved ``--json`` report's pictures.
- ``options.py``: the parser, one subcommand per scenario; ``option_groups.py``: the argument
  groups they share; ``from_args.py``: the checked :class:`~hub.bench.config.RunConfig` of
  what was parsed; ``config.py``: that config, which every worker process gets.
- ``coordinator.py``: starts the workers, paces the phases, gathers the results;
  ``worker.py``: one worker process and its share of the sockets; ``messages.py``: the frozen
  dataclasses they say to each other; ``pool.py``: where the workers run, here or on agents
  (``agents/``: ``hub bench agent`` and ``--agents``, workers on other hosts).
- ``scenarios/``: one module per scenario, each with its coordinator half and its worker half;
  ``scenarios/context.py``: the narrow sides of the coordinator and the worker that a scenario
  sees, and the :class:`~hub.bench.scenarios.context.Outcome` it hands back.
- ``script/``: ``hub bench script FILE.py``, virtual users running the user's own
  ``async def user(vu)`` (its ``__init__.py`` lists its modules).
- ``sockets.py``: the receivers and publishers (picows or the lean client); ``connect.py``:
  opening them; ``lean.py`` and ``wire.py``: the lean WebSocket client; ``adapted.py`` and
  ``protocols/``: sockets that speak a ``--protocol``; ``header.py``: the bench header.
- ``stats.py``: delivery and latency accounting; ``hdr.py``: HDR histograms recorded and read
  in bulk (numpy); ``overhead.py``: the bench's own CPU, run-queue wait and loop lag, and
  whether it was the bottleneck; ``sizing.py``: processes, file descriptors, source
  addresses; ``ramp.py``: connection ramps and rate phases; ``target.py``: URLs, handshake
  headers, TLS; ``server_memory.py``: the server's RSS (``conns``).
- ``report.py``: the JSON report (``schema.py``: its name and types); ``verdict.py`` and
  ``thresholds.py``: its thresholds and the exit status; ``table.py``: the final table;
  ``plot.py``: the PNG; ``export.py``: HTML and OpenMetrics.
"""

from __future__ import annotations

import os

__all__ = ["REQUIRES", "missing_requirement"]

# Before numpy is first imported (here, by missing_requirement, or by hdr.py): numpy's OpenBLAS
# starts a thread per core that spins between calls, and the bench makes only small vector
# calls. In a 100k-socket broadcast those threads took ~2% of the machine (perf) from the
# server under test; one thread is what the bench needs. A user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

#: The modules of the ``bench`` extra (pyproject.toml), by import name.
REQUIRES = ("picows", "rich", "hdrh", "numpy", "psutil")


def missing_requirement() -> str | None:
    """The first module of the ``bench`` extra that cannot be imported, or None."""
    import importlib

    for name in REQUIRES:
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None
