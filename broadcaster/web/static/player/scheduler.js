// Where each chunk goes on the AudioContext timeline (pure logic, no Web Audio).
//
// A chunk should start sounding at `target` (context seconds, from its server
// timestamp through the clock offset).  Chunks are laid end to end from a
// cursor; while the cursor stays within `resyncAfter` of the target, the
// difference is worked off with a few dropped (cursor late) or duplicated
// (cursor early) frames per chunk, inaudible at a few per 20 ms.  Past it
// (start, a gap such as a muted client that gets no chunks, a clock jump)
// the cursor jumps to the target, skipping what is already too late.

export class PlayoutCursor {
  constructor({ resyncAfter = 0.035, deadband = 0.0005, maxCorrection = 4, lead = 0.02 } = {}) {
    this.resyncAfter = resyncAfter; // seconds of error that make a hard resync
    this.deadband = deadband; // seconds of error left alone
    this.maxCorrection = maxCorrection; // frames dropped or duplicated per chunk at most
    this.lead = lead; // seconds ahead of `now` a source must be scheduled
    this.cursor = undefined;
    this.lastError = 0;
  }

  reset() {
    this.cursor = undefined;
  }

  /**
   * Plan one chunk of `frames` frames at `rate` Hz that should start at `target`.
   * Returns {when, skip, adjust, resync} or null when all of it is too late:
   * play from frame `skip`, with `adjust` frames added (> 0) or removed (< 0), at `when`.
   */
  place(target, frames, rate, now) {
    const duration = frames / rate;
    const earliest = now + this.lead;
    const error = this.cursor === undefined ? Infinity : this.cursor - target;
    this.lastError = Number.isFinite(error) ? error : 0;
    if (Math.abs(error) > this.resyncAfter || this.cursor < earliest) {
      if (target + duration <= earliest) {
        this.cursor = undefined;
        return null;
      }
      const skip = target < earliest ? Math.ceil((earliest - target) * rate) : 0;
      const when = target + skip / rate;
      this.cursor = when + (frames - skip) / rate;
      return { when, skip, adjust: 0, resync: true };
    }
    let adjust = 0;
    if (Math.abs(error) > this.deadband) {
      const n = Math.min(this.maxCorrection, Math.max(1, Math.round(Math.abs(error) * rate)));
      adjust = error > 0 ? -n : n;
    }
    const when = this.cursor;
    this.cursor = when + (frames + adjust) / rate;
    return { when, skip: 0, adjust, resync: false };
  }
}

/**
 * The channels of a chunk from frame `skip` on, with `adjust` frames spread
 * evenly over it duplicated (> 0) or dropped (< 0).
 */
export function reshape(channels, skip, adjust) {
  if (!skip && !adjust) return channels;
  return channels.map((data) => {
    const source = skip ? data.subarray(skip) : data;
    if (!adjust) return source;
    const length = source.length + adjust;
    if (length <= 0) return new Float32Array(0);
    const out = new Float32Array(length);
    const every = source.length / (Math.abs(adjust) + 1);
    let next = every;
    let o = 0;
    let changed = 0;
    for (let i = 0; i < source.length && o < length; i++) {
      if (changed < Math.abs(adjust) && i >= next) {
        changed++;
        next += every;
        if (adjust < 0) continue; // drop this frame
        out[o++] = source[i]; // duplicate this frame
      }
      out[o++] = source[i];
    }
    return out;
  });
}
