"""hub: a WebSocket pub/sub broadcast hub fanned out through Redis."""

from __future__ import annotations

__all__ = ["DISTRIBUTION", "__version__"]

__version__ = "0.1.0"
#: The name hub is installed by (pyproject.toml's [project] name), for install hints. The
#: import package and the command stay ``hub``; the name ``hub`` on the package index is
#: another project's.
DISTRIBUTION = "hub-pubsub"
