/* AudioWorklet for the browser dictaphone: hands the microphone's samples (first channel, the context's
   own rate) to recorder.js in blocks of 2048, which downsamples them to 16 kHz PCM. Served from 'self'. */
class SamtalsstodCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(2048);
    this.filled = 0;
  }
  process(inputs) {
    var channel = inputs[0] && inputs[0][0];
    if (channel) {
      for (var i = 0; i < channel.length; i++) {
        this.block[this.filled++] = channel[i];
        if (this.filled === this.block.length) {
          this.port.postMessage(this.block);
          this.block = new Float32Array(2048);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("samtalsstod-capture", SamtalsstodCapture);
