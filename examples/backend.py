"""A worked example of an application backend for hub's hooks (docs/protocol.md, "Backend
hooks"): one small aiohttp app that answers every hook and serves a rotating JWT key set.

    python examples/backend.py --port 8080
    hub serve --proxy-connect-url http://127.0.0.1:8080/hooks/connect \\
        --proxy-subscribe-url http://127.0.0.1:8080/hooks/subscribe \\
        --proxy-publish-url http://127.0.0.1:8080/hooks/publish \\
        --proxy-rpc-url http://127.0.0.1:8080/hooks/rpc \\
        --proxy-refresh-url http://127.0.0.1:8080/hooks/refresh \\
        --proxy-header Cookie --jwt-jwks-url http://127.0.0.1:8080/jwks --config hooks.toml

What it decides:

* connect: a ``session=<user>`` cookie names the user (no cookie: ``unauthorized``, 401; the
  user ``banned``: ``banned``, 403). The connection may subscribe to ``news.*``, ``chat.*`` and
  its own ``personal.<user>``, publish to ``chat.*``, is subscribed on the server side to
  ``personal.<user>``, expires after ``--ttl-s``, and gets ``{"greeting": ...}`` as data.
* subscribe: ``room.<name>`` channels are for their members only (``room.vip``: only
  ``alice``); others are refused with ``not_a_member``.
* publish: a message ``{"text": ...}`` is refused with ``spam`` when it says "spam", and is
  otherwise published as ``{"text": ..., "by": <user>}``.
* rpc: ``whoami`` and ``echo``; any other method is refused with ``unknown_method``.
* refresh: extends a connection by ``--ttl-s``, except for the user ``shortlived``.
* ``GET /jwks``: the key set (EC P-256, ES256); ``POST /rotate`` makes a new current key
  and keeps the previous one in the set; ``GET /token?sub=..&ttl_s=..`` signs a JWT with the
  current key (a real backend signs tokens where it logs users in).
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

ROOMS = {"room.vip": {"alice"}}


def _b64(number: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes(32, "big")).rstrip(b"=").decode()


class Keys:
    """The signing keys: the current one and the one before it."""

    def __init__(self) -> None:
        self.generation = 0
        self.keys: list[tuple[str, ec.EllipticCurvePrivateKey]] = []
        self.rotate()

    def rotate(self) -> str:
        self.generation += 1
        kid = f"key-{self.generation}"
        self.keys = [(kid, ec.generate_private_key(ec.SECP256R1())), *self.keys][:2]
        return kid

    def jwks(self) -> dict[str, Any]:
        entries = []
        for kid, key in self.keys:
            numbers = key.public_key().public_numbers()
            entries.append(
                {
                    "kty": "EC",
                    "crv": "P-256",
                    "kid": kid,
                    "alg": "ES256",
                    "use": "sig",
                    "x": _b64(numbers.x),
                    "y": _b64(numbers.y),
                }
            )
        return {"keys": entries}

    def sign(self, claims: dict[str, Any]) -> str:
        kid, key = self.keys[0]
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


def _cookie_user(headers: dict[str, str]) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "session" and value:
            return value
    return None


def _error(code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}})


def build_app(*, ttl_s: float = 3600.0) -> web.Application:
    keys = Keys()
    app = web.Application()
    app["keys"] = keys
    #: Every hook request, for tests and for a look at what hub sends.
    app["calls"] = calls = []

    async def body(request: web.Request, hook: str) -> dict[str, Any]:
        data: dict[str, Any] = await request.json()
        calls.append((hook, data))
        return data

    async def connect(request: web.Request) -> web.Response:
        data = await body(request, "connect")
        user = _cookie_user(data["headers"])
        if user is None:
            return _error("unauthorized", "log in first: no session cookie")
        if user == "banned":
            return _error("banned", "this account is banned")
        return web.json_response(
            {
                "result": {
                    "user": user,
                    "expire_at": time.time() + ttl_s,
                    "channels": [f"personal.{user}"],
                    "subscribe": ["news.*", "chat.*", "room.*", f"personal.{user}"],
                    "publish": ["chat.*"],
                    "data": {"greeting": f"hello {user}", "transport": data["transport"]},
                }
            }
        )

    async def subscribe(request: web.Request) -> web.Response:
        data = await body(request, "subscribe")
        members = ROOMS.get(data["channel"])
        if members is not None and data["user"] not in members:
            return _error("not_a_member", f"{data['channel']} is for its members only")
        return web.json_response({"result": {}})

    async def publish(request: web.Request) -> web.Response:
        data = await body(request, "publish")
        message = data.get("data")
        if isinstance(message, dict) and isinstance(message.get("text"), str):
            if "spam" in message["text"]:
                return _error("spam", "no spam here")
            return web.json_response(
                {"result": {"data": {"text": message["text"], "by": data["user"]}}}
            )
        return web.json_response({"result": {}})  # published as it is

    async def rpc(request: web.Request) -> web.Response:
        data = await body(request, "rpc")
        if data["method"] == "whoami":
            return web.json_response({"result": {"data": {"user": data["user"]}}})
        if data["method"] == "echo":
            return web.json_response({"result": {"data": data["params"]}})
        return _error("unknown_method", f"no method {data['method']!r}")

    async def refresh(request: web.Request) -> web.Response:
        data = await body(request, "refresh")
        if data["user"] == "shortlived":
            return _error("expired", "log in again")
        return web.json_response({"result": {"expire_at": time.time() + ttl_s}})

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response(keys.jwks())

    async def rotate(request: web.Request) -> web.Response:
        return web.json_response({"kid": keys.rotate()})

    async def token(request: web.Request) -> web.Response:
        claims: dict[str, Any] = {
            "sub": request.query.get("sub", "someone"),
            "exp": int(time.time() + float(request.query.get("ttl_s", "3600"))),
            "channels": request.query.get("channels", "*"),
        }
        return web.Response(text=keys.sign(claims))

    async def history(request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(calls), content_type="application/json")

    app.router.add_post("/hooks/connect", connect)
    app.router.add_post("/hooks/subscribe", subscribe)
    app.router.add_post("/hooks/publish", publish)
    app.router.add_post("/hooks/rpc", rpc)
    app.router.add_post("/hooks/refresh", refresh)
    app.router.add_get("/jwks", jwks)
    app.router.add_post("/rotate", rotate)
    app.router.add_get("/token", token)
    app.router.add_get("/calls", history)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="an example backend for hub's hooks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--ttl-s", type=float, default=3600.0, help="a connection's lifetime")
    args = parser.parse_args()
    web.run_app(build_app(ttl_s=args.ttl_s), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
