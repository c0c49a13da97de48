"""``hub bench script FILE.py``: virtual users that run the user's own ``async def user(vu)``.

The modules, from the outside in: ``options.py`` and ``from_args.py`` (the command line and
the run's settings), ``spec.py`` (what travels to every worker: the script's text, its data,
the executor), ``load.py`` (compiling and checking a script), ``run.py`` (one worker's
engine), ``executors.py`` (constant VUs, ramping VUs, arrival rate), ``vu.py`` (the ``vu``
API), ``conn.py`` and ``protocols.py`` (a VU's connections: raw, hub.v1, Socket.IO),
``totals.py`` (the exact counts and trends, merged over workers), ``summary.py`` (their
table, verdict and OpenMetrics lines). The scenario that plugs it into the coordinator and
workers is ``hub/bench/scenarios/script.py``.
"""
