"""Fan-out across hosts: ``hub bench fanout`` from two client hosts against one hub host, then
against three, in the same run, on the many-hosts lab (tests/support/hosts.py: network
namespaces on a bridge). Needs root, ``ip`` and ``iptables``.

Each repeat builds a fresh lab: Redis on its own host, three hub hosts (``hub serve
--workers 1`` each), two client hosts. Each client host runs one ``hub bench fanout`` on a
channel of its own (``--sockets`` subscribers, 2 publishers, ``--rate`` messages/s):

- **single**: both benches against hub1 only;
- **three**: both benches against hub1, hub2 and hub3 (``--url`` three times: the bench
  spreads its sockets evenly over them).

The fan-out of a hub host is what its own counter says it delivered (``/stats``, the
``delivered`` total, before and after the run) per second of the run. The table gives each
hub host's fan-out in the three-host phase as a ratio to the single host's, and the sum over
the three. The hosts share this machine's CPUs: a sum near 1 shows that nothing is bound to
a host (one hub's figure is the machine's), not extra capacity.

    sudo .venv/bin/python benchmarks/lab_fanout.py --sockets 1000 --rate 200 --seconds 20 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from support.hosts import Host, Lab, missing_requirements  # noqa: E402
from support.processes import HubProcess, RedisServer  # noqa: E402

ADMIN = "lab-bench"


def delivered(hub: HubProcess) -> int:
    request = urllib.request.Request(
        hub.base_url + "/stats", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return int(json.loads(answer.read())["totals"]["delivered"])


def start_benches(
    clients: list[Host], hubs: list[HubProcess], args: argparse.Namespace, work: Path
) -> tuple[list[subprocess.Popen[bytes]], list[Path]]:
    """One ``hub bench fanout`` per client host, at once: the processes and their reports."""
    urls = [arg for hub in hubs for arg in ("--url", f"ws://{hub.address}:{hub.port}")]
    procs, reports = [], []
    for i, client in enumerate(clients):
        report = work / f"bench-{client.name}-{len(hubs)}.json"
        argv = [sys.executable, "-m", "hub.bench", "fanout", *urls, "--channel", f"lab{i}"]
        argv += ["-n", str(args.sockets), "-p", "2", "--rate", str(args.rate), "-s", "90"]
        argv += ["-d", str(args.seconds), "--procs", str(args.procs), "--drain-timeout", "5"]
        argv += ["-q", "--json", str(report)]
        procs.append(
            client.popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        reports.append(report)
    return procs, reports


def phase(
    clients: list[Host], hubs: list[HubProcess], args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    """Both benches against ``hubs``: each hub's deliveries/s while the benches sent, from
    its counter sampled every 0.5 s (from its first rise to its last: neither the benches'
    connecting nor their drain counts), and the benches' own figures."""
    samples = [(time.monotonic(), [delivered(hub) for hub in hubs])]
    procs, reports = start_benches(clients, hubs, args, work)
    deadline = time.monotonic() + args.seconds + 120
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.5)
        samples.append((time.monotonic(), [delivered(hub) for hub in hubs]))
    time.sleep(1.5)  # the hubs' counters are synced about once a second
    samples.append((time.monotonic(), [delivered(hub) for hub in hubs]))
    for proc in procs:
        proc.wait(30)
    sums = [sum(counts) for _, counts in samples]
    first = next(i for i, n in enumerate(sums) if n > sums[0])
    last = next(i for i in range(len(sums) - 1, -1, -1) if sums[i] > sums[i - 1])
    span = samples[last][0] - samples[first - 1][0]
    per_hub = [(samples[last][1][h] - samples[first - 1][1][h]) / span for h in range(len(hubs))]
    bench = [json.loads(r.read_text()) for r in reports]
    return {
        "per_hub": per_hub,
        "bench_recv_per_s": sum(r["messages"]["recv_per_s"] for r in bench),
        "lost": sum(r["messages"]["lost"] for r in bench),
        "p99_ms": max((r["latency_us"].get("p99") or 0) / 1000 for r in bench),
    }


def one(args: argparse.Namespace) -> dict[str, Any]:
    with Lab() as lab, tempfile.TemporaryDirectory(prefix="hub-lab-fanout-") as tmp:
        work = Path(tmp)
        redis_host = lab.add_host("redis")
        hub_hosts = lab.add_hosts("hub1", "hub2", "hub3")
        clients = lab.add_hosts("client1", "client2")
        redis = RedisServer(host=redis_host)
        redis.start()
        hub_args = ("--redis", redis.url, "--workers", "1", "--admin-token", ADMIN)
        hubs = [HubProcess(*hub_args, host=h, log_dir=work) for h in hub_hosts]
        try:
            for hub in hubs:
                hub.wait_ready(30)
            single = phase(clients, hubs[:1], args, work)
            three = phase(clients, hubs, args, work)
        finally:
            for hub in hubs:
                hub.stop()
            redis.close()
    base = single["per_hub"][0] or 1.0
    return {
        "single": single,
        "three": three,
        "ratios": [d / base for d in three["per_hub"]],
        "sum_ratio": sum(three["per_hub"]) / base,
    }


def table(runs: list[dict[str, Any]]) -> str:
    def med(values: Any) -> float:
        return float(statistics.median(values))

    def figures(phase: str) -> list[str]:
        lost = med(r[phase]["lost"] for r in runs)
        p99 = med(r[phase]["p99_ms"] for r in runs)
        recv = med(r[phase]["bench_recv_per_s"] for r in runs)
        return [f"{lost:.0f}", f"{p99:.1f}", f"{recv:,.0f}"]

    single = med(r["single"]["per_hub"][0] for r in runs)
    rows = [
        ["phase", "hub host", "deliveries/s", "ratio", "lost", "p99 ms", "bench recv/s"],
        ["single", "hub1", f"{single:,.0f}", "1.00", *figures("single")],
    ]
    for i in range(3):
        each = med(r["three"]["per_hub"][i] for r in runs)
        ratio = med(r["ratios"][i] for r in runs)
        rows.append(["three", f"hub{i + 1}", f"{each:,.0f}", f"{ratio:.2f}", "", "", ""])
    total = med(sum(r["three"]["per_hub"]) for r in runs)
    ratio = med(r["sum_ratio"] for r in runs)
    rows.append(["three", "sum", f"{total:,.0f}", f"{ratio:.2f}", *figures("three")])
    widths = [8, 9, 13, 6, 6, 7, 13]
    lines = []
    for row in rows:
        cells = zip(row, widths, strict=True)
        lines.append(
            " ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(cells))
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000, help="subscribers per client host")
    parser.add_argument("--rate", type=int, default=200, help="messages/s per client host")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--procs", type=int, default=1, help="processes of each bench")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args()
    reason = missing_requirements()
    if reason:
        sys.exit(f"lab_fanout: {reason}")
    runs = [one(args) for _ in range(args.repeat)]
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    print(
        f"{args.repeat} runs, medians; deliveries/s: the hub's own counter; ratio: to the "
        "single hub host's; bench recv/s: what both benches received"
    )
    print(table(runs))


if __name__ == "__main__":
    main()
