// SnapPlayer: the browser as one more Snapcast room.
//
//   const player = new SnapPlayer({ url: "ws://host:1780/stream", streamId: "default",
//                                   name: "Phone", onState: (s) => show(s) });
//   button.onclick = () => player.start();   // on a tap: autoplay rules
//   player.stop();
//
// It speaks snapserver's binary stream protocol (protocol.js) over a
// WebSocket, keeps the server-minus-AudioContext clock offset (clock.js) from
// Time round trips, and schedules every pcm chunk with Web Audio at its server
// timestamp + the server's buffer - the client's latency (scheduler.js).  No
// AudioWorklet or WebCodecs: a plain-http LAN page is not a secure context.
//
// Joining a group is done by `join(clientId, streamId, name, groupId)` (a
// function returning a promise): the group `groupId` when one is given (the
// group whose "Play here" was tapped), else a group playing `streamId`.
// jsonRpcJoin() does it over snapserver's JSON-RPC WebSocket, apiJoin()
// through broadcaster's own HTTP API.

import {
  MessageType,
  ProtocolError,
  decodePcm,
  parseMessage,
  parseWaveHeader,
  serializeHello,
  serializeTime,
  fromTimeval,
  timeOffset,
} from "./protocol.js";
import { ClockFilter } from "./clock.js";
import { PlayoutCursor, reshape } from "./scheduler.js";

const VERSION = "0.1.0";
const WARMUP_MS = 1000;
const ID_KEY = "snapplayer-client-id";

