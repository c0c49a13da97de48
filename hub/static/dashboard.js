// The hub dashboard: polls /stats once a second and runs the "try it" panel.
// No build step and no dependencies: it talks only to the hub that served it.
"use strict";

const POLL_INTERVAL_MS = 1000;
const MAX_LOG_LINES = 200;
const CHART_SPAN_S = 300; // the charts show the last five minutes of /stats' history
const LOG_FLUSH_MS = 100; // the log is drawn at most ten times a second, however busy

const $ = (id) => document.getElementById(id);
const fmt = (n) => (n === undefined || n === null ? "–" : Math.round(n).toLocaleString("en"));
// 1234 → "1.2k", for axis labels.
function short(n) {
  const a = Math.abs(n);
  if (a >= 1e9) return `${+(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return `${+n.toFixed(a < 10 ? 2 : 0)}`;
}
function bytes(n) {
  if (n === undefined || n === null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

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

function last(values) {
  for (let i = values.length - 1; i >= 0; i -= 1) if (values[i] !== null) return values[i];
  return null;
}

function render(stats) {
  const t = stats.totals;
  const h = stats.history;
  const dt = previous ? stats.time - previous.time : 0;
  $("connections").textContent = fmt(t.connections);
  // Distinct channels over every worker ("≥" when some worker has more than it shares).
  $("channels").textContent = (stats.channels_complete === false ? "≥ " : "") + fmt(t.channels);
  $("received").textContent = fmt(t.received);
  $("slow-closes").textContent = fmt(t.slow_consumer_disconnects);
  const recent = h.slow_consumer_closes.reduce((a, b) => a + b, 0);
  $("slow-closes-recent").textContent = `${fmt(recent)} in the last 5 min`;
  $("workers-ready").textContent = `${t.workers_ready} / ${t.workers}`;
  // The rates of the last whole second every worker has sampled: the charts' last points.
  $("received-rate").textContent = fmt(last(h.received_per_s));
  $("delivered-rate").textContent = fmt(last(h.delivered_per_s));

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
  renderRedis(stats, dt);
  renderChannels(stats);
  renderCharts(stats);
  previous = stats;
}

// The quantile of what happened between two polls, from cumulative histogram buckets.
function intervalQuantile(now, before, q) {
  if (!now || !now.length) return null;
  const old = new Map((before || []).map(([le, n]) => [le, n]));
  const counts = now.map(([le, n]) => [le, n - (old.get(le) || 0)]);
  const total = counts[counts.length - 1][1];
  if (total <= 0) return null;
  for (const [le, n] of counts) if (n >= q * total) return le;
  return null;
}

function ms(seconds) {
  if (seconds === null) return "–";
  return seconds === Infinity ? "> 2.5 s" : `≤ ${(seconds * 1000).toLocaleString("en")} ms`;
}

function renderRedis(stats, dt) {
  const t = stats.totals;
  const h = stats.histograms || {};
  const old = (previous && previous.histograms) || {};
  $("redis-broker").textContent = stats.broker;
  $("redis-connected").textContent =
    t.workers_ready === t.workers ? `yes (${t.workers} of ${t.workers} workers)`
      : `NO: ${t.workers_ready} of ${t.workers} workers`;
  $("redis-connected").className = t.workers_ready === t.workers ? "ok" : "bad";
  if (dt > 0) {
    $("redis-roundtrip").textContent = ms(intervalQuantile(h.redis_roundtrip_s, old.redis_roundtrip_s, 0.99));
    $("redis-probe").textContent = ms(intervalQuantile(h.probe_latency_s, old.probe_latency_s, 0.99));
  }
  $("redis-reconnects").textContent = fmt(t.broker_reconnects);
  $("redis-probe-failures").textContent = fmt(t.broker_probe_failures);
  const r = stats.redis;
  if (!r) {
    for (const id of ["redis-memory", "redis-clients", "redis-channels"]) {
      $(id).textContent = "– (memory broker: no Redis)";
    }
  } else if (r.error) {
    $("redis-memory").textContent = `cannot ask Redis: ${r.error}`;
    $("redis-memory").className = "bad";
  } else if (!r.pending) {
    const limit = r.maxmemory ? `of ${bytes(r.maxmemory)} maxmemory` : "no maxmemory";
    $("redis-memory").textContent = `${bytes(r.used_memory)} (${limit}; peak ${bytes(r.used_memory_peak)})`;
    $("redis-memory").className = "";
    const parts = [];
    if (r.pubsub_clients !== undefined) parts.push(`${fmt(r.pubsub_clients)} pub/sub`);
    if (r.blocked_clients !== undefined) parts.push(`${fmt(r.blocked_clients)} blocked`);
    $("redis-clients").textContent =
      `${fmt(r.connected_clients)} connected${parts.length ? ` (${parts.join(", ")})` : ""}`;
    $("redis-channels").textContent = `${fmt(r.channels)} (as of ${Math.round(r.age_s)} s ago)`;
  }
  const up = Math.round(stats.uptime_s);
  $("uptime").textContent = `${Math.floor(up / 3600)}h ${Math.floor((up % 3600) / 60)}m ${up % 60}s (worker ${stats.answered_by.worker})`;
  $("version").textContent = `v${stats.version}`;
}

function renderChannels(stats) {
  const rows = (stats.channels || []).map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.channel = c.channel;
    const rateText = c.messages_per_s < 10 ? c.messages_per_s.toFixed(1) : fmt(c.messages_per_s);
    for (const text of [c.channel, fmt(c.subscribers), rateText, fmt(c.workers), fmt(c.processes)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  });
  $("channel-list").tBodies[0].replaceChildren(...rows);
  const shown = rows.length, all = stats.num_channels || 0;
  const scope = shown < all ? `the busiest ${shown} of ${stats.channels_complete ? "" : "at least "}${fmt(all)}` : `${fmt(all)}`;
  $("channels-scope").textContent =
    `(${scope}, over all ${stats.totals.workers} workers; messages /s over the last second)`;
}

// Charts: the last CHART_SPAN_S seconds of /stats' history, with axes and units.

// The series the charts draw, by name (also read by the browser tests).
const chartData = { t: [], connections: [], received: [], delivered: [], fanout: [], slow: [] };
const CHARTS = [
  ["connections", ""],
  ["received", "msg/s"],
  ["delivered", "msg/s"],
  ["fanout", "ms"],
  ["slow", "/s"],
];

function renderCharts(stats) {
  const h = stats.history;
  chartData.t = h.t;
  chartData.connections = h.connections;
  chartData.received = h.received_per_s;
  chartData.delivered = h.delivered_per_s;
  chartData.fanout = h.fanout_p99_s.map((v) => (v === null ? null : v * 1000));
  chartData.slow = h.slow_consumer_closes;
  const end = h.t.length ? h.t[h.t.length - 1] : stats.time;
  for (const [name, unit] of CHARTS) draw(`chart-${name}`, chartData.t, chartData[name], unit, end);
}

// The smallest of 1, 2, 5 × 10^k at or above v.
function niceCeil(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function draw(id, times, series, unit, end) {
  const canvas = $(id);
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 300, height = canvas.clientHeight || 120;
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const pad = { left: 52, right: 8, top: 8, bottom: 18 };
  const w = width - pad.left - pad.right, h = height - pad.top - pad.bottom;
  const values = series.filter((v) => v !== null);
  const top = niceCeil(Math.max(...values, 0));
  const start = end - CHART_SPAN_S;
  const x = (t) => pad.left + ((t - start) / CHART_SPAN_S) * w;
  const y = (v) => pad.top + h - (v / top) * h;
  ctx.font = "10px system-ui, sans-serif";
  ctx.lineWidth = 1;
  // y axis: 0, half and top, with the unit on the top label
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of [0, top / 2, top]) {
    ctx.strokeStyle = v ? "#eceef3" : "#b8bfcc";
    ctx.beginPath();
    ctx.moveTo(pad.left, Math.round(y(v)) + 0.5);
    ctx.lineTo(pad.left + w, Math.round(y(v)) + 0.5);
    ctx.stroke();
    ctx.fillStyle = "#6b7385";
    ctx.fillText(v === top && unit ? `${short(v)} ${unit}` : short(v), pad.left - 4, y(v));
  }
  // x axis: a tick a minute, from -5 min to now
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let m = 5; m >= 0; m -= 1) {
    const tx = x(end - m * 60);
    ctx.strokeStyle = "#b8bfcc";
    ctx.beginPath();
    ctx.moveTo(Math.round(tx) + 0.5, pad.top + h);
    ctx.lineTo(Math.round(tx) + 0.5, pad.top + h + 3);
    ctx.stroke();
    ctx.fillStyle = "#6b7385";
    ctx.textAlign = m === 0 ? "right" : "center";
    ctx.fillText(m ? `−${m}m` : "now", tx, pad.top + h + 4);
  }
  if (!values.length) {
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("no data yet", pad.left + w / 2, pad.top + h / 2);
    return;
  }
  // the line, broken where a second is missing or has no value
  ctx.strokeStyle = "#2f6fd6";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  let prev = null;
  series.forEach((v, i) => {
    const t = times[i];
    if (v === null || t < start) {
      prev = null;
      return;
    }
    if (prev !== null && t - prev <= 2) ctx.lineTo(x(t), y(v));
    else ctx.moveTo(x(t), y(v));
    prev = t;
  });
  ctx.stroke();
  // the latest value, top right
  ctx.fillStyle = "#1d2330";
  ctx.textAlign = "right";
  ctx.textBaseline = "top";
  const latest = values[values.length - 1];
  ctx.fillText(`${latest < 10 ? +latest.toFixed(2) : fmt(latest)}${unit ? " " + unit : ""}`, pad.left + w, pad.top);
}

async function poll() {
  const status = $("status");
  try {
    const response = await fetch("/stats", { cache: "no-store", headers: adminHeaders });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const doc = await response.json();
    render(doc);
    prefillApi(doc.api_port);
    status.textContent = `live · answered by worker ${previous.answered_by.worker}`;
    status.className = "status ok";
  } catch (err) {
    status.textContent = `cannot read /stats: ${err.message}`;
    status.className = "status bad";
  } finally {
    setTimeout(poll, POLL_INTERVAL_MS);
  }
}

// Operator actions: the HTTP API (--api-port) with its key, which the operator types in. The
// URL and key live in this tab's sessionStorage only: never in the address, never logged.

const apiUrl = $("op-api-url");
const apiKey = $("op-api-key");
apiUrl.value = sessionStorage.getItem("hub.api_url") || "";
apiKey.value = sessionStorage.getItem("hub.api_key") || "";
apiUrl.addEventListener("change", () => sessionStorage.setItem("hub.api_url", apiUrl.value.trim()));
apiKey.addEventListener("change", () => sessionStorage.setItem("hub.api_key", apiKey.value));

function prefillApi(port) {
  if (port && !apiUrl.value) apiUrl.value = `${location.protocol}//${location.hostname}:${port}`;
}

