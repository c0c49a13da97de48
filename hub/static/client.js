// hub's browser client: an ES module with no dependencies, served by every hub at /client.js.
//
//   import { HubClient } from "https://hub.example.com/client.js";
//   const hub = new HubClient(["wss://hub-a.example.com/", "wss://hub-b.example.com/"], {
//     getToken: async () => (await fetch("/hub-token")).text(),
//   });
//   hub.subscribe("news", (value, msg) => console.log(msg.offset, value), {
//     // "subscribed" after each (re)subscription, with its position and "recovered";
//     // "unrecovered" or "gap": messages were lost to you, resync from your own source;
//     // "error": the hub refused the subscription (e.g. forbidden).
//     onEvent: (ev) => console.log(ev.type, ev),
//   });
//   await hub.publish("news", { headline: "hi" });
//
// The server may subscribe the connection itself (POST /api/subscribe, a connect hook): the
// onServerSubscribe option is called with each such Subscription (sub.server is true), and
// returns the handler of its messages: onServerSubscribe: (sub) => (value, msg) => ....
//
// It speaks hub.v1 (docs/protocol.md). It reconnects with full-jitter backoff, failing over
// to the next URL after each failed attempt, resubscribes every subscription, and recovers
// each history channel from the last position it delivered: a message is handed to the
// handler once, in order. When the hub cannot recover a channel (its history was trimmed or
// lost), the subscription's onEvent gets {type: "unrecovered"}, and a gap the hub could not
// repair arrives as {type: "gap"}; neither is hidden. See docs/client.md.

const DEFAULTS = {
  getToken: null, // async () => JWT: before connecting, before its exp (sent in band), on 4001
  token: null, // a fixed JWT, when there is no getToken
  minDelayMs: 250, // backoff: the n-th retry waits random(0, min(maxDelayMs, minDelayMs * 2^n))
  maxDelayMs: 10000,
  maxQueued: 1000, // publishes held while disconnected; past it, publish() rejects
  queueWhileDisconnected: true, // false: publish() rejects at once while disconnected
  // An application ping (browsers cannot send WebSocket pings); no answer within
  // pingTimeoutMs means a silent hub (a partition, a frozen host): the client drops the
  // connection and fails over to the next URL, within pingIntervalMs + pingTimeoutMs.
  pingIntervalMs: 5000,
  pingTimeoutMs: 5000,
  // A connect that has not opened by then is given up and the next URL tried: a browser
  // itself waits minutes for a host that drops the SYN.
  connectTimeoutMs: 10000,
  // (sub) => handler: a subscription the server made (sub.channel, sub.position); the
  // handler it returns gets its messages; set sub.onEvent for its events. Unset: ignored.
  onServerSubscribe: null,
  WebSocket: globalThis.WebSocket,
};

// Close codes after which retrying the same way cannot help (docs/protocol.md, Close codes).
const POLICY = 1008;
const TOO_BIG = 1009;
const TOKEN_EXPIRED = 4001;
const NORMAL = 1000;
// A token is sent again in band this long before its exp (or at half its life, if shorter).
const REFRESH_AHEAD_MS = 30000;

// A JWT's exp (ms since the epoch), read without verifying it: the hub verifies.
function tokenExpMs(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4))).exp;
    return typeof exp === "number" ? exp * 1000 : null;
  } catch {
    return null;
  }
}
const DISCONNECTED = 4009; // a backend disconnected this user (POST /api/disconnect)

export class HubError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "HubError";
    this.code = code;
  }
}

class Subscription {
  constructor(client, channel, handler, onEvent, server = false) {
    this.client = client;
    this.channel = channel;
    this.handler = handler;
    this.onEvent = onEvent || (() => {});
    this.position = null; // {epoch, offset} of the last message delivered (history channels)
    this.isActive = true;
    // Made by the server: never resubscribed by the client; after a reconnect it goes on
    // only if the server subscribes the channel again.
    this.server = server;
  }

