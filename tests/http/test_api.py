"""hub/http/api.py (``PublishApi``) in this process: each refusal's status and stable code,
batches validated as a whole, CORS, and who counts as a backend; what tests/e2e does not pin
(test_v1_e2e.py's test_http_api and test_sse.py cover the happy paths over processes)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from api_in_process import API_KEY, StartApi, token

from hub.brokers.memory import MemoryBroker
from hub.core.namespaces import ChannelOptions
from hub.http.api import MAX_BATCH

KEY = {"Authorization": f"Bearer {API_KEY}"}
AS_JSON = {**KEY, "Content-Type": "application/json"}


def batch(*items: Any) -> bytes:
    return json.dumps({"messages": list(items)}).encode()


#: (method, path, body, headers) → (status, code): the codes clients branch on.
REFUSALS = [
    ("POST", "/api/publish/x", b"<a/>", {**KEY, "Content-Type": "application/xml"}, 415,
     "unsupported_media_type"),
    ("POST", "/api/publish/x", b"x" * 5000, {**KEY, "Content-Type": "text/plain"}, 413,
     "too_large"),
    ("POST", "/api/publish", b"x" * 5000, AS_JSON, 413, "too_large"),
    ("POST", "/api/publish", b"{", AS_JSON, 400, "bad_json"),
    ("POST", "/api/publish", b"[]", AS_JSON, 400, "bad_request"),
    ("POST", "/api/publish", batch(), AS_JSON, 400, "bad_request"),
    ("POST", "/api/publish", batch("news"), AS_JSON, 400, "bad_request"),
    ("POST", "/api/publish", batch({"channel": 7, "data": 1}), AS_JSON, 400, "bad_channel"),
    ("POST", "/api/publish", batch({"channel": "a", "text": 1}), AS_JSON, 400, "bad_field"),
    ("GET", "/api/history/news?limit=x", None, KEY, 400, "bad_field"),
    ("GET", "/api/history/news?limit=1001", None, KEY, 400, "bad_field"),
    ("GET", "/api/history/news?since=41", None, KEY, 400, "bad_field"),
    ("GET", "/api/channels", None, {}, 401, "unauthorized"),
    ("GET", "/api/channels", None, {"Authorization": "Bearer wrong"}, 401, "unauthorized"),
    ("POST", "/api/publish", batch({"channel": "a", "data": 1}), {}, 401, "unauthorized"),
    ("GET", "/api/nothing", None, KEY, 404, "not_found"),
    ("GET", "/api/presence/plain", None, KEY, 404, "presence_off"),
    ("GET", "/api/publish", None, KEY, 405, "method_not_allowed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code"),
    REFUSALS,
    ids=[f"{r[4]}-{r[5]}-{r[1]}" for r in REFUSALS],
)
async def test_each_refusal_has_its_status_and_stable_code(
    start_api: StartApi,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    """Each refusal is a JSON error with its status and stable code, and publishes nothing."""
    served = await start_api()
    got, answer_headers, answer = await served.call(method, path, body, headers)
    assert (got, answer["error"]["code"]) == (status, code), answer
    assert answer["error"]["message"]
    if status == 401:
        assert answer_headers["WWW-Authenticate"] == "Bearer"
    if status == 413:
        assert "4096 bytes (--max-message-bytes)" in answer["error"]["message"]
    assert served.broker.stats.num_published == 0


async def test_a_batch_with_one_bad_message_publishes_none(start_api: StartApi) -> None:
    """One bad message refuses its whole batch, naming its index; none of the batch is published."""
    served = await start_api()
    good = {"channel": "news", "data": {"n": 1}}
    body = batch(good, good, {"channel": "news"})
    status, _, answer = await served.call("POST", "/api/publish", body, AS_JSON)
    assert (status, answer["error"]["code"]) == (400, "missing_field")
    assert answer["error"]["message"].startswith("messages[2]: ")
    assert served.broker.stats.num_published == 0 and served.node.num_received == 0
    status, _, answer = await served.call("POST", "/api/publish", batch(good, good), AS_JSON)
    assert (status, answer) == (200, {"published": 2})
    assert served.broker.stats.num_published == 2


async def test_a_batch_holds_at_most_max_batch_messages(start_api: StartApi) -> None:
    """A batch of MAX_BATCH messages is published; one more is refused whole."""
    served = await start_api(max_message_bytes=1 << 20)
    items = [{"channel": "a", "data": 1}] * MAX_BATCH
    status, _, answer = await served.call("POST", "/api/publish", batch(*items), AS_JSON)
    assert (status, answer) == (200, {"published": MAX_BATCH})
    body = batch(*items, {"channel": "a", "data": 1})
    status, _, answer = await served.call("POST", "/api/publish", body, AS_JSON)
    assert (status, answer["error"]["code"]) == (400, "bad_request")
    assert f"at most {MAX_BATCH}" in answer["error"]["message"]
    assert served.broker.stats.num_published == MAX_BATCH


class FullAfter(MemoryBroker):
    """A broker whose buffer is full after ``accepted`` publishes (Redis unreachable)."""

    def __init__(self, accepted: int) -> None:
        super().__init__()
        self.left = accepted

    def publish(self, channel: str, payload: bytes, history: ChannelOptions | None = None) -> bool:
        if self.left <= 0:
            self.stats.num_dropped += 1
            return False
        self.left -= 1
        return super().publish(channel, payload, history)


async def test_a_full_broker_is_429_with_how_many_were_published(start_api: StartApi) -> None:
    """A full broker gives 429 publish_rejected with how many messages were published before."""
    served = await start_api(broker=FullAfter(2))
    body = batch(*[{"channel": "a", "data": n} for n in range(5)])
    status, _, answer = await served.call("POST", "/api/publish", body, AS_JSON)
    assert (status, answer["error"]["code"], answer["published"]) == (429, "publish_rejected", 2)
    status, _, answer = await served.call("POST", "/api/publish/a", b"1", AS_JSON)
    assert (status, answer["error"]["code"], answer["published"]) == (429, "publish_rejected", 0)


async def test_cors_within_allowed_origins(start_api: StartApi) -> None:
    """A listed origin gets itself back (Vary: Origin); another gets a readable 403 forbidden."""
    served = await start_api(allowed_origins=frozenset({"https://app.example.com"}))
    asks = {"Access-Control-Request-Method": "POST"}
    status, headers, _ = await served.call(
        "OPTIONS", "/api/publish/a", None, {**asks, "Origin": "https://app.example.com"}
    )
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert headers["Vary"] == "Origin"
    assert headers["Access-Control-Allow-Methods"] == "POST"
    assert headers["Access-Control-Max-Age"] == "600"
    status, headers, _ = await served.call(
        "POST", "/api/publish/a", b"1", {**AS_JSON, "Origin": "https://app.example.com"}
    )
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    for method, body in (("OPTIONS", None), ("POST", b"1")):
        status, headers, answer = await served.call(
            method, "/api/publish/a", body, {**AS_JSON, "Origin": "https://evil.example"}
        )
        assert (status, answer["error"]["code"]) == (403, "forbidden"), method
        assert headers["Access-Control-Allow-Origin"] == "*"
    assert served.broker.stats.num_published == 1


async def test_backend_endpoints_answer_no_cors(start_api: StartApi) -> None:
    """The backend endpoints are not for browsers: their answers carry no CORS header."""
    served = await start_api()
    for headers in ({**KEY, "Origin": "https://app.example.com"}, {"Origin": "https://x.y"}):
        _, answer_headers, _ = await served.call("GET", "/api/channels", None, headers)
        assert "Access-Control-Allow-Origin" not in answer_headers


async def test_the_dashboard_origin_may_call_the_backend_with_the_key(
    start_api: StartApi,
) -> None:
    """The hub's own dashboard (this host on --port, http or https) gets a preflight and,
    with the API key, readable answers; without the key, or from another origin or port,
    nothing changes."""
    served = await start_api(dashboard_port=8765)
    asks = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "a"}
    for origin in ("http://127.0.0.1:8765", "https://127.0.0.1:8765"):
        status, headers, _ = await served.call(
            "OPTIONS", "/api/disconnect", None, {**asks, "Origin": origin}
        )
        assert status == 204 and headers["Access-Control-Allow-Origin"] == origin
        assert "POST" in headers["Access-Control-Allow-Methods"]
        assert "Authorization" in headers["Access-Control-Allow-Headers"]
        status, headers, _ = await served.call(
            "GET", "/api/users/alice", None, {**KEY, "Origin": origin}
        )
        assert status == 200 and headers["Access-Control-Allow-Origin"] == origin
        assert headers["Vary"] == "Origin"
        status, headers, answer = await served.call(
            "POST", "/api/disconnect", b"{}", {**AS_JSON, "Origin": origin}
        )
        assert (status, answer["error"]["code"]) == (400, "missing_field")
        assert headers["Access-Control-Allow-Origin"] == origin  # the page reads why
    # Without the key: the 401 is not readable.
    status, headers, _ = await served.call(
        "GET", "/api/users/alice", None, {"Origin": "http://127.0.0.1:8765"}
    )
    assert status == 401 and "Access-Control-Allow-Origin" not in headers
    for origin in ("http://127.0.0.1:8766", "http://localhost:8765", "https://x.y:8765"):
        status, headers, _ = await served.call(
            "OPTIONS", "/api/disconnect", None, {**asks, "Origin": origin}
        )
        assert status != 204 and "Access-Control-Allow-Origin" not in headers, origin
        _, headers, _ = await served.call("GET", "/api/channels", None, {**KEY, "Origin": origin})
        assert "Access-Control-Allow-Origin" not in headers, origin
    # Without --api-key the backend routes stay browser-free.
    served = await start_api(dashboard_port=8765, api_key=None)
    _, headers, _ = await served.call(
        "GET", "/api/channels", None, {"Origin": "http://127.0.0.1:8765"}
    )
    assert "Access-Control-Allow-Origin" not in headers


async def test_without_an_api_key_a_backend_is_a_caller_without_a_token(
    start_api: StartApi,
) -> None:
    """Without an API key a caller with no token is a backend, one with a token a client."""
    served = await start_api(api_key=None)
    status, _, _ = await served.call("GET", "/api/channels")
    assert status == 200
    writer = {"Authorization": f"Bearer {token(channels='news*')}"}
    status, _, answer = await served.call("GET", "/api/channels", None, writer)
    assert (status, answer["error"]["code"]) == (401, "unauthorized")
    as_json = {"Content-Type": "application/json"}
    status, _, _ = await served.call("POST", "/api/publish/news", b"1", {**writer, **as_json})
    assert status == 200
    status, _, answer = await served.call("POST", "/api/publish/other", b"1", {**writer, **as_json})
    assert (status, answer["error"]["code"]) == (403, "forbidden")
    status, _, _ = await served.call("POST", "/api/publish/other", b"1", as_json)
    assert status == 200


async def test_without_auth_a_client_endpoint_still_needs_the_key(start_api: StartApi) -> None:
    """With an API key and no JWT auth, POST /api/publish/<channel> takes only the key."""
    served = await start_api(authenticator=None)
    status, _, answer = await served.call(
        "POST", "/api/publish/a", b"1", {"Content-Type": "text/plain"}
    )
    assert (status, answer["error"]["code"]) == (401, "unauthorized")
    assert "API key" in answer["error"]["message"]
