"""hub/http/commands.py (``ServerApi``) in this process, behind PublishApi: its refusals'
statuses and codes, and a command that reaches nobody (tests/e2e/test_server_api.py runs
every command across two instances)."""

from __future__ import annotations

import json

import pytest
from api_in_process import API_KEY, StartApi

from hub.http.commands import MAX_REASON_BYTES, MAX_USER_LENGTH

KEY = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/api/disconnect", {}, 400, "missing_field"),
        ("POST", "/api/disconnect", {"user": "x" * (MAX_USER_LENGTH + 1)}, 400, "bad_field"),
        ("POST", "/api/disconnect", {"user": "a", "code": True}, 400, "bad_field"),
        ("POST", "/api/disconnect", {"user": "a", "reason": "é" * MAX_REASON_BYTES}, 400,
         "bad_field"),
        ("POST", "/api/subscribe", {"channel": "a"}, 400, "missing_field"),
        ("POST", "/api/unsubscribe", {"user": "a"}, 400, "missing_field"),
        ("DELETE", "/api/history/plain", None, 404, "history_off"),
    ],
)  # fmt: skip
async def test_each_refusal_has_its_status_and_stable_code(
    start_api: StartApi, method: str, path: str, body: object, status: int, code: str
) -> None:
    served = await start_api()
    data = None if body is None else json.dumps(body).encode()
    answer_status, _, answer = await served.call(method, path, data, KEY)
    assert (answer_status, answer["error"]["code"]) == (status, code)


async def test_a_bad_json_body_is_bad_json(start_api: StartApi) -> None:
    served = await start_api()
    status, _, answer = await served.call("POST", "/api/disconnect", b"{", KEY)
    assert (status, answer["error"]["code"]) == (400, "bad_json")
