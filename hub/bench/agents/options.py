"""The agents' command line: ``hub bench agent`` itself, and the ``--agents`` options every
scenario takes; :func:`agent_main` and :func:`agent_pool` are what ``cli.py`` calls."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from hub.bench.agents.controller import AgentPool, connect_agents, parse_agents, plan
from hub.bench.config import RunConfig
from hub.bench.pool import WorkerTarget
from hub.bench.sizing import SizingError

__all__ = ["TOKEN_ENV", "add_agent_command", "add_agent_options", "agent_main", "agent_pool"]

#: Where either side takes the token from when no flag gives it (a flag shows in ``ps``).
TOKEN_ENV = "HUB_BENCH_AGENT_TOKEN"

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def add_agent_command(sub: Subparsers) -> None:
    agent = sub.add_parser(
        "agent",
        help="run on each load host: serve a controller's share of the sockets",
        description="Serve controllers (hub bench SCENARIO --agents ...): run their share of "
        "the workers on this host, one run at a time. The controller and the agent must "
        "know the same token; it is never sent (each proves it by HMAC). Stop it with Ctrl-C.",
    )
    agent.add_argument(
        "--listen",
        required=True,
        metavar="HOST:PORT",
        help="where to listen for the controller (port 0: any free one, printed)",
    )
    agent.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"the token a controller must prove it knows (default: ${TOKEN_ENV})",
    )


def add_agent_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("agents (more load than one host makes)")
    group.add_argument(
        "--agents",
        metavar="HOST:PORT,...",
        help="run the workers on these 'hub bench agent' hosts instead of here: the sockets "
        "are split over them, --procs is per agent (default: each agent's CPUs), and the "
        "report gives each agent's part and the total",
    )
    group.add_argument(
        "--agent-token",
        default=os.environ.get(TOKEN_ENV),
        metavar="TOKEN",
        help=f"the agents' --token (default: ${TOKEN_ENV})",
    )


def agent_main(args: argparse.Namespace) -> int:
    """``hub bench agent``: serve until interrupted; 2 on bad arguments."""
    from hub.bench.agents.server import log, serve

    host, _, port = str(args.listen).rpartition(":")
    if not host or not port.isdigit():
        log(f"--listen {args.listen!r}: expected HOST:PORT")
        return 2
    if not args.token:
        log(f"a token is needed: --token TOKEN or ${TOKEN_ENV}")
        return 2
    try:
        serve(host.strip("[]"), int(port), args.token)
    except OSError as exc:
        log(f"cannot listen on {args.listen}: {exc}")
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def agent_pool(
    args: argparse.Namespace, config: RunConfig, target: WorkerTarget
) -> tuple[AgentPool, RunConfig]:
    """The run's pool of agents, connected and authenticated, and the config they run:
    SizingError on bad --agents, HandshakeError when an agent cannot be reached or refuses."""
    addresses = parse_agents(args.agents)
    if not args.agent_token:
        raise SizingError(f"--agents needs the agents' token: --agent-token TOKEN or ${TOKEN_ENV}")
    links = connect_agents(addresses, args.agent_token)
    try:
        config = plan(config, links, args.procs)
    except SizingError:
        for link in links:
            link.channel.close()
        raise
    return AgentPool(config, links, target), config
