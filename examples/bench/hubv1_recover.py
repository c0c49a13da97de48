"""A hub.v1 client that loses its connection and recovers what it missed: it subscribes to
its own history channel, sees a message live, drops; meanwhile five more are published;
it reconnects with the positions it had, and gets exactly the five, in order.

    hub serve --redis redis://127.0.0.1:6379/0 --history-size 100 &
    hub bench script examples/bench/hubv1_recover.py --url ws://127.0.0.1:8765 --vus 20 \\
        --threshold 'checks>99%' --threshold 'recover.p99<500ms'
"""

MISSED = 5


def is_message(frame):
    return isinstance(frame, dict) and frame.get("type") == "message"


async def user(vu):
    channel = f"feed.{vu.id}-{vu.iteration}"
    first = await vu.connect(protocol="hub.v1")
    await first.subscribe(channel)
    first.publish(channel, {"n": 0})
    vu.check("live message", await first.expect(is_message) is not None)
    first.close()  # the connection drops; its last position stays in first.positions

    publisher = await vu.connect(protocol="hub.v1")
    for n in range(1, MISSED + 1):
        await publisher.request({"op": "publish", "channel": channel, "data": {"n": n}})

    again = await vu.connect(protocol="hub.v1")
    with vu.metric("recover").time():
        ack = await again.subscribe(channel, recover=first.positions)
        missed = [await again.expect(is_message) for _ in range(MISSED)]
    vu.check("recovered", ack["positions"][channel].get("recovered") is True)
    numbers = [m["data"]["n"] if m else None for m in missed]
    vu.check("missed messages, once and in order", numbers == list(range(1, MISSED + 1)))
    await vu.sleep(0.2, 0.5)
