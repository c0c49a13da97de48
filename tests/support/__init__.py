"""The one support package of the test suite.

- ``waits``: the scaled timeout unit ``t``, ``wait_until``/``async_wait_until``, free ports;
- ``processes``: real ``redis-server`` and ``hub serve`` processes, each stopped by its pid;
- ``ws``: receiving exactly N WebSocket messages, and asserting silence;
- ``ops``: HTTP against a hub's /metrics and /stats;
- ``v1``: ``hub serve`` as the hub.v1 tests configure it, and JSON over HTTP;
- ``deploy``: the compose file's services as local processes (import it as ``support.deploy``);
- ``docs``: the README's and docs' code blocks, with their doc-test marks (``support.docs``);
- ``browser``: headless Chromium through Playwright (``support.browser``);
- ``sentinel``: a real local master, replica and 3 sentinels (``support.sentinel``);
- ``cluster``: a real local Redis Cluster of masters and replicas (``support.cluster``);
- ``bench_status``: a ``hub bench`` run's exit status less a bench-bound verdict;
- ``hosts``: the many-hosts lab: namespaces on a bridge, partitions, freezes (``support.hosts``);
- ``lab_sentinel``, ``lab_cluster``, ``lab_haproxy``, ``lab_traffic``: Sentinel, a Redis Cluster
  and haproxy on lab hosts, and numbered traffic across hosts.

Every wait is a multiple of ``t``, which ``HUB_TEST_TIMEOUT_SCALE`` stretches.
"""

from support.ops import http_get, scrape, stats, total, wait_workers_ready
from support.processes import HubProcess, RedisServer, run_python
from support.v1 import UNIT, http, v1_hub
from support.waits import (
    ROOT,
    SCALE,
    async_wait_until,
    clean_env,
    free_port,
    stop_process,
    t,
    wait_until,
)
from support.ws import assert_silent, recv_n

__all__ = [
    "ROOT",
    "SCALE",
    "UNIT",
    "HubProcess",
    "RedisServer",
    "assert_silent",
    "async_wait_until",
    "clean_env",
    "free_port",
    "http",
    "http_get",
    "recv_n",
    "run_python",
    "scrape",
    "stats",
    "stop_process",
    "t",
    "total",
    "v1_hub",
    "wait_until",
    "wait_workers_ready",
]
