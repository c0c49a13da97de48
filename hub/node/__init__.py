"""Orchestration: one process's view of the hub (registry + broker), in three parts:
``node.py`` (subscriptions and the fan-out of broker batches), ``history.py`` (recovery,
history reads and gap repair) and ``state.py`` (what is kept per channel and per join)."""

from hub.node.node import Node
from hub.node.state import Member, PendingJoin

__all__ = ["Member", "Node", "PendingJoin"]
