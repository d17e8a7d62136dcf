// The stream protocol against byte sequences recorded from Debian's snapserver 0.26
// (fixtures/recording.json says how).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import {
  HEADER_SIZE,
  MessageType,
  ProtocolError,
  decodePcm,
  fromTimeval,
  parseMessage,
  parseWaveHeader,
  serializeHello,
  serializeTime,
  timeOffset,
  toTimeval,
} from "../../broadcaster/web/static/player/protocol.js";

const fixture = (name) => new Uint8Array(readFileSync(new URL(`fixtures/${name}`, import.meta.url)));
const recording = JSON.parse(readFileSync(new URL("fixtures/recording.json", import.meta.url), "utf8"));

test("ServerSettings from snapserver: header and JSON", () => {
  const m = parseMessage(fixture("server-settings.bin"));
  assert.equal(m.type, MessageType.SERVER_SETTINGS);
  assert.equal(m.refersTo, 1); // our Hello's id
  assert.equal(m.size, fixture("server-settings.bin").length - HEADER_SIZE);
  assert.deepEqual(m.json, { bufferMs: 400, latency: 0, muted: false, volume: 100 });
});

test("pcm CodecHeader carries a 44-byte RIFF header: 48 kHz, 16 bit, stereo", () => {
  const m = parseMessage(fixture("codec-header-pcm.bin"));
  assert.equal(m.type, MessageType.CODEC_HEADER);
  assert.equal(m.codec, "pcm");
  assert.equal(m.payload.length, 44);
  assert.deepEqual(parseWaveHeader(m.payload), { sampleRate: 48000, channels: 2, bits: 16 });
});

test("flac CodecHeader is parsed and named, not mistaken for pcm", () => {
  const m = parseMessage(fixture("codec-header-flac.bin"));
  assert.equal(m.codec, "flac");
  assert.equal(String.fromCharCode(...m.payload.subarray(0, 4)), "fLaC");
  assert.throws(() => parseWaveHeader(m.payload), ProtocolError);
});

test("WireChunk: server timestamp and 20 ms of a 1 kHz tone", () => {
  const m = parseMessage(fixture("wire-chunk-pcm.bin"));
  assert.equal(m.type, MessageType.WIRE_CHUNK);
  assert.ok(m.timestamp.sec > 0 && m.timestamp.usec >= 0 && m.timestamp.usec < 1e6);
  assert.equal(m.payload.length, 3840); // 960 frames x 2 channels x 2 bytes
  const [left, right] = decodePcm(m.payload, { channels: 2, bits: 16 });
  assert.equal(left.length, 960);
  assert.deepEqual(left, right);
  // The recorded tone: 8000/32768 peak, a 1 kHz sine starting at phase 0.
  assert.equal(left[0], 0);
  assert.ok(Math.abs(left[12] - 8000 / 32768) < 1e-3); // a quarter period = 12 frames
  let crossings = 0;
  for (let i = 1; i < left.length; i++) if (left[i - 1] < 0 && left[i] >= 0) crossings++;
  assert.ok(crossings >= 19 && crossings <= 20, `crossings ${crossings}`);
});

test("Time reply: sent is the server's send time, received its receive time", () => {
  const m = parseMessage(fixture("time-reply.bin"));
  assert.equal(m.type, MessageType.TIME);
  assert.equal(m.refersTo, m.id);
  const asked = fromTimeval(recording.timeRequestSent);
  const serverRx = fromTimeval(m.received);
  const serverTx = fromTimeval(m.sent);
  // snapserver fills latency = its receive time - our sent time (same host, same clock).
  assert.ok(Math.abs(fromTimeval(m.latency) - (serverRx - asked)) < 2e-6);
  assert.ok(serverTx >= serverRx, "sent and received must not be swapped");
  // Recorded on one host with one clock: the offset is ~0 and the round trip tiny.
  const { offset, roundTrip } = timeOffset(m, serverTx + 0.0001);
  assert.ok(Math.abs(offset) < 0.001, `offset ${offset}`);
  assert.ok(roundTrip > 0 && roundTrip < 0.01, `round trip ${roundTrip}`);
});

test("timeOffset: a client clock 100 s behind the server with 3 ms each way", () => {
  const clientSent = 5.0;
  const serverRx = clientSent + 100 + 0.003;
  const serverTx = serverRx + 0.001;
  const clientRx = serverTx - 100 + 0.003;
  const reply = { latency: toTimeval(serverRx - clientSent), sent: toTimeval(serverTx) };
  const { offset, roundTrip } = timeOffset(reply, clientRx);
  assert.ok(Math.abs(offset - 100) < 2e-6);
  assert.ok(Math.abs(roundTrip - 0.006) < 2e-6);
});

test("Hello serializes to the bytes snapserver accepted, UTF-8 length included", () => {
  const recorded = fixture("hello.bin");
  const sent = parseMessage(recorded);
  const ours = serializeHello(sent.json, { id: 1 });
  assert.deepEqual(ours, recorded);
  // "Snäpweb": the JSON text is one byte longer in UTF-8 than as a JS string.
  const text = JSON.stringify(sent.json);
  assert.equal(sent.size, 4 + text.length + 1);
});

test("Hello without one of its keys is refused", () => {
  const fields = parseMessage(fixture("hello.bin")).json;
  delete fields.SnapStreamProtocolVersion;
  assert.throws(() => serializeHello(fields), /SnapStreamProtocolVersion/);
});

test("Time request: header sent is the client time, 8 bytes of zero latency", () => {
  const bytes = serializeTime(1234.567891, { id: 9 });
  const m = parseMessage(bytes);
  assert.equal(m.type, MessageType.TIME);
  assert.equal(m.id, 9);
  assert.deepEqual(m.sent, { sec: 1234, usec: 567891 });
  assert.deepEqual(m.received, { sec: 0, usec: 0 });
  assert.equal(m.size, 8);
  assert.deepEqual(m.latency, { sec: 0, usec: 0 });
});

test("toTimeval carries a rounded-up microsecond into seconds", () => {
  assert.deepEqual(toTimeval(1.9999999), { sec: 2, usec: 0 });
  assert.equal(fromTimeval({ sec: 3, usec: 250000 }), 3.25);
});

test("short and truncated messages are refused with ProtocolError", () => {
  assert.throws(() => parseMessage(new Uint8Array(10)), ProtocolError);
  const chunk = fixture("wire-chunk-pcm.bin");
  assert.throws(() => parseMessage(chunk.subarray(0, 100)), ProtocolError);
  const bad = fixture("server-settings.bin").slice();
  bad[HEADER_SIZE] = 0xff; // JSON length beyond the payload
  assert.throws(() => parseMessage(bad), ProtocolError);
});

test("decodePcm: 24-bit negative samples keep their sign", () => {
  const bytes = new Uint8Array([0x00, 0x00, 0x80, 0xff, 0xff, 0x7f]); // -2^23, 2^23-1
  const [mono] = decodePcm(bytes, { channels: 1, bits: 24 });
  assert.equal(mono[0], -1);
  assert.ok(Math.abs(mono[1] - 1) < 1e-6);
});
