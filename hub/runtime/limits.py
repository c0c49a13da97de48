"""The process's open-file limit, raised before a worker (of the hub or of the load tester)
opens its sockets."""

from __future__ import annotations

import logging
import resource

__all__ = ["raise_open_file_limit"]

logger = logging.getLogger(__name__)

#: What "no limit" is taken to mean when the hard limit is infinite.
_UNLIMITED_FILES = 1 << 20


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard limit; return the soft limit now in force.

    Every socket costs one file, so this limit caps the connections one process can hold.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = _UNLIMITED_FILES
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the open-file limit to %d: %s", hard, exc)
    return soft
