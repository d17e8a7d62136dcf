// broadcaster's web page: plain JavaScript, no build step.
// State comes from GET /api/state and then the /api/events WebSocket; every
// change is a small JSON request to the API (docs/api.md).
"use strict";

const state = { rooms: [], groups: [], streams: [], captures: [], slots: [], connected: false };
const groupEls = new Map();
const NEW_GROUP = "\u0000new";
const roomEls = new Map();
const $ = (sel, root = document) => root.querySelector(sel);

// --- token -------------------------------------------------------------------
// A token given as #token=... is remembered; a 401 asks for it once.
function token() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    localStorage.setItem("broadcaster-token", fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return localStorage.getItem("broadcaster-token") || "";
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const reply = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await reply.json().catch(() => ({}));
  if (reply.status === 401) {
    const given = prompt("This broadcaster needs its token:");
    if (given) { localStorage.setItem("broadcaster-token", given); return api(method, path, body); }
  }
  if (!reply.ok) { showError(data.error || reply.statusText); throw new Error(data.error); }
  showError("");
  return data;
}

function showError(text) {
  const el = $("#error");
  el.textContent = text;
  el.hidden = !text;
}

// --- live updates --------------------------------------------------------------
let retry = 500;
function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const t = token();
  const ws = new WebSocket(`${scheme}//${location.host}/api/events${t ? "?token=" + encodeURIComponent(t) : ""}`);
  ws.onopen = () => { retry = 500; };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    Object.assign(state, message);
    // A position is as old as the message that carried it (not a later one
    // with only the captures' meters, once a second while one plays).
    if (message.streams) nowReceived = performance.now();
    if (message.type !== "captures") renderServer();
    if (message.type !== "server") renderCaptures();
    renderNow();
    setLink(state.connected ? "up" : "down", state.connected ? "live" : "snapserver offline");
  };
  ws.onclose = () => {
    setLink("down", "reconnecting…");
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  };
}

function setLink(kind, text) {
  const el = $("#link");
  el.dataset.state = kind;
  el.textContent = text;
}

// --- rooms and groups ----------------------------------------------------------
function streamLabel(stream) {
  const capture = state.captures.find((c) => c.id === stream.capture);
  return capture ? `${stream.id} — ${capture.app || "pid " + capture.pid}` : stream.id;
}

function fillSelect(select, options, value) {
  const wanted = options.map(([v, label]) => v + "\u0000" + label).join("\u0001");
  if (select.dataset.options !== wanted) {
    select.replaceChildren(...options.map(([v, label]) => new Option(label, v)));
    select.dataset.options = wanted;
  }
  if (document.activeElement !== select) select.value = value;
}

function groupEl(group) {
  let el = groupEls.get(group.id);
  if (!el) {
    el = $("#group-template").content.firstElementChild.cloneNode(true);
    el.dataset.group = group.id;
    $(".group-stream", el).addEventListener("change", (e) =>
      api("PUT", `/api/groups/${enc(el.dataset.group)}/stream`, { stream: e.target.value }));
    $(".play-here", el).addEventListener("click", () => togglePlayHere(el));
    $(".group-mute", el).addEventListener("click", (e) =>
      api("PUT", `/api/groups/${enc(el.dataset.group)}/mute`, { muted: e.target.getAttribute("aria-pressed") !== "true" }));
    const controls = $(".group-controls", el);
    const slider = $(".group-volume", el);
    slider.addEventListener("input", () =>
      sendVolume(controls, Number(slider.value), `/api/groups/${enc(el.dataset.group)}/volume`));
    trackDrag(controls, slider);
    groupEls.set(group.id, el);
  }
  return el;
}

