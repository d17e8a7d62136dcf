// Clock sync: the server-minus-client offset, median-filtered.
//
// Each Time round trip gives one offset estimate (protocol.js timeOffset).
// One slow round trip (a busy Wi-Fi, a GC pause) skews its estimate by up to
// half its delay, so the filter keeps the last `size` estimates and answers
// their median, sorted as numbers (a default Array sort compares strings:
// "10" < "9").  Round trips much slower than the fastest recent one (more than
// twice as long and 5 ms longer) are left out: their error bound is the widest.

export class ClockFilter {
  constructor({ size = 50, maxRoundTrip = 0.5 } = {}) {
    this.size = size;
    this.maxRoundTrip = maxRoundTrip;
    this.samples = [];
  }

  /** Add one round trip's estimate; returns false when it was rejected. */
  add(offset, roundTrip = 0) {
    if (!Number.isFinite(offset) || !Number.isFinite(roundTrip)) return false;
    if (roundTrip < 0 || roundTrip > this.maxRoundTrip) return false;
    this.samples.push({ offset, roundTrip });
    if (this.samples.length > this.size) this.samples.shift();
    return true;
  }

  get count() {
    return this.samples.length;
  }

  /** True once enough round trips arrived to trust the offset. */
  get ready() {
    return this.samples.length >= 5;
  }

  /** The median offset (seconds) of the round trips not much slower than the fastest. */
  get offset() {
    if (!this.samples.length) return undefined;
    const fastest = Math.min(...this.samples.map((s) => s.roundTrip));
    const limit = Math.max(fastest * 2, fastest + 0.005);
    const kept = this.samples.filter((s) => s.roundTrip <= limit).map((s) => s.offset);
    return median(kept.length ? kept : this.samples.map((s) => s.offset));
  }

  reset() {
    this.samples = [];
  }
}

/** The median of numbers (numeric sort; the mean of the middle two for an even count). */
export function median(values) {
  if (!values.length) return undefined;
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
