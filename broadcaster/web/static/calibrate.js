// "Calibrate rooms": this browser's microphone listens while broadcaster plays a
// chirp in one room at a time, then shows each room's delay (docs/calibration.md).
// The recording goes to the service, which finds the chirps in it: the chirps'
// positions in the stream are the clock, so neither this device's clock nor its
// microphone's own delay matters.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);

function token() {
  return localStorage.getItem("broadcaster-token") || "";
}

function headers(type) {
  const h = { "Content-Type": type };
  const t = token();
  if (t) h.Authorization = "Bearer " + t;
  return h;
}

async function call(method, path, body) {
  const reply = await fetch(path, {
    method,
    headers: headers("application/json"),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error(data.error || reply.statusText);
  return data;
}

// --- recording -------------------------------------------------------------------

class MicRecorder {
  async start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("this page cannot use the microphone here: browsers allow it only on " +
        "https:// or http://localhost (see docs/calibration.md)");
    }
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    });
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule("/static/calibrate-worklet.js");
    this.node = new AudioWorkletNode(this.context, "calibration-recorder", { numberOfOutputs: 0 });
    this.chunks = [];
    this.done = new Promise((resolve) => {
      this.node.port.onmessage = (event) => {
        const { samples, frame, last } = event.data;
        this.chunks.push({ samples, wall: this.wallTime(frame) });
        if (last) resolve();
      };
    });
    this.source = this.context.createMediaStreamSource(this.stream);
    this.source.connect(this.node);
    if (this.context.state !== "running") await this.context.resume();
    this.rate = this.context.sampleRate;
  }

  // When (performance.now(), ms) the context frame was rendered: under load a
  // browser's audio clock can stall and lose input, so each batch is placed
  // by this steady clock, not by counting samples.
  wallTime(frame) {
    const ctx = this.context;
    const stamp = ctx.getOutputTimestamp ? ctx.getOutputTimestamp() : null;
    if (stamp && stamp.performanceTime > 0 && stamp.contextTime > 0) {
      this.clock = "output";
      return stamp.performanceTime + (frame / this.rate - stamp.contextTime) * 1000;
    }
    this.clock = "render";
    return performance.now() + (frame / this.rate - ctx.currentTime) * 1000;
  }

  async stop() {
    this.node.port.postMessage("flush");
    await this.done;
    this.source.disconnect();
    for (const track of this.stream.getTracks()) track.stop();
    await this.context.close();
    return timeline(this.chunks, this.rate);
  }
}

// The batches laid end to end, except where the steady clock says a lot of
// time was lost.  Each batch's lag (where the clock puts it minus where
// counting samples puts it) is a step at every loss plus the clock's own
// error; Chromium's output timestamp was seen to ramp up and fall back by
// 10-25 ms every second or so, while the samples themselves were continuous.
// So only the lag's floor (its minimum over the next second) counts, and only
// a rise of more than LOSS_MS is filled with silence.  Time is only ever
// added: a capture loses samples, it does not invent them.
const LOSS_MS = 15;
const WINDOW = 12; // batches (about a second)

export function timeline(chunks, rate) {
  const first = chunks.length ? chunks[0].wall : 0;
  const counted = [];
  let total = 0;
  for (const { samples } of chunks) {
    counted.push(total);
    total += samples.length;
  }
  const lag = chunks.map(({ wall }, k) => ((wall - first) * rate) / 1000 - counted[k]);
  const placed = [];
  let filled = 0;
  const stats = { gaps: 0, gapMs: 0 };
  chunks.forEach(({ samples }, k) => {
    // From here on: a loss raises the lag of every later batch, not of earlier ones.
    // (The last second is judged as a whole.)
    const from = Math.min(k, Math.max(0, lag.length - WINDOW));
    const floor = Math.min(...lag.slice(from, from + WINDOW));
    const step = Math.round(floor) - filled;
    if (step > (LOSS_MS * rate) / 1000) {
      stats.gaps += 1;
      stats.gapMs += (step * 1000) / rate;
      filled += step;
    }
    placed.push([counted[k] + filled, samples]);
  });
  const pcm = new Int16Array(total + filled);
  for (const [at, samples] of placed) {
    for (let i = 0; i < samples.length; i++) {
      pcm[at + i] = Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32767)));
    }
  }
  return { pcm, ...stats };
}

// --- progress ----------------------------------------------------------------------

// The live-updates socket, keeping the latest calibration progress.
class Progress {
  constructor(onProgress) {
    this.latest = null;
    this.waiters = [];
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const t = token();
    this.ws = new WebSocket(`${scheme}//${location.host}/api/events${t ? "?token=" + encodeURIComponent(t) : ""}`);
    this.open = new Promise((resolve, reject) => { this.ws.onopen = resolve; this.ws.onerror = reject; });
    this.ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== "calibration") return;
      this.latest = message.calibration;
      onProgress(this.latest);
      this.check();
    };
    this.ws.onclose = () => {
      for (const w of this.waiters) w.reject(new Error("lost the connection to broadcaster"));
      this.waiters = [];
    };
  }

  check() {
    this.waiters = this.waiters.filter((w) => {
      const p = this.latest;
      if (p && p.id === w.id && w.states.includes(p.state)) { w.resolve(p); return false; }
      return true;
    });
  }

  until(id, states, seen) {
    if (seen && (!this.latest || this.latest.id < seen.id)) this.latest = seen;
    return new Promise((resolve, reject) => {
      this.waiters.push({ id, states, resolve, reject });
      this.check();
    });
  }

  close() { this.ws.close(); }
}

