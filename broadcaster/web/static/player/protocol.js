// Snapcast's binary stream protocol (what snapserver speaks on its stream
// port and on ws://HOST:HTTP_PORT/stream), parsed and written in plain JS.
//
// Every message starts with a 26-byte little-endian header:
//   type u16, id u16, refersTo u16,
//   sent {sec i32, usec i32}, received {sec i32, usec i32}, size u32
// followed by `size` bytes of payload.  In a Time reply from snapserver the
// header's `sent` is the server's send time and `received` the server's
// receive time (checked against Debian's 0.26: tests/js/fixtures/).
export const HEADER_SIZE = 26;

export const MessageType = Object.freeze({
  BASE: 0,
  CODEC_HEADER: 1,
  WIRE_CHUNK: 2,
  SERVER_SETTINGS: 3,
  TIME: 4,
  HELLO: 5,
  STREAM_TAGS: 6,
  CLIENT_INFO: 7,
});

export class ProtocolError extends Error {}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8");

/** Seconds (a float) as the protocol's {sec, usec} pair. */
export function toTimeval(seconds) {
  let sec = Math.floor(seconds);
  let usec = Math.round((seconds - sec) * 1e6);
  if (usec >= 1e6) {
    sec += 1;
    usec -= 1e6;
  }
  return { sec, usec };
}

/** The protocol's {sec, usec} pair as seconds (a float). */
export function fromTimeval(tv) {
  return tv.sec + tv.usec / 1e6;
}

function bytesOf(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new ProtocolError("a message must be an ArrayBuffer or a typed array");
}

