"""Backend hooks: the HTTP calls to the application's backend (``proxy.py``) and the JWT key
set it serves (``jwks.py``). Only the handshake and request paths call them, never the
fan-out; a hub with no hook configured creates none of this."""

from hub.hooks.jwks import JwksKeys
from hub.hooks.proxy import HookProxy

__all__ = ["HookProxy", "JwksKeys"]