function randomId() {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  return "browser-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A client id kept in localStorage, so a reload or reconnect is the same room. */
export function storedClientId() {
  try {
    let id = localStorage.getItem(ID_KEY);
    if (!id) {
      id = randomId();
      localStorage.setItem(ID_KEY, id);
    }
    return id;
  } catch {
    return randomId();
  }
}

export class SnapPlayer {
  constructor({
    url,
    streamId = "",
    groupId = "",
    name = "",
    onState = () => {},
    join = null,
    clientId = null,
    timeInterval = 1000,
    reconnectMax = 5000,
  }) {
    if (!url) throw new Error("SnapPlayer needs the stream WebSocket url");
    this.url = url;
    this.streamId = streamId;
    this.groupId = groupId;
    this.name = name;
    this.onState = onState;
    this.join = join;
    this.clientId = clientId || storedClientId();
    this.timeInterval = timeInterval;
    this.reconnectMax = reconnectMax;
    this.ctx = null;
    this.ws = null;
    this.clock = new ClockFilter();
    this.cursor = new PlayoutCursor();
    this.sources = new Set();
    this.settings = { bufferMs: 1000, latency: 0, muted: false, volume: 100 };
    this.format = null;
    this.codec = "";
    this.running = false;
    this.timers = new Set();
    this.retry = 250;
    this.messageId = 1;
    this.clockMode = null;
    this.stats = this.freshStats();
    this.state = { state: "idle", message: "" };
    this.onVisibility = () => this.wake();
  }

  freshStats() {
    return { chunks: 0, played: 0, late: 0, waiting: 0, resyncs: 0, corrections: 0, connects: 0, lastError: 0 };
  }

  // --- lifecycle ------------------------------------------------------------------

  /** Start playing.  Call it from a user's tap: the AudioContext is created here. */
  async start() {
    if (this.running) return;
    this.running = true;
    if (!this.ctx) this.buildGraph();
    document.addEventListener("visibilitychange", this.onVisibility);
    await this.ctx.resume().catch(() => {});
    this.connect();
  }

  /**
   * A context that just started (or resumed) reports an unsettled output
   * timestamp for a moment (offsets 20 ms off were seen in Chromium): Time
   * round trips count only from WARMUP_MS after it runs.
   */
  warmupLeft() {
    if (!this.ctx || this.ctx.state !== "running" || this.runningSince === null) return WARMUP_MS;
    return Math.max(0, this.runningSince + WARMUP_MS - performance.now());
  }

  /** Stop playing and disconnect (the room leaves snapserver). */
  stop() {
    this.running = false;
    document.removeEventListener("visibilitychange", this.onVisibility);
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.timeLoop = false;
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
    this.stopSources();
    if (this.ctx) {
      this.ctx.close().catch(() => {});
      this.ctx = null;
    }
    this.setState("stopped", "");
  }

  buildGraph() {
    const Context = window.AudioContext || window.webkitAudioContext;
    this.ctx = new Context({ latencyHint: "playback" });
    this.gain = this.ctx.createGain();
    this.analyser = this.ctx.createAnalyser();
    this.analyser.fftSize = 8192;
    this.gain.connect(this.analyser);
    this.analyser.connect(this.ctx.destination);
    // A silent source that always runs: without one, a graph with no chunk
    // playing goes idle and the analyser keeps showing the last sound.
    this.keepAlive = this.ctx.createConstantSource();
    this.keepAlive.offset.value = 0;
    this.keepAlive.connect(this.gain);
    this.keepAlive.start();
    this.applyVolume();
    this.lastContextState = this.ctx.state;
    this.runningSince = this.ctx.state === "running" ? performance.now() : null;
    this.ctx.onstatechange = () => {
      if (this.ctx && this.ctx.state === "running" && this.lastContextState !== "running") {
        this.runningSince = performance.now();
      }
      // A context that was suspended (phone locked) lost its place against the
      // server clock: measure the offset again and lay chunks out afresh.
      if (this.ctx && this.ctx.state === "running" && this.lastContextState !== "running") {
        this.resync();
      }
      if (this.ctx) this.lastContextState = this.ctx.state;
    };
  }

  /** Back from a locked phone or a hidden tab: resume the context. */
  wake() {
    if (!this.running || !this.ctx || document.visibilityState !== "visible") return;
    if (this.ctx.state !== "running") this.ctx.resume().catch(() => {});
    if (!this.ws) this.connect();
  }

  resync() {
    this.clock.reset();
    this.clockMode = null;
    this.cursor.reset();
    this.stopSources();
    this.burstTime();
  }

  setState(state, message) {
    this.state = { state, message };
    try {
      this.onState({ ...this.state, codec: this.codec, format: this.format, clientId: this.clientId });
    } catch (err) {
      console.error("onState failed", err);
    }
  }

  later(fn, ms) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  // --- connection -----------------------------------------------------------------

  connect() {
    // One socket at a time: a wake-up may race a pending reconnect.
    if (!this.running || this.ws) return;
    this.setState(this.stats.connects ? "reconnecting" : "connecting", "");
    const ws = new WebSocket(this.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.stats.connects++;
      this.retry = 250;
      this.clock.reset();
      this.cursor.reset();
      this.joined = false;
      this.send(serializeHello(this.hello(), { id: this.nextId() }));
      this.burstTime();
    };
    ws.onmessage = (event) => {
      try {
        this.handle(parseMessage(event.data));
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        console.warn("snapserver sent a bad message:", err.message);
      }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopSources();
      if (!this.running) return;
      this.setState("reconnecting", "snapserver is unreachable, retrying…");
      this.later(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, this.reconnectMax);
    };
  }

  hello() {
    const nav = typeof navigator === "undefined" ? {} : navigator;
    return {
      Arch: "web",
      ClientName: "broadcaster-web",
      HostName: this.name || "browser",
      ID: this.clientId,
      Instance: 1,
      MAC: "00:00:00:00:00:00",
      OS: (nav.userAgentData && nav.userAgentData.platform) || nav.platform || "web",
      SnapStreamProtocolVersion: 2,
      Version: VERSION,
    };
  }

  nextId() {
    this.messageId = (this.messageId % 65535) + 1;
    return this.messageId;
  }

  send(bytes) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  /** A quick run of Time requests (a fresh offset), then one a `timeInterval`. */
  burstTime() {
    const start = this.warmupLeft();
    for (let i = 0; i < 10; i++) this.later(() => this.sendTime(), start + i * 40);
    if (!this.timeLoop) {
      this.timeLoop = true;
      const tick = () => {
        if (!this.running) {
          this.timeLoop = false;
          return;
        }
        this.sendTime();
        this.later(tick, this.timeInterval);
      };
      this.later(tick, this.timeInterval);
    }
  }

  sendTime() {
    if (!this.ctx || this.ctx.state !== "running" || this.warmupLeft() > 0) return;
    this.send(serializeTime(this.now(), { id: this.nextId() }));
  }

  /**
   * The client clock: the AudioContext's time of what the speaker plays now
   * (getOutputTimestamp, interpolated with performance.now()), so a chunk
   * scheduled at context time t is heard at t.  Where the browser gives no
   * output timestamp, the context's render time.
   */
  now() {
    const ctx = this.ctx;
    if (this.clockMode === null) {
      const stamp = ctx.getOutputTimestamp ? ctx.getOutputTimestamp() : null;
      this.clockMode = stamp && stamp.performanceTime > 0 && stamp.contextTime > 0 ? "output" : "render";
    }
    if (this.clockMode === "output") {
      const stamp = ctx.getOutputTimestamp();
      return stamp.contextTime + (performance.now() - stamp.performanceTime) / 1000;
    }
    return ctx.currentTime;
  }

  // --- messages -------------------------------------------------------------------

  handle(message) {
    switch (message.type) {
      case MessageType.SERVER_SETTINGS:
        this.onSettings(message.json);
        break;
      case MessageType.CODEC_HEADER:
        this.onCodec(message.codec, message.payload);
        break;
      case MessageType.WIRE_CHUNK:
        this.onChunk(message);
        break;
      case MessageType.TIME: {
        if (!this.ctx || this.ctx.state !== "running") break;
        const { offset, roundTrip } = timeOffset(message, this.now());
        this.clock.add(offset, roundTrip);
        break;
      }
      default:
        break;
    }
  }

  onSettings(settings) {
    Object.assign(this.settings, settings);
    this.applyVolume();
    // The first ServerSettings of a connection: snapserver now lists this client.
    if (!this.joined) this.joinGroup();
  }

  applyVolume() {
    if (!this.gain) return;
    const { volume, muted } = this.settings;
    // snapclient's software mixer: a perceptual curve, silent at 0 or muted.
    const level = muted ? 0 : Math.pow(Math.max(0, Math.min(100, volume)) / 100, 2);
    this.gain.gain.setTargetAtTime(level, this.ctx.currentTime, 0.02);
  }

  async joinGroup() {
    if (!this.join || this.joining) return;
    this.joining = true;
    try {
      await this.join(this.clientId, this.streamId, this.name, this.groupId);
      this.joined = true;
    } catch (err) {
      this.setState(this.state.state, `could not join the stream's group: ${err.message || err}`);
      this.later(() => this.joinGroup(), 2000);
    } finally {
      this.joining = false;
    }
  }

  onCodec(codec, payload) {
    this.codec = codec;
    this.cursor.reset();
    this.stopSources();
    if (codec !== "pcm") {
      this.format = null;
      this.setState(
        "unsupported",
        `This stream is encoded as ${codec}, which this browser player cannot decode: ` +
          "set codec=pcm on the stream in snapserver's configuration " +
          '(for broadcaster\'s own snapserver: codec = "pcm" under [snapserver]).',
      );
      return;
    }
    try {
      this.format = parseWaveHeader(payload);
    } catch (err) {
      this.format = null;
      this.setState("unsupported", `This stream's pcm header is unusable: ${err.message}`);
      return;
    }
    this.setState("waiting", "");
  }

  onChunk(message) {
    this.stats.chunks++;
    if (!this.format || !this.ctx || this.ctx.state !== "running") return;
    if (!this.clock.ready) {
      this.stats.waiting++;
      return;
    }
    const rate = this.format.sampleRate;
    const channels = decodePcm(message.payload, this.format);
    const frames = channels[0].length;
    if (!frames) return;
    const delay = (this.settings.bufferMs - this.settings.latency) / 1000;
    const target = fromTimeval(message.timestamp) + delay - this.clock.offset;
    const plan = this.cursor.place(target, frames, rate, this.ctx.currentTime);
    this.stats.lastError = this.cursor.lastError;
    if (!plan) {
      this.stats.late++;
      return;
    }
    if (plan.resync) this.stats.resyncs++;
    if (plan.adjust) this.stats.corrections++;
    const data = reshape(channels, plan.skip, plan.adjust);
    if (!data[0].length) return;
    const buffer = this.ctx.createBuffer(data.length, data[0].length, rate);
    data.forEach((channel, c) => buffer.copyToChannel(channel, c));
    const source = this.ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(this.gain);
    source.onended = () => this.sources.delete(source);
    source.start(plan.when);
    this.sources.add(source);
    this.stats.played++;
    if (this.state.state !== "playing") this.setState("playing", "");
  }

  stopSources() {
    for (const source of this.sources) {
      try {
        source.stop();
      } catch {
        // never started or already stopped
      }
    }
    this.sources.clear();
  }

  /** The current clock offset in ms and the playout error, for a status line. */
  describe() {
    return {
      state: this.state.state,
      offsetMs: this.clock.ready ? this.clock.offset * 1000 : null,
      errorMs: this.stats.lastError * 1000,
      ...this.stats,
    };
  }
}

/**
 * A `join` for SnapPlayer over snapserver's JSON-RPC WebSocket
 * (ws://HOST:HTTP_PORT/jsonrpc): puts the client in the group `groupId` when
 * it exists, else in a group playing `streamId` (or points its own group at
 * that stream when no group plays it), and names it.
 */
export function jsonRpcJoin(url, { timeout = 5000 } = {}) {
  return async (clientId, streamId, name, groupId = "") => {
    const rpc = await JsonRpc.open(url, timeout);
    try {
      let status = null;
      for (let attempt = 0; attempt < 20; attempt++) {
        status = (await rpc.call("Server.GetStatus")).server;
        if (findClient(status, clientId)) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const own = findClient(status, clientId);
      if (!own) throw new Error(`snapserver does not list client ${clientId}`);
      if (name && own.client.config.name !== name) {
        await rpc.call("Client.SetName", { id: clientId, name });
      }
      const groups = status.groups.map((g) => ({ id: g.id, stream: g.stream_id, rooms: g.clients.map((c) => c.id) }));
      const step = joinStep(groups, clientId, streamId, groupId);
      if (step && step.rooms) await rpc.call("Group.SetClients", { id: step.group, clients: step.rooms });
      else if (step) await rpc.call("Group.SetStream", { id: step.group, stream_id: step.stream });
    } finally {
      rpc.close();
    }
  };
}

/**
 * The one change that puts client `clientId` where it should be:
 * `{group, rooms}` (that group's new members), `{group, stream}` (its own
 * group's new stream) or null (nothing to do).  `groups` are
 * `{id, stream, rooms}`.  The group asked for wins over the stream: several
 * groups may play the same stream (snapserver's default one, typically) and
 * the user tapped one of them.
 */
export function joinStep(groups, clientId, streamId, groupId = "") {
  const own = groups.find((g) => g.rooms.includes(clientId));
  const wanted = groupId ? groups.find((g) => g.id === groupId) : null;
  if (wanted) {
    if (own && own.id === wanted.id) return null;
    return { group: wanted.id, rooms: wanted.rooms.concat(clientId) };
  }
  if (!streamId || (own && own.stream === streamId)) return null;
  const target = groups.find((g) => g.stream === streamId && g !== own);
  if (target) return { group: target.id, rooms: target.rooms.concat(clientId) };
  return own ? { group: own.id, stream: streamId } : null;
}

/**
 * A `join` for SnapPlayer through broadcaster's own HTTP API (docs/api.md), for
 * a page served by `broadcaster serve`: snapserver's ports need not be reachable.
 */
export function apiJoin({ base = "", token = "", timeout = 5000 } = {}) {
  async function api(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeout);
    try {
      const reply = await fetch(base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
      });
      const data = await reply.json().catch(() => ({}));
      if (!reply.ok) throw new Error(data.error || `${method} ${path}: ${reply.status}`);
      return data;
    } finally {
      clearTimeout(timer);
    }
  }
  const path = (kind, id, what) => `/api/${kind}/${encodeURIComponent(id)}/${what}`;
  return async (clientId, streamId, name, groupId = "") => {
    let state = null;
    let room = null;
    for (let attempt = 0; attempt < 20 && !room; attempt++) {
      if (attempt) await new Promise((resolve) => setTimeout(resolve, 250));
      state = await api("GET", "/api/state");
      room = state.rooms.find((r) => r.id === clientId);
    }
    if (!room) throw new Error(`broadcaster does not list room ${clientId}`);
    if (name && room.name !== name) await api("PUT", path("rooms", clientId, "name"), { name });
    const step = joinStep(state.groups, clientId, streamId, groupId);
    if (step && step.rooms) await api("PUT", path("groups", step.group, "rooms"), { rooms: step.rooms });
    else if (step) await api("PUT", path("groups", step.group, "stream"), { stream: step.stream });
  };
}