function roomEl(room) {
  let el = roomEls.get(room.id);
  if (!el) {
    el = $("#room-template").content.firstElementChild.cloneNode(true);
    el.dataset.room = room.id;
    const slider = $(".room-volume", el);
    slider.addEventListener("input", () =>
      sendVolume(el, Number(slider.value), `/api/rooms/${enc(room.id)}/volume`));
    trackDrag(el, slider);
    $(".room-mute", el).addEventListener("click", (e) =>
      api("PUT", `/api/rooms/${enc(room.id)}/mute`, { muted: e.currentTarget.getAttribute("aria-pressed") !== "true" }));
    $(".room-group", el).addEventListener("change", (e) => moveRoom(room.id, e.target.value));
    $(".room-rename", el).addEventListener("change", (e) => {
      const name = e.target.value.trim();
      if (name) api("PUT", `/api/rooms/${enc(room.id)}/name`, { name }).catch(() => {});
    });
    $(".room-latency", el).addEventListener("change", (e) => {
      const ms = Math.round(Number(e.target.value));
      if (Number.isFinite(ms) && ms >= -10000 && ms <= 10000) {
        api("PUT", `/api/rooms/${enc(room.id)}/latency`, { latency_ms: ms }).catch(() => {});
      }
    });
    roomEls.set(room.id, el);
  }
  return el;
}

function trackDrag(holder, slider) {
  slider.addEventListener("pointerdown", () => { holder.dataset.dragging = "1"; });
  slider.addEventListener("pointerup", () => { delete holder.dataset.dragging; });
}

// Whether a slider may show the server's value (not while the user moves it).
function settled(holder) {
  return !holder.dataset.dragging && !holder.dataset.sending && holder.dataset.pending === undefined;
}

// One volume request in flight per slider; the latest value wins.
function sendVolume(holder, percent, path) {
  $("output", holder).textContent = percent;
  holder.dataset.pending = String(percent);
  if (holder.dataset.sending) return;
  const next = () => {
    const value = holder.dataset.pending;
    if (value === undefined) { delete holder.dataset.sending; return; }
    delete holder.dataset.pending;
    holder.dataset.sending = "1";
    api("PUT", path, { percent: Number(value) }).catch(() => {}).finally(next);
  };
  next();
}

// A group's volume as snapweb shows it: the mean of its connected rooms.
function groupVolume(group) {
  const rooms = group.rooms.map((id) => state.rooms.find((r) => r.id === id)).filter(Boolean);
  const counted = rooms.filter((r) => r.connected).length ? rooms.filter((r) => r.connected) : rooms;
  return counted.length ? Math.round(counted.reduce((sum, r) => sum + r.volume, 0) / counted.length) : 0;
}

function setUnlessFocused(input, value) {
  if (document.activeElement !== input) input.value = value;
}

// Into another group: that group's rooms plus this one.  Into a group of its
// own: its current group without it (snapserver gives it a new group).
function moveRoom(roomId, groupId) {
  if (groupId === NEW_GROUP) {
    const current = state.groups.find((g) => g.rooms.includes(roomId));
    if (current && current.rooms.length > 1) {
      api("PUT", `/api/groups/${enc(current.id)}/rooms`, { rooms: current.rooms.filter((r) => r !== roomId) });
    }
    return;
  }
  const group = state.groups.find((g) => g.id === groupId);
  if (!group) return;
  api("PUT", `/api/groups/${enc(groupId)}/rooms`, { rooms: [...group.rooms, roomId] });
}

