import { test } from "node:test";
import assert from "node:assert/strict";

import { measureAgain, timeline } from "../../broadcaster/web/static/calibrate.js";

const RATE = 48000;
const BATCH = 4096;

// Batches of a ramp (sample i has value i), each stamped by a clock that adds
// `jitter(k)` ms to the true time; `lost` batches are never delivered.
function batches(count, { jitter = () => 0, lost = new Set() } = {}) {
  const out = [];
  for (let k = 0; k < count; k++) {
    if (lost.has(k)) continue;
    const samples = new Float32Array(BATCH).fill((k + 1) / 1000);
    out.push({ samples, wall: 1000 + ((k * BATCH) / RATE) * 1000 + jitter(k) });
  }
  return out;
}

test("continuous batches are laid end to end", () => {
  const { pcm, gaps } = timeline(batches(20), RATE);
  assert.equal(pcm.length, 20 * BATCH);
  assert.equal(gaps, 0);
});

test("a clock that ramps and falls back by 20 ms adds nothing", () => {
  // Seen in headless Chromium: the output timestamp runs ahead and snaps back.
  const sawtooth = (k) => (k % 12) * 2;
  const { pcm, gaps } = timeline(batches(60, { jitter: sawtooth }), RATE);
  assert.equal(gaps, 0);
  assert.equal(pcm.length, 60 * BATCH);
});

test("lost batches are filled with silence, so later samples keep their time", () => {
  const { pcm, gaps, gapMs } = timeline(batches(40, { lost: new Set([20, 21]) }), RATE);
  assert.equal(gaps, 1);
  assert.ok(Math.abs(gapMs - (2 * BATCH * 1000) / RATE) < 1, gapMs);
  assert.equal(pcm.length, 40 * BATCH);
  // Batch 30 sits where it was recorded.
  assert.equal(pcm[30 * BATCH], Math.round((31 / 1000) * 32767));
  assert.equal(pcm[20 * BATCH + 5], 0);
});

test("a room heard but moved, or the first not heard, is measured again; a room not heard is not", () => {
  const room = (heard, delay) => ({ heard, delay_ms: delay });
  const done = (...results) => ({ state: "done", results });
  assert.equal(measureAgain(done(room(true, 0), room(true, null))), true);
  assert.equal(measureAgain(done(room(true, 0), room(false, null))), false);
  assert.equal(measureAgain(done(room(false, null), room(true, 0))), true);
  assert.equal(measureAgain(done(room(false, null), room(false, null))), false);
  assert.equal(measureAgain({ state: "failed", results: [] }), false);
});
