"""hub/http/reads.py (``Reads``) in this process, behind PublishApi: GET /api/channels with
and without Redis (history and presence refusals are in test_api.py's table; their happy
paths in tests/e2e)."""

from __future__ import annotations

from api_in_process import API_KEY, StartApi

KEY = {"Authorization": f"Bearer {API_KEY}"}


async def test_channels_without_redis_are_this_process_only(start_api: StartApi) -> None:
    """On the memory broker GET /api/channels lists this process's channels, and says so."""
    served = await start_api()
    status, _, answer = await served.call("GET", "/api/channels", None, KEY)
    assert (status, answer["channels"], answer["scope"]) == (200, [], "process")


async def test_channels_when_redis_is_unreachable_is_503(start_api: StartApi) -> None:
    """GET /api/channels answers 503 broker_unavailable when Redis cannot be asked."""

    async def unreachable() -> dict[str, int]:
        raise ConnectionError("Connection refused")

    served = await start_api(list_channels=unreachable)
    status, _, answer = await served.call("GET", "/api/channels", None, KEY)
    assert (status, answer["error"]["code"]) == (503, "broker_unavailable")
    assert "Connection refused" in answer["error"]["message"]
