// The hub dashboard: polls /stats once a second and runs the "try it" panel.
// No build step and no dependencies: it talks only to the hub that served it.
"use strict";

const POLL_INTERVAL_MS = 1000;
const MAX_LOG_LINES = 200;

const $ = (id) => document.getElementById(id);
const fmt = (n) => (n === undefined || n === null ? "–" : Math.round(n).toLocaleString("en"));

// Live figures

let previous = null; // the last /stats answer, for the rates
// With --admin-token, open the page as /?admin_token=...; /stats gets it as a bearer token.
const adminToken = new URLSearchParams(location.search).get("admin_token");
const adminHeaders = adminToken ? { Authorization: `Bearer ${adminToken}` } : {};

function rate(now, before, key, dt) {
  if (!before || dt <= 0) return null;
  const delta = now[key] - before[key];
  return delta >= 0 ? delta / dt : null; // a negative delta: a restarted single worker
}

function render(stats) {
  const t = stats.totals;
  const dt = previous ? stats.time - previous.time : 0;
  $("connections").textContent = fmt(t.connections);
  $("channels").textContent = fmt(t.channels);
  $("received").textContent = fmt(t.received);
  $("workers-ready").textContent = `${t.workers_ready} / ${t.workers}`;
  const inRate = rate(t, previous && previous.totals, "received", dt);
  const outRate = rate(t, previous && previous.totals, "delivered", dt);
  if (inRate !== null) $("received-rate").textContent = fmt(inRate);
  if (outRate !== null) $("delivered-rate").textContent = fmt(outRate);

  const before = new Map(previous ? previous.workers.map((w) => [w.worker, w]) : []);
  const rows = stats.workers.map((w) => {
    const old = before.get(w.worker);
    const cells = [
      w.worker,
      !w.alive ? "gone" : w.broker_ready ? "ready" : "NOT READY",
      fmt(w.connections),
      fmt(w.channels),
      fmt(w.subscriptions),
      fmt(rate(w, old, "received", dt)),
      fmt(rate(w, old, "delivered", dt)),
      fmt(w.received),
      fmt(w.dropped),
      fmt(w.slow_consumer_disconnects),
    ];
    const tr = document.createElement("tr");
    tr.dataset.worker = w.worker;
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  });
  $("workers").tBodies[0].replaceChildren(...rows);
  previous = stats;
}

async function poll() {
  const status = $("status");
  try {
    const response = await fetch("/stats", { cache: "no-store", headers: adminHeaders });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    status.textContent = `live · answered by worker ${previous.answered_by.worker}`;
    status.className = "status ok";
  } catch (err) {
    status.textContent = `cannot read /stats: ${err.message}`;
    status.className = "status bad";
  } finally {
    setTimeout(poll, POLL_INTERVAL_MS);
  }
}

// Try it: a raw-mode WebSocket to ws://<this host>/<channel>

let socket = null;

function log(text, kind) {
  const list = $("log");
  const li = document.createElement("li");
  li.className = kind;
  li.textContent = text;
  list.appendChild(li);
  while (list.childElementCount > MAX_LOG_LINES) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

function setJoined(joined, state) {
  $("join").disabled = joined;
  $("channel").disabled = joined;
  $("leave").disabled = !joined;
  $("message").disabled = !joined;
  $("send").disabled = !joined;
  $("ws-state").textContent = state;
  $("ws-state").className = joined ? "status ok" : "status";
}

function join(event) {
  event.preventDefault();
  if (socket) return;
  const channel = $("channel").value.trim() || "default";
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(`${scheme}${location.host}/${channel}`);
  ws.binaryType = "arraybuffer";
  socket = ws;
  $("ws-state").textContent = "joining…";
  ws.onopen = () => {
    setJoined(true, `joined ${channel}`);
    log(`joined ${channel}`, "sys");
  };
  ws.onmessage = (msg) => {
    const text =
      typeof msg.data === "string" ? msg.data : `[binary, ${msg.data.byteLength} bytes]`;
    log(`received: ${text}`, "in");
  };
  ws.onclose = (ev) => {
    if (socket === ws) socket = null;
    setJoined(false, "not joined");
    log(`closed (${ev.code}${ev.reason ? " " + ev.reason : ""})`, "sys");
  };
}

function leave() {
  if (socket) socket.close(1000, "left");
}

function send(event) {
  event.preventDefault();
  const input = $("message");
  if (!socket || socket.readyState !== WebSocket.OPEN || !input.value) return;
  socket.send(input.value);
  log(`sent: ${input.value}`, "out");
  input.value = "";
}

$("join-form").addEventListener("submit", join);
$("leave").addEventListener("click", leave);
$("send-form").addEventListener("submit", send);
poll();
