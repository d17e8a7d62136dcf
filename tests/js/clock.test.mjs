import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { ClockFilter, median } from "../../broadcaster/web/static/player/clock.js";
import { parseMessage, timeOffset, fromTimeval } from "../../broadcaster/web/static/player/protocol.js";

test("median sorts numbers as numbers, not as strings", () => {
  // As strings "10" < "9": a string sort would answer 10 here.
  assert.equal(median([9, 10, 100]), 10);
  assert.equal(median([100, 9, 10, 8, 7]), 9);
  assert.equal(median([2, 10, 9, 1]), 5.5);
  assert.equal(median([-0.5, -0.25, 0.125]), -0.25);
  assert.equal(median([]), undefined);
});

test("the filter answers the median offset and ignores outliers", () => {
  const filter = new ClockFilter({ size: 9 });
  for (const o of [100.002, 100.001, 100.003, 100.002, 100.2, 99.7, 100.002]) filter.add(o, 0.004);
  assert.ok(Math.abs(filter.offset - 100.002) < 1e-9);
});

test("slow round trips are left out of the median", () => {
  const filter = new ClockFilter();
  for (let i = 0; i < 5; i++) filter.add(50.0, 0.002);
  for (let i = 0; i < 6; i++) filter.add(50.05, 0.1); // half their 100 ms delay on one side
  assert.equal(filter.offset, 50.0);
  assert.equal(filter.add(50.5, 2), false, "a round trip beyond maxRoundTrip is refused");
  assert.equal(filter.add(Number.NaN, 0.001), false);
});

test("the window slides: an offset that moved wins once most samples moved", () => {
  const filter = new ClockFilter({ size: 5 });
  for (let i = 0; i < 5; i++) filter.add(1.0, 0.001);
  assert.equal(filter.ready, true);
  for (let i = 0; i < 3; i++) filter.add(2.0, 0.001);
  assert.equal(filter.offset, 2.0);
  filter.reset();
  assert.equal(filter.ready, false);
  assert.equal(filter.offset, undefined);
});

test("a recorded snapserver Time reply feeds the filter", () => {
  const reply = parseMessage(new Uint8Array(readFileSync(new URL("fixtures/time-reply.bin", import.meta.url))));
  const filter = new ClockFilter();
  const { offset, roundTrip } = timeOffset(reply, fromTimeval(reply.sent) + 0.0002);
  assert.ok(filter.add(offset, roundTrip));
  assert.ok(Math.abs(filter.offset) < 0.001);
});
