// The microphone's samples for "Calibrate rooms" (calibrate.js): batches of
// 4096 frames, the input's channels mixed to one, each with the context frame
// of its first sample, posted to the page.
class CalibrationRecorder extends AudioWorkletProcessor {
  constructor() {
    super();
    this.batch = new Float32Array(4096);
    this.filled = 0;
    this.start = 0; // the context frame of the batch's first sample
    this.port.onmessage = () => {
      this.port.postMessage({ samples: this.batch.slice(0, this.filled), frame: this.start, last: true });
      this.filled = 0;
    };
  }

  process(inputs) {
    const channels = inputs[0] || [];
    const frames = channels.length ? channels[0].length : 128; // no input yet: silence
    if (this.filled === 0) this.start = currentFrame;
    for (let i = 0; i < frames; i++) {
      let sum = 0;
      for (const channel of channels) sum += channel[i];
      this.batch[this.filled++] = channels.length ? sum / channels.length : 0;
      if (this.filled === this.batch.length) {
        this.port.postMessage({ samples: this.batch, frame: this.start, last: false });
        this.batch = new Float32Array(4096);
        this.filled = 0;
        this.start = currentFrame + i + 1;
      }
    }
    return true;
  }
}

registerProcessor("calibration-recorder", CalibrationRecorder);