// --- the section on the page ----------------------------------------------------------

const view = {
  status(text) { $("#calibrate-status").textContent = text; },
  results(progress) {
    const table = $("#calibrate-results");
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const room of progress.results) {
      const row = document.createElement("tr");
      row.dataset.room = room.room_id;
      row.dataset.heard = String(room.heard);
      const cells = room.delay_ms !== null
        ? [room.name, `${room.delay_ms.toFixed(1)} ms`, `±${room.spread_ms.toFixed(1)} ms`,
          `${Math.round(room.confidence * 100)} %`]
        : [room.name, room.note || "not heard", "", ""];
      for (const text of cells) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      body.append(row);
    }
    table.hidden = progress.results.length === 0;
    const heard = progress.results.some((r) => r.delay_ms !== null);
    $("#calibrate-apply").hidden = !(progress.state === "done" && heard);
    $("#calibrate-undo").hidden = progress.state !== "applied";
  },
};

function describe(progress) {
  switch (progress.state) {
    case "playing": return progress.room ? `Listening to ${progress.room} (${progress.index} of ${progress.rooms})…` : "Starting…";
    case "waiting": return "Sending the recording…";
    case "analyzing": return "Finding the chirps…";
    case "done": return "Done: every room will play with the slowest once you apply.";
    case "applied": return "Applied: the rooms play together. Undo restores the old latencies.";
    case "failed": return `Calibration failed: ${progress.error}`;
    default: return "";
  }
}

let busy = false;

// Under load a snapclient resyncs now and then, and a room that moved while it
// was measured gets no number; the first room (the reference) was also seen
// not heard at all while later ones were.  The page then measures again by
// itself (a user would press the button again anyway), up to three runs in
// all.  The last run is what Apply sets.  A room not heard is no reason.
const ATTEMPTS = 3;

export function measureAgain(progress) {
  const results = progress.results;
  if (progress.state !== "done" || !results.length) return false;
  if (results.some((r) => r.heard && r.delay_ms === null)) return true;
  return !results[0].heard && results.slice(1).some((r) => r.heard);
}

async function measure(mic, live) {
  // A moment of the room's quiet before the first chirp.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const started = await call("POST", "/api/calibration", {});
  let progress = await live.until(started.id, ["waiting", "failed"], started);
  const { pcm, gaps, gapMs } = await mic.stop();
  if (progress.state === "waiting") {
    const finished = live.until(started.id, ["done", "failed"]);
    const query = `rate=${mic.rate}&gaps=${gaps}&gap_ms=${Math.round(gapMs)}&clock=${mic.clock}`;
    const reply = await fetch(`/api/calibration/recording?${query}`, {
      method: "POST", headers: headers("application/octet-stream"), body: pcm.buffer,
    });
    if (!reply.ok) throw new Error((await reply.json().catch(() => ({}))).error || reply.statusText);
    progress = await finished;
  }
  return progress;
}

async function calibrate() {
  if (busy) return;
  busy = true;
  $("#calibrate-start").disabled = true;
  let mic = new MicRecorder();
  let live = null;
  try {
    view.status("Asking for the microphone…");
    await mic.start();
    live = new Progress((progress) => { view.status(describe(progress)); });
    await live.open;
    let progress = await measure(mic, live);
    for (let attempt = 1; attempt < ATTEMPTS && measureAgain(progress); attempt++) {
      view.status("A room moved while it was measured, or the first was not heard: measuring again…");
      mic = new MicRecorder();
      await mic.start();
      progress = await measure(mic, live);
    }
    view.status(describe(progress));
    view.results(progress);
  } catch (err) {
    view.status(`Calibration failed: ${err.message || err}`);
    if (mic.context && mic.context.state !== "closed") await mic.stop().catch(() => {});
  } finally {
    if (live) live.close();
    busy = false;
    $("#calibrate-start").disabled = false;
  }
}

async function applyOrUndo(what) {
  try {
    const progress = await call("POST", `/api/calibration/${what}`, {});
    view.status(describe(progress));
    view.results(progress);
  } catch (err) {
    view.status(`${what === "apply" ? "Apply" : "Undo"} failed: ${err.message}`);
  }
}

function init() {
  $("#calibrate-start").addEventListener("click", calibrate);
  $("#calibrate-apply").addEventListener("click", () => applyOrUndo("apply"));
  $("#calibrate-undo").addEventListener("click", () => applyOrUndo("undo"));
  $("#calibrate").dataset.ready = "yes";
  call("GET", "/api/calibration").then((progress) => {
    if (["done", "applied"].includes(progress.state)) {
      view.status(describe(progress));
      view.results(progress);
    }
  }).catch(() => {});
}

if (typeof document !== "undefined") init();