function findClient(status, clientId) {
  for (const group of status.groups) {
    const client = group.clients.find((c) => c.id === clientId);
    if (client) return { group, client };
  }
  return null;
}

class JsonRpc {
  static open(url, timeout) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const timer = setTimeout(() => {
        ws.close();
        reject(new Error(`no answer from ${url}`));
      }, timeout);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve(new JsonRpc(ws, timeout));
      };
      ws.onerror = () => {
        clearTimeout(timer);
        reject(new Error(`cannot reach ${url}`));
      };
    });
  }

  constructor(ws, timeout) {
    this.ws = ws;
    this.timeout = timeout;
    this.pending = new Map();
    this.nextId = 1;
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      const entry = this.pending.get(message.id);
      if (!entry) return; // a notification
      this.pending.delete(message.id);
      clearTimeout(entry.timer);
      if (message.error) entry.reject(new Error(message.error.message || JSON.stringify(message.error)));
      else entry.resolve(message.result);
    };
    ws.onclose = () => {
      for (const entry of this.pending.values()) {
        clearTimeout(entry.timer);
        entry.reject(new Error("snapserver closed the control connection"));
      }
      this.pending.clear();
    };
  }

  call(method, params = {}) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer within ${this.timeout} ms`));
      }, this.timeout);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ id, jsonrpc: "2.0", method, params }));
    });
  }

  close() {
    this.ws.close();
  }
}