function opResult(text, ok) {
  $("op-result").textContent = text;
  $("op-result").className = ok ? "status ok" : "status bad";
}

// One call of the API: its JSON answer, or an Error with the API's message.
async function api(method, path, body, contentType = "application/json") {
  const base = apiUrl.value.trim().replace(/\/+$/, "");
  if (!base) throw new Error("type the API's URL (http://host:api-port)");
  if (!apiKey.value) throw new Error("type the API key");
  sessionStorage.setItem("hub.api_url", base);
  sessionStorage.setItem("hub.api_key", apiKey.value);
  const headers = { Authorization: `Bearer ${apiKey.value}` };
  if (body !== undefined) headers["Content-Type"] = contentType;
  let response;
  try {
    response = await fetch(base + path, { method, headers, body, cache: "no-store" });
  } catch (err) {
    throw new Error(`no answer from ${base} (a wrong key or URL, or the API is down)`);
  }
  const doc = await response.json().catch(() => null);
  if (!response.ok) {
    const why = doc && doc.error ? `${doc.error.code}: ${doc.error.message}` : `HTTP ${response.status}`;
    throw new Error(why);
  }
  return doc;
}

function missing(doc) {
  return doc.missing && doc.missing.length ? `; no answer from ${doc.missing.join(", ")}` : "";
}

