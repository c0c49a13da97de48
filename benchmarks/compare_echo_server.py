"""The neutral echo server of benchmarks/compare_load_tools.py: each data frame goes back to its
sender, on any path. Neither hub nor any of the load tools: picows (Cython framing) on uvloop in
one process, so the server costs little and the clients' differences show.

    python benchmarks/compare_echo_server.py --port 9100

It counts what it echoed and the sockets it held; on SIGTERM or SIGINT it prints one JSON line,
``{"frames": ..., "bytes": ..., "peak_connections": ..., "connections": ...}``, and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

import uvloop
from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)

CONTROL = (WSMsgType.PING, WSMsgType.PONG, WSMsgType.CLOSE)
UNSENDABLE = (WSCloseCode.NO_INFO, WSCloseCode.ABNORMAL_CLOSURE)


class Counts:
    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0
        self.connections = 0
        self.peak = 0
        self.total = 0


class Echo(WSListener):  # type: ignore[misc]
    def __init__(self, counts: Counts) -> None:
        self.counts = counts

    def on_ws_connected(self, transport: WSTransport) -> None:
        c = self.counts
        c.connections += 1
        c.total += 1
        c.peak = max(c.peak, c.connections)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.counts.connections -= 1

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            code = frame.get_close_code()
            # 1005 (no code given) and 1006 must not go on the wire: answer 1000 then
            transport.send_close(WSCloseCode.OK if code in UNSENDABLE else code)
            transport.disconnect()
            return
        if frame.msg_type in CONTROL:
            return
        payload = frame.get_payload_as_bytes()
        transport.send(frame.msg_type, payload, frame.fin)
        if frame.fin:  # a fragmented message counts once, at its last frame
            self.counts.frames += 1
        self.counts.bytes += len(payload)


async def serve(host: str, port: int) -> dict[str, int]:
    counts = Counts()

    def listener(_request: WSUpgradeRequest) -> Echo:
        return Echo(counts)

    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    server = await ws_create_server(
        listener, host, port, backlog=4096, websocket_handshake_timeout=30
    )
    print(json.dumps({"listening": port}), flush=True)
    await stop
    server.close()
    return {
        "frames": counts.frames,
        "bytes": counts.bytes,
        "peak_connections": counts.peak,
        "connections": counts.total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps(uvloop.run(serve(args.host, args.port))), flush=True)


if __name__ == "__main__":
    main()
