// The hub dashboard: polls /stats once a second and runs the "try it" panel.
// No build step and no dependencies: it talks only to the hub that served it.
"use strict";

const POLL_INTERVAL_MS = 1000;
const MAX_LOG_LINES = 200;
const CHART_POINTS = 300; // five minutes of polls
const LOG_FLUSH_MS = 100; // the log is drawn at most ten times a second, however busy

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
  renderRedis(stats, dt);
  renderChannels(stats);
  record(stats, inRate, outRate);
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
  const up = Math.round(stats.uptime_s);
  $("uptime").textContent = `${Math.floor(up / 3600)}h ${Math.floor((up % 3600) / 60)}m ${up % 60}s (worker ${stats.answered_by.worker})`;
  $("version").textContent = `v${stats.version}`;
}

function renderChannels(stats) {
  const rows = (stats.channels || []).map(({ channel, subscribers }) => {
    const tr = document.createElement("tr");
    tr.dataset.channel = channel;
    for (const text of [channel, fmt(subscribers)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  });
  $("channel-list").tBodies[0].replaceChildren(...rows);
  const shown = rows.length, all = stats.num_channels_here || 0;
  $("channels-scope").textContent =
    `(worker ${stats.answered_by.worker}: ${shown < all ? `the busiest ${shown} of ${all}` : all})`;
}

// Charts: the last CHART_POINTS polls of four series, drawn as sparklines.

const chartData = { connections: [], received: [], delivered: [], fanout: [] };

function record(stats, inRate, outRate) {
  const h = stats.histograms || {};
  const old = (previous && previous.histograms) || {};
  const p99 = intervalQuantile(h.fanout_s, old.fanout_s, 0.99);
  const points = {
    connections: stats.totals.connections,
    received: inRate,
    delivered: outRate,
    fanout: p99 === null || p99 === Infinity ? null : p99 * 1000,
  };
  for (const [name, value] of Object.entries(points)) {
    const series = chartData[name];
    series.push(value);
    if (series.length > CHART_POINTS) series.shift();
    draw(`chart-${name}`, series);
  }
}

function draw(id, series) {
  const canvas = $(id);
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const values = series.filter((v) => v !== null);
  if (!values.length) return;
  const top = Math.max(...values, 1);
  ctx.strokeStyle = "#2f6fd6";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  let started = false;
  series.forEach((v, i) => {
    if (v === null) return;
    const x = (i / (CHART_POINTS - 1)) * width;
    const y = height - 4 - (v / top) * (height - 14);
    if (started) ctx.lineTo(x, y);
    else ctx.moveTo(x, y);
    started = true;
  });
  ctx.stroke();
  ctx.fillStyle = "#6b7385";
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(fmt(values[values.length - 1]), 4, 12);
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
