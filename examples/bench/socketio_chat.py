"""A Socket.IO chat: join a room with an acked 'join' event, send a message, hear it back.

hub bench script examples/bench/socketio_chat.py --url ws://127.0.0.1:3000 --vus 20
"""


async def user(vu):
    chat = await vu.connect(protocol="socketio")  # /socket.io/?EIO=4&transport=websocket
    with vu.metric("room_join").time():
        await chat.call("join", f"room-{vu.id % 5}")  # waits for the server's ack
    chat.emit("message", {"from": vu.id, "n": vu.iteration})
    mine = await chat.expect_event(
        "message", lambda e: e.data == {"from": vu.id, "n": vu.iteration}
    )
    vu.check("heard my own message", mine is not None)
    await vu.sleep(0.5, 1.5)