/** Parse one message (one WebSocket frame).  Throws ProtocolError on a short or bad frame. */
export function parseMessage(data) {
  const bytes = bytesOf(data);
  if (bytes.byteLength < HEADER_SIZE) {
    throw new ProtocolError(`message of ${bytes.byteLength} bytes is shorter than the header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const header = {
    type: view.getUint16(0, true),
    id: view.getUint16(2, true),
    refersTo: view.getUint16(4, true),
    sent: { sec: view.getInt32(6, true), usec: view.getInt32(10, true) },
    received: { sec: view.getInt32(14, true), usec: view.getInt32(18, true) },
    size: view.getUint32(22, true),
  };
  if (bytes.byteLength < HEADER_SIZE + header.size) {
    throw new ProtocolError(
      `message type ${header.type} says ${header.size} payload bytes, has ${bytes.byteLength - HEADER_SIZE}`,
    );
  }
  const body = new Payload(bytes.subarray(HEADER_SIZE, HEADER_SIZE + header.size));
  switch (header.type) {
    case MessageType.CODEC_HEADER: {
      const codec = body.string();
      return { ...header, codec, payload: body.bytes() };
    }
    case MessageType.WIRE_CHUNK: {
      const timestamp = { sec: body.int32(), usec: body.int32() };
      return { ...header, timestamp, payload: body.bytes() };
    }
    case MessageType.SERVER_SETTINGS:
    case MessageType.HELLO:
    case MessageType.STREAM_TAGS:
    case MessageType.CLIENT_INFO:
      return { ...header, json: body.json() };
    case MessageType.TIME:
      return { ...header, latency: { sec: body.int32(), usec: body.int32() } };
    default:
      return { ...header, payload: body.rest() };
  }
}

class Payload {
  constructor(bytes) {
    this.bytes_ = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  need(count) {
    if (this.pos + count > this.bytes_.byteLength) {
      throw new ProtocolError(`payload ends at ${this.bytes_.byteLength}, needed ${this.pos + count}`);
    }
  }

  int32() {
    this.need(4);
    const value = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return value;
  }

  /** A u32 length, then that many bytes. */
  bytes() {
    this.need(4);
    const length = this.view.getUint32(this.pos, true);
    this.pos += 4;
    this.need(length);
    const out = this.bytes_.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  string() {
    return textDecoder.decode(this.bytes());
  }

  json() {
    const text = this.string();
    try {
      return JSON.parse(text);
    } catch {
      throw new ProtocolError(`payload is not JSON: ${text.slice(0, 40)}`);
    }
  }

  rest() {
    return this.bytes_.subarray(this.pos);
  }
}

/** A whole message: header + payload.  `sent` is a {sec, usec} pair. */
export function serializeMessage(type, payload, { id = 0, refersTo = 0, sent = { sec: 0, usec: 0 } } = {}) {
  const out = new Uint8Array(HEADER_SIZE + payload.byteLength);
  const view = new DataView(out.buffer);
  view.setUint16(0, type, true);
  view.setUint16(2, id, true);
  view.setUint16(4, refersTo, true);
  view.setInt32(6, sent.sec, true);
  view.setInt32(10, sent.usec, true);
  view.setInt32(14, 0, true); // received: filled in by the receiver
  view.setInt32(18, 0, true);
  view.setUint32(22, payload.byteLength, true);
  out.set(payload, HEADER_SIZE);
  return out;
}

function lengthPrefixed(bytes) {
  const out = new Uint8Array(4 + bytes.byteLength);
  new DataView(out.buffer).setUint32(0, bytes.byteLength, true);
  out.set(bytes, 4);
  return out;
}

export const HELLO_KEYS = Object.freeze([
  "Arch",
  "ClientName",
  "HostName",
  "ID",
  "Instance",
  "MAC",
  "OS",
  "SnapStreamProtocolVersion",
  "Version",
]);

/** Hello: the JSON text's UTF-8 length (not the JS string's length) prefixes it. */
export function serializeHello(fields, { id = 0 } = {}) {
  const missing = HELLO_KEYS.filter((key) => !(key in fields));
  if (missing.length) throw new ProtocolError(`Hello lacks ${missing.join(", ")}`);
  const ordered = {};
  for (const key of HELLO_KEYS) ordered[key] = fields[key];
  const text = textEncoder.encode(JSON.stringify(ordered));
  return serializeMessage(MessageType.HELLO, lengthPrefixed(text), { id });
}

/** A Time request sent at `sentSeconds` on the client's clock. */
export function serializeTime(sentSeconds, { id = 0 } = {}) {
  const payload = new Uint8Array(8); // latency {0, 0}: snapserver fills it in its reply
  return serializeMessage(MessageType.TIME, payload, { id, sent: toTimeval(sentSeconds) });
}

/**
 * One Time round trip as the server-minus-client clock offset, in seconds.
 * c2s = server receive - client send (snapserver puts it in the reply's latency),
 * s2c = client receive - server send (the reply header's `sent`),
 * offset = (c2s - s2c) / 2; the round trip's network time cancels out.
 */
export function timeOffset(reply, clientReceivedSeconds) {
  const c2s = fromTimeval(reply.latency);
  const s2c = clientReceivedSeconds - fromTimeval(reply.sent);
  return { offset: (c2s - s2c) / 2, roundTrip: c2s + s2c };
}

/** The RIFF/WAVE header a pcm CodecHeader carries: {sampleRate, channels, bits}. */
export function parseWaveHeader(bytes) {
  const b = bytesOf(bytes);
  const ascii = (at) => String.fromCharCode(b[at], b[at + 1], b[at + 2], b[at + 3]);
  if (b.byteLength < 44 || ascii(0) !== "RIFF" || ascii(8) !== "WAVE") {
    throw new ProtocolError("pcm codec header is not a RIFF/WAVE header");
  }
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let pos = 12;
  while (pos + 8 <= b.byteLength) {
    const id = ascii(pos);
    const size = view.getUint32(pos + 4, true);
    if (id === "fmt ") {
      const format = view.getUint16(pos + 8, true);
      const channels = view.getUint16(pos + 10, true);
      const sampleRate = view.getUint32(pos + 12, true);
      const bits = view.getUint16(pos + 22, true);
      if (format !== 1 || ![16, 24, 32].includes(bits) || channels < 1 || sampleRate < 1) {
        throw new ProtocolError(`unsupported pcm format ${format}, ${bits} bits, ${channels} channels`);
      }
      return { sampleRate, channels, bits };
    }
    pos += 8 + size + (size % 2);
  }
  throw new ProtocolError("pcm codec header has no fmt chunk");
}

/** Interleaved little-endian integer pcm → one Float32Array per channel. */
export function decodePcm(bytes, { channels, bits }) {
  const b = bytesOf(bytes);
  const width = bits / 8;
  const frames = Math.floor(b.byteLength / (width * channels));
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = Array.from({ length: channels }, () => new Float32Array(frames));
  let pos = 0;
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < channels; c++) {
      let value;
      if (bits === 16) {
        value = view.getInt16(pos, true) / 32768;
      } else if (bits === 24) {
        const raw = b[pos] | (b[pos + 1] << 8) | (b[pos + 2] << 16);
        value = ((raw << 8) >> 8) / 8388608;
      } else {
        value = view.getInt32(pos, true) / 2147483648;
      }
      out[c][i] = value;
      pos += width;
    }
  }
  return out;
}
