"""hub bench, Artillery and Tsung side by side on this machine (docs/bench.md, "Side by side").

    python benchmarks/compare_load_tools.py                 # all three workloads, medians of 3
    python benchmarks/compare_load_tools.py --quick         # a smoke test: tiny, one run each
    python benchmarks/compare_load_tools.py --only conns --conns 15000

It installs what is missing first: Artillery with npm into benchmarks/.tools/artillery
(git-ignored; ``--tools-dir`` elsewhere), Tsung with apt-get (Debian's ``tsung``, as root). Then,
for each repeat, each workload and each tool in turn (alternating, so that a drift of the machine
hits every tool alike), it starts the servers, runs the tool, and measures it from outside
(benchmarks/load_tool_watch.py): the sockets the server sees, the CPU time and RSS of the tool's
whole process tree. The workloads (benchmarks/load_tool_configs.py writes the Artillery YAML
and the Tsung XML from the same settings):

- ``conns``: N idle sockets to the echo server, opened over the same ramp, held, closed;
- ``echo``: sockets that each send a frame and wait for it back, at a fixed rate, to the neutral
  echo server (benchmarks/compare_echo_server.py: picows on uvloop, one process; it counts what
  it echoed, the independent count);
- ``fanout``: subscribers on one channel of a ``hub serve --workers 1`` with a real
  redis-server; one publisher at a fixed rate (hub bench's own, or benchmarks/compare_publisher.py
  for the tools that stamp no send time), and benchmarks/independent_receiver.py on the same
  channel, whose latency and count are the check on each tool's.

Every run is bounded in time (a tool still running after 240 s, 120 s in ``--quick``, is
killed with its process group) and in count. It prints one JSON line per run, then the tables
of medians, in Markdown for docs/bench.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_tool_install import ToolMissing, ensure_tools
from load_tool_runs import QUICK, RUNNERS, TOOLS, Job, Settings, load_for
from load_tool_table import table

HERE = Path(__file__).resolve().parent


def settings_from(args: argparse.Namespace) -> Settings:
    s = QUICK if args.quick else Settings()
    changes = {
        "conns": args.conns, "echo_sockets": args.echo_sockets,
        "fanout_subscribers": args.fanout_subscribers, "fanout_rate": args.fanout_rate,
        "echo_seconds": args.seconds, "fanout_seconds": args.seconds,
    }  # fmt: skip
    return replace(s, **{k: v for k, v in changes.items() if v is not None})


def ok(row: dict[str, Any]) -> bool:
    return "error" not in row and "error" not in row.get("own", {}) and row.get("held", 0) > 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny, one run each: a smoke test")
    p.add_argument("--repeat", type=int, help="runs per tool and workload (default 3; quick: 1)")
    p.add_argument("--only", default="conns,echo,fanout", help="workloads, comma-separated")
    p.add_argument("--tools", default=",".join(TOOLS), help="tools, comma-separated")
    p.add_argument(
        "--conns",
        type=int,
        help="conns: sockets (default 10,000; at most about 19,000 under a 20,000-file limit)",
    )
    p.add_argument("--echo-sockets", type=int, help="echo: sockets (default 1,000)")
    p.add_argument("--fanout-subscribers", type=int, help="fanout: subscribers (default 1,000)")
    p.add_argument("--fanout-rate", type=float, help="fanout: messages/s (default 100)")
    p.add_argument("--seconds", type=float, help="echo and fanout: how long messages flow")
    p.add_argument("--tools-dir", type=Path, default=HERE / ".tools", help="where npm installs")
    p.add_argument("--json-out", type=Path, help="also append each run's JSON line here")
    p.add_argument("--keep", action="store_true", help="keep each run's folder (configs, logs)")
    return p


Results = dict[str, dict[str, list[dict[str, Any]]]]


def run_all(args: argparse.Namespace, s: Settings, binaries: dict[str, Path]) -> Results:
    workloads = [w for w in args.only.split(",") if w]
    tools = tuple(t for t in args.tools.split(",") if t)
    results: Results = {w: {t: [] for t in tools} for w in workloads}
    for r in range(args.repeat or (1 if args.quick else 3)):
        for workload in workloads:
            order = tools[r % len(tools) :] + tools[: r % len(tools)]  # alternate who goes first
            for tool in order:
                work = Path(tempfile.mkdtemp(prefix=f"cmp-{workload}-{tool}-"))
                job = Job(tool, binaries.get(tool), load_for(workload, s, 0), s, work)
                try:
                    row = RUNNERS[workload](job)
                except Exception as e:  # a broken run is reported, and the others go on
                    row = {"error": f"{type(e).__name__}: {e}"}
                row = {"repeat": r, "workload": workload, "tool": tool, "dir": str(work), **row}
                line = json.dumps(row, default=str)
                print(line, flush=True)
                if args.json_out:
                    with args.json_out.open("a") as f:
                        f.write(line + "\n")
                results[workload][tool].append(row)
                if not args.keep:
                    shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> int:
    p = parser()
    args = p.parse_args()
    tools = tuple(t for t in args.tools.split(",") if t)
    unknown = [w for w in args.only.split(",") if w and w not in RUNNERS]
    if unknown := unknown + [t for t in tools if t not in TOOLS]:
        p.error(f"unknown workload or tool: {', '.join(unknown)}")
    s = settings_from(args)
    try:
        binaries = ensure_tools(args.tools_dir, tools)
    except ToolMissing as e:
        print(f"compare_load_tools: {e}", file=sys.stderr)
        return 2
    results = run_all(args, s, binaries)
    runs = max(len(rows) for by_tool in results.values() for rows in by_tool.values())
    print(f"\nMedians of {runs} run(s) per tool; {os.cpu_count()} CPUs; {s}\n")
    for workload, by_tool in results.items():
        print(table(workload, s, by_tool))
    every = [row for by_tool in results.values() for rows in by_tool.values() for row in rows]
    return 0 if all(ok(row) for row in every) else 1


if __name__ == "__main__":
    raise SystemExit(main())
