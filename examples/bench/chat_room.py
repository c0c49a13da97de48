"""A chat room on hub's raw mode: each VU joins one of ten rooms (the URL path is the
channel), says hello, waits to hear its own message back (a room's messages reach everyone
in it, the sender too), thinks, and leaves.

    hub serve --port 8765 &
    hub bench script examples/bench/chat_room.py --url ws://127.0.0.1:8765 \\
        --vus 50 --duration 30s --threshold 'checks>99%' \\
        --threshold 'expect_latency.p95<200ms' --threshold 'room_join.p99<1s'
"""


async def user(vu):
    room = f"/chat.room-{vu.id % 10}"
    with vu.metric("room_join").time():  # a custom trend, in ms
        await vu.connect(room)
    vu.send({"from": vu.id, "n": vu.iteration, "text": "hello"})  # a dict goes as JSON
    mine = await vu.expect(lambda m: f'"from":{vu.id},"n":{vu.iteration},' in m, timeout=5)
    vu.check("heard my own message", mine is not None)
    await vu.sleep(0.5, 1.5)  # think time