async function lookUp(event) {
  event.preventDefault();
  const user = $("op-user").value.trim();
  if (!user) return opResult("type a user (a JWT's sub)", false);
  const body = $("op-connections").tBodies[0];
  try {
    const doc = await api("GET", `/api/users/${encodeURIComponent(user)}`);
    body.replaceChildren();
    for (const instance of doc.instances) {
      for (const c of instance.connections) {
        const tr = document.createElement("tr");
        tr.dataset.client = c.client;
        for (const text of [instance.instance, c.client, c.transport, c.channels.join(", ")]) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.appendChild(td);
        }
        body.appendChild(tr);
      }
    }
    opResult(`${user}: ${doc.count} connection(s) on ${doc.instances.length} instance(s)${missing(doc)}`, true);
  } catch (err) {
    opResult(`look-up failed: ${err.message}`, false);
  }
}

async function disconnectUser() {
  const user = $("op-user").value.trim();
  if (!user) return opResult("type a user (a JWT's sub)", false);
  if (!confirm(`Disconnect every connection of ${user} on every instance?`)) return;
  try {
    const doc = await api("POST", "/api/disconnect", JSON.stringify({ user }));
    opResult(`disconnected ${user}: ${doc.count} connection(s) on ${doc.instances} instance(s)${missing(doc)}`, true);
    $("op-connections").tBodies[0].replaceChildren();
  } catch (err) {
    opResult(`disconnect failed: ${err.message}`, false);
  }
}

