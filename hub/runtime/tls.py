"""The server's TLS context, from the PEM files of --tls-cert and --tls-key."""

from __future__ import annotations

import ssl

from hub.core.errors import ConfigError

__all__ = ["server_tls_context"]


def server_tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS context for wss:// and https://; ConfigError says which file is wrong."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            "HUB_TLS_CERT", cert_file, f"cannot load it with the key {key_file}: {exc}"
        ) from None
    return context
