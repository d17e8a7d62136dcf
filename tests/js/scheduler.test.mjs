import { test } from "node:test";
import assert from "node:assert/strict";

import { PlayoutCursor, reshape } from "../../broadcaster/web/static/player/scheduler.js";

const RATE = 48000;
const FRAMES = 960; // 20 ms

test("the first chunk starts at its target; the next ones follow end to end", () => {
  const cursor = new PlayoutCursor();
  const first = cursor.place(10.0, FRAMES, RATE, 9.0);
  assert.deepEqual(first, { when: 10.0, skip: 0, adjust: 0, resync: true });
  const second = cursor.place(10.02, FRAMES, RATE, 9.0);
  assert.equal(second.resync, false);
  assert.equal(second.adjust, 0);
  assert.ok(Math.abs(second.when - 10.02) < 1e-12);
});

test("a late cursor drops a few frames per chunk until it is back on time", () => {
  const cursor = new PlayoutCursor({ maxCorrection: 4 });
  cursor.place(10.0, FRAMES, RATE, 9.0);
  // The clock offset moved: targets are now 2 ms earlier than the cursor.
  let target = 10.02 - 0.002;
  let dropped = 0;
  for (let i = 0; i < 60; i++) {
    const plan = cursor.place(target, FRAMES, RATE, 9.0);
    assert.equal(plan.resync, false);
    assert.ok(plan.adjust <= 0 && plan.adjust >= -4);
    dropped -= plan.adjust;
    target += FRAMES / RATE;
  }
  // 2 ms at 48 kHz is 96 frames; the last half millisecond is within the deadband.
  assert.ok(dropped >= 72 && dropped <= 96, `dropped ${dropped}`);
  assert.ok(Math.abs(cursor.cursor - target) <= cursor.deadband);
});

test("an early cursor duplicates frames", () => {
  const cursor = new PlayoutCursor();
  cursor.place(10.0, FRAMES, RATE, 9.0);
  const plan = cursor.place(10.021, FRAMES, RATE, 9.0);
  assert.equal(plan.adjust, 4);
});

test("a gap (a muted client gets no chunks) resyncs to the target", () => {
  const cursor = new PlayoutCursor();
  cursor.place(10.0, FRAMES, RATE, 9.0);
  const plan = cursor.place(15.0, FRAMES, RATE, 14.0);
  assert.deepEqual(plan, { when: 15.0, skip: 0, adjust: 0, resync: true });
});

test("a chunk partly too late is played from the first frame still in time", () => {
  const cursor = new PlayoutCursor({ lead: 0.02 });
  const plan = cursor.place(10.0, FRAMES, RATE, 9.99); // earliest is 10.01
  assert.equal(plan.skip, 480);
  assert.ok(Math.abs(plan.when - 10.01) < 1e-12);
  assert.equal(cursor.place(9.0, FRAMES, RATE, 9.99), null, "wholly too late");
});

test("a stream rate other than the context's: positions follow the stream rate", () => {
  const cursor = new PlayoutCursor();
  cursor.place(1.0, 882, 44100, 0.5);
  const plan = cursor.place(1.02, 882, 44100, 0.5);
  assert.equal(plan.adjust, 0);
  assert.ok(Math.abs(plan.when - 1.02) < 1e-12);
});

test("reshape drops, duplicates and skips frames in every channel alike", () => {
  const left = Float32Array.from({ length: 10 }, (_, i) => i);
  const right = Float32Array.from({ length: 10 }, (_, i) => -i);
  const shorter = reshape([left, right], 0, -2);
  assert.equal(shorter[0].length, 8);
  assert.deepEqual(Array.from(shorter[1], (v) => -v), Array.from(shorter[0]));
  const longer = reshape([left], 0, 3);
  assert.equal(longer[0].length, 13);
  assert.deepEqual(Array.from(new Set(longer[0])), Array.from(left));
  const skipped = reshape([left], 4, 0);
  assert.deepEqual(Array.from(skipped[0]), [4, 5, 6, 7, 8, 9]);
  assert.equal(reshape([left], 0, 0)[0], left);
});