  unsubscribe() {
    this.client._unsubscribe(this);
  }
}

export class HubClient {
  constructor(urls, options = {}) {
    this.urls = Array.isArray(urls) ? [...urls] : [urls];
    if (!this.urls.length) throw new TypeError("HubClient needs at least one URL");
    this.options = { ...DEFAULTS, ...options };
    this.subscriptions = new Map(); // channel -> Subscription
    this.listeners = new Map(); // event name -> Set of functions
    this.queue = []; // [{frame, resolve, reject}] not sent yet
    this.pending = new Map(); // request id -> {resolve, reject, channel?}
    this.nextId = 1;
    this.urlIndex = 0;
    this.attempt = 0;
    this.ws = null;
    this.isOpen = false;
    this.isClosed = false;
    this.timer = null;
    this.pingTimer = null;
    this.connectTimer = null;
    this.heardAt = 0; // Date.now() of the last frame from the hub
    this.refreshTimer = null;
    this.token = this.options.token;
    this._connect();
  }

  // Events: "connected" {url}, "disconnected" {code, reason}, "error" {code, message},
  // "unrecovered" and "gap" (also given to the subscription's onEvent), "closed" {code, reason},
  // "subscribed" {channel, server: true} when the server subscribed the connection, and
  // "unsubscribed" {channel, server: true} when it unsubscribed it (also to onEvent); with the
  // backend's connect hook: "session" {user, data, expire_at} (the hub's first frame), and
  // "server-subscribed" {channels, positions} per server frame; messages of a server-side
  // subscription without a handler (see onServerSubscribe) arrive as "message"
  // {channel, value, frame} events.
  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.listeners.get(name).delete(fn);
  }

  subscribe(channel, handler, { onEvent } = {}) {
    if (this.subscriptions.has(channel)) {
      throw new HubError("already_subscribed", `already subscribed to ${channel}`);
    }
    const sub = new Subscription(this, channel, handler, onEvent);
    this.subscriptions.set(channel, sub);
    if (this.isOpen) this._sendSubscribe(sub);
    return sub;
  }

  // Resolves when the hub has taken the message (its ack); rejects with a HubError when it is
  // refused, when the queue is full, or when the connection was lost before the ack (it
  // may or may not have been published: it is not sent twice).
  publish(channel, data) {
    return this._request({ op: "publish", channel, data });
  }

  publishText(channel, text) {
    return this._request({ op: "publish", channel, text });
  }

  // The backend's answer to an RPC (--proxy-rpc-url); rejects with a HubError when refused
  // (code "refused", the backend's own code in err.appCode) or unavailable.
  async rpc(method, params) {
    const frame = await this._request({ op: "rpc", method, params });
    return frame.result;
  }

  close() {
    this.isClosed = true;
    clearTimeout(this.timer);
    this._stopPing();
    const ws = this.ws;
    if (ws) {
      this._onClose(ws, NORMAL, "closed by the client"); // rejects what awaits an ack
      ws.close(NORMAL, "closed by the client");
    }
    this._failAll("closed", "the client was closed");
    this._emit("closed", { code: NORMAL, reason: "closed by the client" });
  }

  // Internals

  _emit(name, event) {
    for (const fn of this.listeners.get(name) || []) {
      try {
        fn(event);
      } catch (err) {
        console.error(err);
      }
    }
  }

  _request(body) {
    return new Promise((resolve, reject) => {
      if (this.isClosed) return reject(new HubError("closed", "the client was closed"));
      const item = { body, resolve, reject };
      if (this.isOpen) return this._send(item);
      if (!this.options.queueWhileDisconnected) {
        return reject(new HubError("disconnected", "not connected; publish again later"));
      }
      if (this.queue.length >= this.options.maxQueued) {
        return reject(new HubError("queue_full", `${this.queue.length} publishes are already queued`));
      }
      this.queue.push(item);
    });
  }

  _send({ body, resolve, reject }) {
    const id = this.nextId++;
    this.pending.set(id, { resolve, reject });
    this.ws.send(JSON.stringify({ ...body, id }));
  }

  _sendSubscribe(sub) {
    const id = this.nextId++;
    const request = { op: "subscribe", channel: sub.channel, id };
    if (sub.position) request.recover = { [sub.channel]: sub.position };
    this.pending.set(id, { sub });
    this.ws.send(JSON.stringify(request));
  }

  _unsubscribe(sub) {
    if (!sub.isActive) return;
    sub.isActive = false;
    this.subscriptions.delete(sub.channel);
    if (this.isOpen) {
      this.ws.send(JSON.stringify({ op: "unsubscribe", channels: [sub.channel] }));
    }
  }

  async _connect() {
    if (this.isClosed) return;
    const url = new URL(this.urls[this.urlIndex % this.urls.length]);
    if (this.options.getToken && !this.token) {
      try {
        this.token = await this.options.getToken();
      } catch (err) {
        this._emit("error", { code: "token", message: `getToken failed: ${err}` });
        return this._retry();
      }
    }
    if (this.token) url.searchParams.set("token", this.token);
    let ws;
    try {
      ws = new this.options.WebSocket(url.href, "hub.v1");
    } catch (err) {
      this._emit("error", { code: "url", message: String(err) });
      return this._retry();
    }
    this.ws = ws;
    const { connectTimeoutMs } = this.options;
    if (connectTimeoutMs) {
      this.connectTimer = setTimeout(() => this._abandon(ws, "no answer to the connect"), connectTimeoutMs);
    }
    ws.onopen = () => this._onOpen(ws, url);
    ws.onmessage = (msg) => {
      this.heardAt = Date.now();
      this._onFrame(msg.data);
    };
    ws.onclose = (ev) => this._onClose(ws, ev.code, ev.reason);
  }

  _onOpen(ws, url) {
    if (ws !== this.ws) return;
    clearTimeout(this.connectTimer);
    this.isOpen = true;
    this.attempt = 0;
    url.searchParams.delete("token");
    this._emit("connected", { url: url.href });
    // Resubscribe first, so a queued publish to a subscribed channel comes back to us.
    for (const sub of this.subscriptions.values()) if (!sub.server) this._sendSubscribe(sub);
    const queued = this.queue.splice(0);
    for (const item of queued) this._send(item);
    this._startPing();
    this._scheduleRefresh(ws);
  }

  // Before the token's exp, send a fresh one from getToken in band ({op: "refresh"}): the
  // connection keeps its subscriptions. If that fails, the 4001 at the exp reconnects.
  _scheduleRefresh(ws) {
    clearTimeout(this.refreshTimer);
    const exp = this.options.getToken && this.token ? tokenExpMs(this.token) : null;
    if (exp === null) return;
    const left = exp - Date.now();
    this.refreshTimer = setTimeout(async () => {
      if (ws !== this.ws) return;
      try {
        const token = await this.options.getToken();
        const fresh = tokenExpMs(token);
        // Nothing fresher yet: the 4001 at exp reconnects, with getToken's answer then.
        if (fresh !== null && fresh <= exp) return;
        await this._request({ op: "refresh", token });
        this.token = token;
        this._scheduleRefresh(ws);
      } catch (err) {
        this._emit("error", { code: "refresh", message: `the token refresh failed: ${err}` });
      }
    }, Math.max(0, left - Math.min(REFRESH_AHEAD_MS, left / 2)));
  }

  _onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return; // hub.v1 sends JSON only
    }
    const type = frame.type;
    if (type === "message") return this._deliver(frame);
    if (type === "gap") return this._gap(frame);
    if (type === "ack" || type === "error" || type === "rpc") return this._answer(frame);
    if (type === "connected") {
      return this._emit("session", { user: frame.user, data: frame.data, expire_at: frame.expire_at });
    }
    if (type === "subscribed" && frame.server === true) return this._serverSubscribed(frame);
    if (type === "unsubscribed" && frame.server === true) return this._serverUnsubscribed(frame);
  }

  _serverSubscribed(frame) {
    for (const channel of frame.channels || []) {
      let sub = this.subscriptions.get(channel);
      if (sub && !sub.server) continue; // ours already
      const position = (frame.positions || {})[channel];
      const top = position ? { epoch: position.epoch, offset: position.offset } : null;
      if (sub) {
        // It outlived a reconnect: were messages published meanwhile?
        const held = sub.position;
        if (held && top && (held.epoch !== top.epoch || held.offset < top.offset)) {
          const event = { type: "unrecovered", channel, from: held, ...top };
          sub.onEvent(event);
          this._emit("unrecovered", event);
        }
        sub.position = top || sub.position;
        continue;
      }
      sub = new Subscription(
        this,
        channel,
        (value, msg) => this._emit("message", { channel, value, frame: msg }),
        null,
        true,
      );
      sub.position = top;
      this.subscriptions.set(channel, sub);
      if (this.options.onServerSubscribe) {
        try {
          const handler = this.options.onServerSubscribe(sub);
          if (typeof handler === "function") sub.handler = handler;
        } catch (err) {
          console.error(err);
        }
      }
      const event = { type: "subscribed", channel, server: true, ...(top || {}) };
      sub.onEvent(event);
      this._emit("subscribed", event);
    }
    this._emit("server-subscribed", { channels: frame.channels, positions: frame.positions });
  }

  _serverUnsubscribed(frame) {
    const sub = this.subscriptions.get(frame.channel);
    if (!sub) return;
    sub.isActive = false;
    this.subscriptions.delete(frame.channel);
    const event = { type: "unsubscribed", channel: frame.channel, server: true };
    sub.onEvent(event);
    this._emit("unsubscribed", event);
  }

  _deliver(frame) {
    const sub = this.subscriptions.get(frame.channel);
    if (!sub || !sub.isActive) return;
    if (frame.offset !== undefined && sub.position) {
      if (frame.offset <= sub.position.offset) return; // already delivered: never twice
      sub.position = { epoch: sub.position.epoch, offset: frame.offset };
    }
    let value = frame.data;
    if (frame.text !== undefined) value = frame.text;
    else if (frame.binary !== undefined) value = base64Bytes(frame.binary);
    try {
      sub.handler(value, frame);
    } catch (err) {
      console.error(err);
    }
  }

  _gap(frame) {
    const sub = this.subscriptions.get(frame.channel);
    if (!sub) return;
    sub.position = { epoch: frame.epoch, offset: frame.offset };
    const event = { type: "gap", channel: frame.channel, epoch: frame.epoch, offset: frame.offset };
    sub.onEvent(event);
    this._emit("gap", event);
  }

  _answer(frame) {
    const waiter = this.pending.get(frame.id);
    if (!waiter) {
      if (frame.type === "error") this._emit("error", { code: frame.code, message: frame.message });
      return;
    }
    this.pending.delete(frame.id);
    if (waiter.sub) return this._subscribed(waiter.sub, frame);
    if (frame.type === "error") {
      const err = new HubError(frame.code, frame.message);
      if (frame.app_code !== undefined) err.appCode = frame.app_code;
      waiter.reject(err);
    } else waiter.resolve(frame);
  }

  _subscribed(sub, frame) {
    if (!sub.isActive) return; // unsubscribed meanwhile
    if (frame.type === "error") {
      // Refused (forbidden, bad_channel, ...): retrying cannot help; the user is told.
      this.subscriptions.delete(sub.channel);
      sub.isActive = false;
      const event = { type: "error", channel: sub.channel, code: frame.code, message: frame.message };
      sub.onEvent(event);
      this._emit("error", event);
      return;
    }
    const position = (frame.positions || {})[sub.channel];
    sub.onEvent({ type: "subscribed", channel: sub.channel, ...(position || {}) });
    if (!position) return;
    if (position.recovered === false) {
      const event = {
        type: "unrecovered",
        channel: sub.channel,
        from: sub.position,
        epoch: position.epoch,
        offset: position.offset,
      };
      sub.onEvent(event);
      this._emit("unrecovered", event);
    }
    // The replay that follows the ack starts after the position asked for, or after the top.
    sub.position = position.recovered ? sub.position : { epoch: position.epoch, offset: position.offset };
  }

  _onClose(ws, code, reason) {
    if (ws !== this.ws) return;
    const wasOpen = this.isOpen;
    this.isOpen = false;
    this.ws = null;
    clearTimeout(this.connectTimer);
    this._stopPing();
    clearTimeout(this.refreshTimer);
    // Sent but not acked: they may or may not have been published; they are not resent.
    for (const [id, waiter] of this.pending) {
      if (waiter.reject) {
        waiter.reject(new HubError("connection_lost", `the connection closed (${code}) before the ack`));
      }
      this.pending.delete(id);
    }
    if (this.isClosed) return;
    if (wasOpen) this._emit("disconnected", { code, reason });
    if (code === NORMAL || code === DISCONNECTED) {
      this.isClosed = true;
      this._failAll("closed", `the hub closed the connection: ${reason}`);
      return this._emit("closed", { code, reason });
    }
    if (code === TOKEN_EXPIRED) {
      this.token = null; // a fresh one from getToken, then reconnect at once
      if (this.options.getToken) return this._connect();
    }
    if (code === POLICY && !this.options.getToken) {
      // The token does not allow this, and no other token can be had: retrying is blind.
      this.isClosed = true;
      this._failAll("closed", `refused by policy: ${reason}`);
      return this._emit("closed", { code, reason });
    }
    // A handshake the hub refused (an expired or revoked token: 401) looks like any failed
    // connection to a browser, so a failed attempt asks getToken again, within the backoff.
    if (code === POLICY || !wasOpen) this.token = this.options.getToken ? null : this.token;
    if (code === TOO_BIG) this._emit("error", { code, message: `a frame was too big: ${reason}` });
    if (!wasOpen) this.urlIndex++; // this URL failed: try the next one
    this._retry();
  }

  _retry() {
    if (this.isClosed) return;
    const { minDelayMs, maxDelayMs } = this.options;
    const cap = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    this.timer = setTimeout(() => this._connect(), Math.random() * cap);
  }

  _startPing() {
    const { pingIntervalMs, pingTimeoutMs } = this.options;
    if (!pingIntervalMs) return;
    this.pingTimer = setInterval(() => {
      const ws = this.ws;
      // A dead peer never completes the closing handshake: give up on it now. Frames still
      // arriving (a backlog ahead of the answer, on a slow link) prove the hub alive.
      const timeout = setTimeout(() => {
        if (Date.now() - this.heardAt >= pingTimeoutMs) this._abandon(ws, "no answer to a ping");
      }, pingTimeoutMs);
      this._request({ op: "ping" }).then(
        () => clearTimeout(timeout),
        () => clearTimeout(timeout),
      );
    }, pingIntervalMs);
  }

  // A silent hub: drop its socket without waiting for a closing handshake, and fail over
  // to the next URL (a hub that only restarted refuses at once, a silent one would hang).
  _abandon(ws, reason) {
    if (ws !== this.ws) return;
    ws.onclose = null;
    ws.close(4000, reason);
    if (this.isOpen) this.urlIndex++; // _onClose moves on after a connect that never opened
    this._onClose(ws, 4000, reason);
  }

  _stopPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  _failAll(code, message) {
    for (const item of this.queue.splice(0)) item.reject(new HubError(code, message));
  }
}

function base64Bytes(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}
