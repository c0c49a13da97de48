"""The Artillery and Tsung test files of benchmarks/compare_load_tools.py, made from one
``Load`` (ports, socket counts, rates, sizes) so that every run of every tool does the same work.

Three workloads, the same for the three tools:

- ``conns``: open ``sockets`` over ``ramp_s`` seconds, each holds ``hold_s`` seconds, then closes;
- ``echo``: the same arrivals; each socket sends ``messages`` frames of ``size`` bytes, one every
  ``1 / rate`` seconds, each after the previous one came back (Artillery's ``send`` with a
  ``capture`` and Tsung's ``ack="parse"`` wait for the reply), then closes;
- ``fanout``: subscribers only, each listens for ``hold_s`` seconds; the messages come from
  benchmarks/compare_publisher.py. Artillery gets a processor hook (``listen``, JavaScript) that
  counts frames and times those that carry hub bench's header; Tsung has no such hook for
  received frames, and counts only bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

import yaml

TSUNG_DTD = "/usr/share/tsung/tsung-1.0.dtd"
WORKLOADS = ("conns", "echo", "fanout")
# Tsung times each echo in this transaction (its stats: tr_rt), apart from the upgrades
TSUNG_ROUND_TRIP = "rt"


@dataclass(frozen=True)
class Load:
    workload: str  # one of WORKLOADS
    port: int
    sockets: int
    ramp_s: float
    hold_s: float = 0.0  # conns and fanout: how long each socket stays
    path: str = "/"
    host: str = "127.0.0.1"
    rate: float = 0.0  # echo: messages per second per socket
    messages: int = 0  # echo: messages per socket
    size: int = 64

    def __post_init__(self) -> None:
        if self.workload not in WORKLOADS:
            raise ValueError(f"workload {self.workload!r}: one of {', '.join(WORKLOADS)}")
        if self.sockets < 1 or self.ramp_s <= 0:
            raise ValueError("sockets must be at least 1 and ramp_s over 0")
        if self.workload == "echo" and (self.rate <= 0 or self.messages < 1):
            raise ValueError("echo needs a rate over 0 and at least one message")

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{self.path}"

    @property
    def arrival_rate(self) -> float:
        return self.sockets / self.ramp_s


def echo_payload(size: int) -> str:
    """A JSON text of exactly ``size`` bytes (at least 16): Artillery captures ``$.n`` from the
    reply, which proves that the frame came back."""
    head = '{"n":1,"p":"'
    return head + "x" * max(0, size - len(head) - 2) + '"}'


# Counts every frame, and times those with hub bench's header: CLOCK_MONOTONIC ns at bytes 20..28;
# Node's process.hrtime is CLOCK_MONOTONIC too on Linux.
ARTILLERY_PROCESSOR = """\
'use strict';
// Written by benchmarks/load_tool_configs.py: a subscriber that listens for HOLD_MS.
module.exports = { listen };
function listen(context, ee, next) {
  context.ws.on('message', (data) => {
    ee.emit('counter', 'hub.frames_received', 1);
    if (data.length >= 28 && data[0] === 0x68 && data[1] === 0x62) {
      const late = process.hrtime.bigint() - data.readBigUInt64BE(20);
      ee.emit('histogram', 'hub.latency_ms', Number(late) / 1e6);
    }
  });
  setTimeout(next, HOLD_MS);
}
"""


def artillery_processor(load: Load) -> str:
    return ARTILLERY_PROCESSOR.replace("HOLD_MS", str(int(load.hold_s * 1000)))


def artillery_script(load: Load, processor: str = "./processor.js") -> str:
    """The Artillery YAML (ws engine) of ``load``; ``processor`` is the hook's path, relative to
    the YAML file, for the fanout workload."""
    config: dict[str, object] = {
        "target": load.url,
        "phases": [{"duration": load.ramp_s, "arrivalCount": load.sockets, "name": "ramp"}],
        "ws": {"perMessageDeflate": False},
    }
    if load.workload == "conns":
        flow: list[object] = [{"think": f"{int(load.hold_s * 1000)}ms"}]
    elif load.workload == "echo":
        config["timeout"] = 10
        step = {
            "send": {
                "payload": echo_payload(load.size),
                "capture": {"json": "$.n", "as": "n"},
            }
        }
        think = {"think": f"{max(1, int(1000 / load.rate))}ms"}
        flow = [{"loop": [step, think], "count": load.messages}]
    else:
        config["processor"] = processor
        flow = [{"function": "listen"}]
    script = {
        "config": config,
        "scenarios": [{"name": load.workload, "engine": "ws", "flow": flow}],
    }
    return yaml.safe_dump(script, sort_keys=False)


def _decimal(x: float) -> str:
    """A number as Tsung's NMTOKEN attributes take it: no exponent, no sign."""
    return f"{x:.4f}".rstrip("0").rstrip(".") or "0"


def _tsung_session(load: Load) -> str:
    connect = f'<request><websocket type="connect" path={quoteattr(load.path)}/></request>'
    if load.workload == "echo":
        payload = echo_payload(load.size).replace("&", "&amp;").replace("<", "&lt;")
        body = (
            f'<for from="1" to="{load.messages}" incr="1" var="i">'
            f'<transaction name="{TSUNG_ROUND_TRIP}"><request>'
            f'<websocket type="message" frame="text" ack="parse">{payload}'
            f"</websocket></request></transaction>"
            f'<thinktime value="{_decimal(1 / load.rate)}" random="false"/></for>'
        )
    else:  # conns and fanout: hold; what the hub pushes is counted in size_rcv only
        body = f'<thinktime value="{_decimal(load.hold_s)}" random="false"/>'
    return (
        f'<session name="{load.workload}" probability="100" type="ts_websocket">'
        f"{connect}{body}</session>"
    )


def tsung_xml(load: Load, dtd: str = TSUNG_DTD) -> str:
    """The Tsung XML (ts_websocket) of ``load``: one client in the controller's VM (no ssh), its
    ``maxusers`` over the socket count so that it never wants a second VM. Tsung's arrivals are
    random (exponential gaps) and its phase's clock starts before its client is up, so the phase
    runs half as long again and 2 s more, ``maxnumber`` stopping it at the socket count."""
    return f"""<?xml version="1.0"?>
<!DOCTYPE tsung SYSTEM {json.dumps(dtd)}>
<tsung loglevel="error" dumptraffic="false" version="1.0">
  <clients>
    <client host="localhost" use_controller_vm="true" maxusers="{load.sockets + 100}"/>
  </clients>
  <servers>
    <server host="{load.host}" port="{load.port}" type="tcp"/>
  </servers>
  <load>
    <arrivalphase phase="1" duration="{round(load.ramp_s * 1500) + 2000}" unit="millisecond">
      <users maxnumber="{load.sockets}" arrivalrate="{_decimal(load.arrival_rate)}" unit="second"/>
    </arrivalphase>
  </load>
  <sessions>
    {_tsung_session(load)}
  </sessions>
</tsung>
"""