function renderServer() {
  const box = $("#groups");
  const streamOptions = state.streams.map((s) => [s.id, streamLabel(s)]);
  const seen = new Set();
  const groupOptions = [
    ...state.groups.map((g, i) => [g.id, g.name || `group ${i + 1}`]),
    [NEW_GROUP, "own group"],
  ];
  for (const group of state.groups) {
    const el = groupEl(group);
    seen.add(group.id);
    fillSelect($(".group-stream", el), streamOptions, group.stream);
    const allMuted = group.muted;
    $(".group-mute", el).setAttribute("aria-pressed", String(allMuted));
    $(".group-mute", el).textContent = allMuted ? "Unmute" : "Mute all";
    const controls = $(".group-controls", el);
    if (settled(controls)) {
      $(".group-volume", el).value = groupVolume(group);
      $(".group-value", el).textContent = groupVolume(group);
    }
    const list = $(".rooms", el);
    // Rooms move only when their order changes: a node taken out and put back
    // between a tap's press and release loses that tap (the browser sends the
    // click to the list instead), and state events come at any moment.
    let place = list.firstElementChild;
    for (const roomId of group.rooms) {
      const room = state.rooms.find((r) => r.id === roomId);
      if (!room) continue;
      const rel = roomEl(room);
      rel.dataset.connected = String(room.connected);
      $(".room-name", rel).textContent = room.name;
      fillSelect($(".room-group", rel), groupOptions, group.id);
      const mute = $(".room-mute", rel);
      mute.setAttribute("aria-pressed", String(room.muted));
      mute.textContent = room.muted ? "Muted" : "Mute";
      if (settled(rel)) {
        $(".room-volume", rel).value = room.volume;
        $(".room-value", rel).textContent = room.volume;
      }
      setUnlessFocused($(".room-rename", rel), room.name);
      setUnlessFocused($(".room-latency", rel), room.latency);
      if (rel === place) place = rel.nextElementSibling;
      else list.insertBefore(rel, place);
    }
    if (el.parentElement !== box) box.appendChild(el);
  }
  for (const [id, el] of groupEls) if (!seen.has(id)) { el.remove(); groupEls.delete(id); }
  renderPlayHere();
  const known = new Set(state.rooms.map((r) => r.id));
  for (const [id, el] of roomEls) if (!known.has(id)) { el.remove(); roomEls.delete(id); }
  const empty = $(".empty", box);
  if (empty) empty.hidden = state.groups.length > 0;
  fillSelect($("#capture-stream"), [["", "any free stream"], ...state.slots.map((s) => [s, s])], $("#capture-stream").value);
  const partyStream = $("#party-stream");
  fillSelect(partyStream, streamOptions, partyStream.value || (state.streams.find((s) => s.capture) || state.streams[0] || {}).id || "");
  $("#party-form").hidden = state.rooms.length < 2;
}

// Party: every room into one group, on the chosen stream.
$("#party-form").addEventListener("submit", (event) => {
  event.preventDefault();
  api("POST", "/api/party", { stream: $("#party-stream").value }).catch(() => {});
});

// --- scenes: the current setup saved under a name, restored with a tap -------------
async function loadScenes() {
  const scenes = await api("GET", "/api/scenes").catch(() => null);
  if (!scenes) return;
  $("#scenes").replaceChildren(...scenes.map((scene) => {
    const li = document.createElement("li");
    li.className = "scene";
    li.dataset.scene = scene.name;
    li.innerHTML = `<span class="scene-name"></span> <span class="meta"></span>
      <button class="scene-restore" type="button">Restore</button>
      <button class="scene-delete" type="button" aria-label="Delete scene">✕</button>`;
    $(".scene-name", li).textContent = scene.name;
    $(".meta", li).textContent = `${scene.rooms} room${scene.rooms === 1 ? "" : "s"}`;
    $(".scene-restore", li).addEventListener("click", () =>
      api("PUT", `/api/scenes/${enc(scene.name)}/restore`).then((reply) => {
        const gone = [];
        if (reply.missing_rooms && reply.missing_rooms.length) {
          gone.push(`rooms no longer known: ${reply.missing_rooms.join(", ")}`);
        }
        if (reply.missing_streams && reply.missing_streams.length) {
          gone.push(`streams no longer known: ${reply.missing_streams.join(", ")}`);
        }
        if (gone.length) showError(`Restored; ${gone.join("; ")}`);
      }).catch(() => {}));
    $(".scene-delete", li).addEventListener("click", () => {
      if (confirm(`Delete scene "${scene.name}"?`)) {
        api("DELETE", `/api/scenes/${enc(scene.name)}`).then(loadScenes).catch(() => {});
      }
    });
    return li;
  }));
}