async function publishMessage(event) {
  event.preventDefault();
  const channel = $("op-channel").value.trim();
  if (!channel) return opResult("type a channel", false);
  const text = $("op-message").value;
  const item = { channel };
  if ($("op-kind").value === "json") {
    try {
      item.data = JSON.parse(text);
    } catch (err) {
      return opResult(`not JSON: ${err.message}`, false);
    }
  } else {
    item.text = text;
  }
  try {
    const doc = await api("POST", "/api/publish", JSON.stringify({ messages: [item] }));
    opResult(`published to ${channel}: ${JSON.stringify(doc)}`, true);
  } catch (err) {
    opResult(`publish failed: ${err.message}`, false);
  }
}

$("op-api-form").addEventListener("submit", (event) => event.preventDefault());
$("op-user-form").addEventListener("submit", lookUp);
$("op-disconnect").addEventListener("click", disconnectUser);
$("op-publish-form").addEventListener("submit", publishMessage);

// Try it: hub's own browser client (/client.js) on this host, one channel at a time

let client = null; // a HubClient while joined
let pending = []; // lines not drawn yet: a busy channel is drawn in batches
let flushTimer = null;
let paused = false;
let skipped = 0;

function log(text, kind) {
  pending.push([text, kind]);
  if (pending.length > MAX_LOG_LINES) pending = pending.slice(-MAX_LOG_LINES);
  if (flushTimer === null) flushTimer = setTimeout(flush, LOG_FLUSH_MS);
}

function flush() {
  flushTimer = null;
  const list = $("log");
  const lines = document.createDocumentFragment();
  for (const [text, kind] of pending) {
    const li = document.createElement("li");
    li.className = kind;
    li.textContent = text;
    lines.appendChild(li);
  }
  pending = [];
  list.appendChild(lines);
  while (list.childElementCount > MAX_LOG_LINES) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

function togglePause() {
  paused = !paused;
  $("pause").textContent = paused ? "Resume" : "Pause";
  $("pause").setAttribute("aria-pressed", String(paused));
  if (!paused && skipped) {
    log(`${skipped.toLocaleString("en")} messages not shown while paused`, "sys");
    skipped = 0;
  }
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

async function join(event) {
  event.preventDefault();
  if (client) return;
  const channel = $("channel").value.trim() || "default";
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  $("ws-state").textContent = "joining…";
  const { HubClient } = await import("/client.js");
  const hub = new HubClient(`${scheme}${location.host}/`);
  client = hub;
  hub.on("disconnected", (ev) => {
    log(`disconnected (${ev.code}${ev.reason ? " " + ev.reason : ""}); reconnecting`, "sys");
    $("ws-state").textContent = "reconnecting…";
  });
  hub.on("closed", (ev) => {
    if (client === hub) client = null;
    setJoined(false, "not joined");
    log(`closed (${ev.code}${ev.reason ? " " + ev.reason : ""})`, "sys");
  });
  hub.subscribe(
    channel,
    (value) => {
      if (paused) {
        skipped += 1;
        return;
      }
      const text =
        typeof value === "string"
          ? value
          : value instanceof Uint8Array
            ? `[binary, ${value.byteLength} bytes]`
            : JSON.stringify(value);
      log(`received: ${text}`, "in");
    },
    {
      onEvent: (ev) => {
        if (ev.type === "subscribed") {
          setJoined(true, `joined ${channel}`);
          log(ev.recovered ? `rejoined ${channel}, nothing missed` : `joined ${channel}`, "sys");
        } else if (ev.type === "error") {
          log(`refused: ${ev.message}`, "sys");
          hub.close();
        } else {
          log(`${ev.type}: messages were lost to this page`, "sys");
        }
      },
    },
  );
}

function leave() {
  if (client) client.close();
}

function send(event) {
  event.preventDefault();
  const input = $("message");
  if (!client || !input.value) return;
  const text = input.value;
  client.publishText($("channel").value.trim() || "default", text).then(
    () => log(`sent: ${text}`, "out"),
    (err) => log(`not sent: ${err.message}`, "sys"),
  );
  input.value = "";
}

$("join-form").addEventListener("submit", join);
$("leave").addEventListener("click", leave);
$("pause").addEventListener("click", togglePause);
$("send-form").addEventListener("submit", send);
poll();
