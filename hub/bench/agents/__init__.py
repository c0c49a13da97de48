"""Agents: ``hub bench`` workers on other hosts, for more load than one host makes.

``hub bench agent --listen HOST:PORT --token T`` runs on each load host; ``hub bench SCENARIO
--agents h1:p,h2:p --agent-token T`` runs the coordinator here and its workers there. The
modules, from the wire up:

- ``codec.py``: messages and configs as tagged JSON (no pickle from a peer); ``frames.py``:
  length-prefixed frames on a TCP connection;
- ``handshake.py``: versions, the token proved both ways by HMAC, the clock offset;
  ``clock.py``: the messages' ``*_ns`` times moved between the agent's clock and the
  controller's;
- ``server.py``: the agent, which runs its workers in a ``pool.LocalPool``;
- ``controller.py``: connecting the agents, splitting the workers over them, and the
  ``AgentPool`` the coordinator runs on; ``summary.py``: each agent's row in the report and
  what a lost agent covered; ``options.py``: the command line.
"""
