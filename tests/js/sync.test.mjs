// An hour of playout, simulated: the clock filter and the scheduler together
// keep a drifting client clock in step with the server's.
import { test } from "node:test";
import assert from "node:assert/strict";

import { ClockFilter } from "../../broadcaster/web/static/player/clock.js";
import { PlayoutCursor } from "../../broadcaster/web/static/player/scheduler.js";
import { fromTimeval, timeOffset, toTimeval } from "../../broadcaster/web/static/player/protocol.js";

// A small deterministic generator (tests must not depend on luck).
function random(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function simulate({ drift, seconds, seed }) {
  const rand = random(seed);
  const clientOf = (server) => 5 + server * (1 - drift); // the client's clock runs slower
  const filter = new ClockFilter();
  const cursor = new PlayoutCursor();
  const rate = 48000;
  const frames = 960;
  const buffer = 1.0;
  let worst = 0;
  let nextTime = 0;
  let resyncs = 0;
  for (let chunk = 0; chunk < (seconds * rate) / frames; chunk++) {
    const ts = 1000 + (chunk * frames) / rate; // server time the chunk was captured
    while (nextTime <= ts) {
      // One Time round trip: 0.3-3 ms each way, one in ten 30-80 ms one way (Wi-Fi).
      const up = 0.0003 + rand() * 0.0027 + (rand() < 0.1 ? 0.03 + rand() * 0.05 : 0);
      const down = 0.0003 + rand() * 0.0027 + (rand() < 0.1 ? 0.03 + rand() * 0.05 : 0);
      const clientSent = clientOf(nextTime);
      const serverRx = nextTime + up;
      const serverTx = serverRx + 0.0001;
      const reply = { latency: toTimeval(serverRx - clientSent), sent: toTimeval(serverTx) };
      const { offset, roundTrip } = timeOffset(reply, clientOf(serverTx + down));
      filter.add(offset, roundTrip);
      nextTime += 1;
    }
    if (!filter.ready) continue;
    const arrival = clientOf(ts + 0.005);
    const target = ts + buffer - filter.offset;
    const plan = cursor.place(target, frames, rate, arrival);
    if (plan.resync) resyncs++;
    const ideal = clientOf(ts + buffer); // when the server means it to be heard
    if (chunk > 60 * 50) worst = Math.max(worst, Math.abs(plan.when - ideal));
  }
  return { worst, resyncs };
}

// The median of the last 50 offsets (one a second) lags a drifting clock by
// about 25 s of drift: 1.25 ms at 50 ppm, on top of the 0.5 ms deadband.
test("an hour with a client clock 50 ppm slow: within 3 ms, one resync", () => {
  const { worst, resyncs } = simulate({ drift: 50e-6, seconds: 3600, seed: 7 });
  assert.equal(resyncs, 1);
  assert.ok(worst < 0.003, `worst error ${(worst * 1000).toFixed(2)} ms`);
});

test("an hour with a client clock 20 ppm fast: within 1.5 ms, one resync", () => {
  const { worst, resyncs } = simulate({ drift: -20e-6, seconds: 3600, seed: 3 });
  assert.equal(resyncs, 1);
  assert.ok(worst < 0.0015, `worst error ${(worst * 1000).toFixed(2)} ms`);
});

test("an hour with equal clocks and a noisy network: within 1 ms", () => {
  const { worst, resyncs } = simulate({ drift: 0, seconds: 3600, seed: 11 });
  assert.equal(resyncs, 1);
  assert.ok(worst < 0.001, `worst error ${(worst * 1000).toFixed(2)} ms`);
});

test("fromTimeval/toTimeval keep microseconds at server uptimes of years", () => {
  const t = 94608000.123456; // three years
  assert.ok(Math.abs(fromTimeval(toTimeval(t)) - t) < 1e-6);
});