$("#scene-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("#scene-name").value.trim();
  if (!name) return;
  api("POST", "/api/scenes", { name }).then(() => { $("#scene-name").value = ""; loadScenes(); }).catch(() => {});
});

// --- announcements: said in every room over the music, which is ducked meanwhile ---
$("#announce-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("#announce-text").value.trim();
  if (!text) return;
  const button = $("#announce-form button");
  button.disabled = true;
  api("POST", "/api/announce", { text })
    .then(() => { $("#announce-text").value = ""; })
    .catch(() => {})
    .finally(() => { button.disabled = false; });
});

// --- play here (the browser room, static/player/) ---------------------------------
// This browser becomes a room playing the group's stream.  The player module
// and the /stream proxy are optional: without them the buttons stay hidden.
let playerModule = null;
let player = null;
let playingGroup = null;
import("/static/player/player.js").then((module) => {
  playerModule = module;
  renderPlayHere();
}).catch(() => {});

function togglePlayHere(groupElement) {
  const group = state.groups.find((g) => g.id === groupElement.dataset.group);
  if (player) {
    const was = myGroup();
    stopPlayer();
    if (!group || was === group.id) return;
  }
  if (group) startPlayer(group.stream, group.id);
}

// No room yet: this browser can be the first, on the stream a capture feeds.
function togglePlayFirst() {
  if (player) { stopPlayer(); return; }
  const stream = state.streams.find((s) => s.capture && s.status === "playing")
    || state.streams.find((s) => s.status === "playing")
    || state.streams.find((s) => s.capture) || state.streams[0];
  if (stream) startPlayer(stream.id, "");
}
$("#play-first").addEventListener("click", togglePlayFirst);

function startPlayer(streamId, groupId) {
  if (!playerModule) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const t = token();
  player = new playerModule.SnapPlayer({
    url: `${scheme}//${location.host}/stream${t ? "?token=" + encodeURIComponent(t) : ""}`,
    streamId,
    groupId, // the tapped group, even if another group plays the same stream
    name: localStorage.getItem("snapplayer-name") || "This browser",
    onState: (s) => { if (s.message) showError(s.message); },
    join: playerModule.apiJoin({ token: t }),
  });
  window.player = player;
  playingGroup = groupId || null;
  player.start(); // inside the tap: the AudioContext may start
  startSilence(); // inside the tap too: media elements need it as much
  renderPlayHere();
  updateMediaSession();
}

function stopPlayer() {
  player.stop();
  player = null;
  window.player = null;
  playingGroup = null;
  stopSilence();
  renderPlayHere();
  updateMediaSession();
}

// The group this browser's room is in now (joining moves it).
function myGroup() {
  if (!player) return null;
  const group = state.groups.find((g) => g.rooms.includes(player.clientId));
  return group ? group.id : playingGroup;
}

function renderPlayHere() {
  const mine = myGroup();
  for (const [id, el] of groupEls) {
    const button = $(".play-here", el);
    button.hidden = !playerModule;
    button.textContent = mine === id ? "Stop playing here" : "Play here";
    button.setAttribute("aria-pressed", String(mine === id));
  }
  const first = $("#play-first");
  first.hidden = !playerModule || !state.streams.length;
  first.textContent = player ? "Stop playing here" : "Play here";
  first.setAttribute("aria-pressed", String(!!player));
}

// --- captures ------------------------------------------------------------------
function meterWidth(db) {
  if (db === null || db === undefined) return 0;
  return Math.max(0, Math.min(100, (db + 60) * (100 / 60)));
}

