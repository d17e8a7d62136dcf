// Where "Play here" puts the browser: joinStep, shared by apiJoin and jsonRpcJoin.
import { test } from "node:test";
import assert from "node:assert/strict";

import { joinStep } from "../../broadcaster/web/static/player/player.js";

// A new client lands alone in a group playing snapserver's default stream.
const groups = [
  { id: "g1", stream: "default", rooms: ["room1"] },
  { id: "g2", stream: "other", rooms: ["room2"] },
  { id: "mine", stream: "default", rooms: ["browser-1"] },
];

test("the tapped group is joined even when the browser's own group plays its stream", () => {
  assert.deepEqual(joinStep(groups, "browser-1", "default", "g1"), {
    group: "g1",
    rooms: ["room1", "browser-1"],
  });
});

test("already in the tapped group: nothing to do", () => {
  const joined = [{ id: "g1", stream: "default", rooms: ["room1", "browser-1"] }];
  assert.equal(joinStep(joined, "browser-1", "default", "g1"), null);
});

test("without a group, a group playing the stream is joined", () => {
  assert.deepEqual(joinStep(groups, "browser-1", "other"), { group: "g2", rooms: ["room2", "browser-1"] });
});

test("without a group, the own group already playing the stream stays", () => {
  assert.equal(joinStep(groups, "browser-1", "default"), null);
});

test("no group plays the stream: the own group is pointed at it", () => {
  assert.deepEqual(joinStep(groups, "browser-1", "third"), { group: "mine", stream: "third" });
});

test("a tapped group that is gone falls back to the stream", () => {
  assert.deepEqual(joinStep(groups, "browser-1", "other", "vanished"), {
    group: "g2",
    rooms: ["room2", "browser-1"],
  });
});
