"""Origins compared as RFC 6454 says: scheme and host in lower case, the default port dropped,
nothing else. A header that is not an origin (a path, a query, user info) matches nothing."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["normalize_origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_origin(value: str) -> str | None:
    """The serialized origin of ``value``, or None when it is not one."""
    value = value.strip()
    if value == "null":
        return value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if not scheme or not host or parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"