function renderCaptures() {
  const box = $("#captures");
  const items = state.captures.map((c) => {
    const el = document.createElement("div");
    el.className = "capture";
    el.dataset.capture = c.id;
    const who = c.app || `pid ${c.pid}`;
    el.innerHTML = `<div><strong></strong> <span class="state"></span>
      <div class="meta"></div></div><button type="button">Stop</button>
      <div class="meter"><div></div></div>`;
    $("strong", el).textContent = who;
    $(".state", el).textContent = c.state;
    $(".state", el).dataset.state = c.state;
    $(".meta", el).textContent = c.error || `→ ${c.stream}`;
    $(".meter > div", el).style.width = meterWidth(c.level && c.level.rms_db) + "%";
    $("button", el).addEventListener("click", () => api("DELETE", `/api/captures/${enc(c.id)}`));
    return el;
  });
  box.replaceChildren(...items);
  fillSelect($("#capture-stream"), [["", "any free stream"], ...state.slots.map((s) => [s, s])], $("#capture-stream").value);
  renderServer();
}

$("#capture-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const app = $("#capture-app").value.trim();
  const stream = $("#capture-stream").value;
  const body = /^\d+$/.test(app) ? { pid: Number(app) } : { app };
  if (stream) body.stream = stream;
  api("POST", "/api/captures", body).then(() => { $("#capture-app").value = ""; }).catch(() => {});
});

// --- now playing and transport ------------------------------------------------
// One card per stream with a player (or playing): cover, title, position and
// buttons that follow what the player allows (player.can, docs/api.md).
const nowEls = new Map();
let nowReceived = performance.now();

function nowEl(stream) {
  let el = nowEls.get(stream.id);
  if (!el) {
    el = $("#now-template").content.firstElementChild.cloneNode(true);
    el.dataset.stream = stream.id;
    const send = (command, extra = {}) =>
      api("POST", `/api/streams/${enc(el.dataset.stream)}/control`, { command, ...extra }).catch(() => {});
    $(".now-toggle", el).addEventListener("click", () => send("toggle"));
    $(".now-next", el).addEventListener("click", () => send("next"));
    $(".now-previous", el).addEventListener("click", () => send("previous"));
    $(".now-seek", el).addEventListener("change", (e) => send("position", { seconds: Number(e.target.value) }));
    $(".now-art", el).addEventListener("error", (e) => { e.target.hidden = true; });
    nowEls.set(stream.id, el);
  }
  return el;
}

// An image of the API (a cover) is loaded by the browser: no header, so ?token=.
function withToken(url) {
  const t = token();
  return t ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(t)}` : url;
}

function clock(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// A playing track's position, moved on since the state arrived.
function positionNow(player) {
  if (player.position === null || player.position === undefined) return null;
  let position = player.position;
  if (player.status === "playing") position += (performance.now() - nowReceived) / 1000;
  return player.duration ? Math.min(position, player.duration) : position;
}

function renderNow() {
  const box = $("#now");
  const shown = state.streams.filter((s) => s.status === "playing"
    || (s.player && (s.player.can.play || s.player.can.pause || s.player.title)));
  const seen = new Set();
  for (const s of shown) {
    const el = nowEl(s);
    seen.add(s.id);
    const p = s.player || { status: "stopped", can: {}, artist: [] };
    const capture = state.captures.find((c) => c.id === s.capture);
    el.dataset.status = p.status;
    $(".now-stream", el).textContent = s.id;
    $(".title", el).textContent = p.title || s.title || (capture ? capture.app || `pid ${capture.pid}` : s.id);
    $(".now-artist", el).textContent = [p.artist.join(", ") || s.artist, p.album].filter(Boolean).join(" — ");
    const art = $(".now-art", el);
    const src = p.art && p.art.startsWith("/api/") ? withToken(p.art) : p.art;
    if (src) {
      if (art.getAttribute("src") !== src) { art.hidden = false; art.src = src; }
    } else {
      art.hidden = true;
      art.removeAttribute("src");
    }
    const toggle = $(".now-toggle", el);
    const playing = p.status === "playing";
    toggle.setAttribute("aria-label", playing ? "Pause" : "Play");
    toggle.disabled = !p.can.toggle;
    $(".now-next", el).disabled = !p.can.next;
    $(".now-previous", el).disabled = !p.can.previous;
    // A stream without a player (no controlscript, or an app without MPRIS): no buttons.
    $(".now-buttons", el).hidden = !Object.values(p.can).some(Boolean);
    $(".now-time", el).hidden = !p.duration;
    const seek = $(".now-seek", el);
    seek.disabled = !p.can.position;
    if (p.duration) seek.max = String(Math.round(p.duration));
    $(".now-dur", el).textContent = clock(p.duration);
    el.player = p;
    tickNow(el);
    if (el.parentElement !== box) box.appendChild(el);
  }
  for (const [id, el] of nowEls) if (!seen.has(id)) { el.remove(); nowEls.delete(id); }
  updateMediaSession();
}

function tickNow(el) {
  const position = positionNow(el.player);
  $(".now-pos", el).textContent = clock(position);
  const seek = $(".now-seek", el);
  if (position !== null && document.activeElement !== seek) seek.value = String(Math.round(position));
}
setInterval(() => { for (const el of nowEls.values()) if (el.player.status === "playing") tickNow(el); }, 1000);

// --- the browser room on a phone: lock screen and headset buttons --------------
// While this browser plays, the Media Session shows what its group's stream
// plays (title, artist, cover) and its play/pause/next/previous actions drive
// that stream's player, like the buttons above.  Browsers give lock-screen
// controls only to a page that plays a media element (Web Audio alone gets
// none, docs/browser-room.md): a silent, looping <audio> is that element.
let silence = null;
let sessionKey = "";

function silentWav(seconds = 10, rate = 3000) {
  const bytes = new Uint8Array(44 + seconds * rate);
  const view = new DataView(bytes.buffer);
  const text = (at, value) => [...value].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, bytes.length - 8, true); text(8, "WAVEfmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate, true);
  view.setUint16(32, 1, true); view.setUint16(34, 8, true);
  text(36, "data"); view.setUint32(40, seconds * rate, true);
  bytes.fill(128, 44); // 8-bit pcm: 128 is silence
  return URL.createObjectURL(new Blob([bytes], { type: "audio/wav" }));
}

function startSilence() {
  if (!("mediaSession" in navigator)) return;
  if (!silence) {
    silence = new Audio(silentWav());
    silence.loop = true;
  }
  silence.play().catch(() => {});
}

function stopSilence() {
  if (silence) silence.pause();
}

function playingStream() {
  if (!player) return null;
  const group = state.groups.find((g) => g.id === myGroup());
  const id = group ? group.stream : player.streamId;
  return state.streams.find((s) => s.id === id) || null;
}

function updateMediaSession() {
  const session = navigator.mediaSession;
  if (!session || typeof MediaMetadata === "undefined") return;
  const stream = playingStream();
  const p = stream && stream.player;
  const key = p ? JSON.stringify([stream.id, p.title, p.artist, p.album, p.art, p.status, p.can]) : "";
  if (key === sessionKey) return;
  sessionKey = key;
  if (!p) {
    session.metadata = null;
    session.playbackState = "none";
    return;
  }
  const art = p.art ? new URL(p.art.startsWith("/api/") ? withToken(p.art) : p.art, location.href).href : "";
  session.metadata = new MediaMetadata({
    title: p.title || stream.title || stream.id,
    artist: p.artist.join(", ") || stream.artist,
    album: p.album,
    artwork: art ? [{ src: art }] : [],
  });
  session.playbackState = p.status === "playing" ? "playing" : "paused";
  const send = (command) => () =>
    api("POST", `/api/streams/${enc(stream.id)}/control`, { command }).catch(() => {});
  for (const [action, command] of [["play", "play"], ["pause", "pause"],
    ["nexttrack", "next"], ["previoustrack", "previous"]]) {
    try {
      session.setActionHandler(action, p.can[command] ? send(command) : null);
    } catch {
      // an action this browser does not know
    }
  }
}

function enc(text) { return encodeURIComponent(text); }

connect();
loadScenes();
