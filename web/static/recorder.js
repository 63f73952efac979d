/* Browser dictaphone: microphone -> 16 kHz mono 16-bit PCM pieces of a few seconds -> POST to the box, one
   at a time, in order, retried until acknowledged (the answer means: encrypted and on disk). Pause, resume,
   stop; a level meter and the recorded time; a warning before leaving while audio is not yet sent.
   The server side: web/live.py and appliance/live.py. */
(function () {
  "use strict";
  var box = document.getElementById("recorder");
  if (!box) { return; }
  var RATE = 16000;
  var el = function (sel) { return box.querySelector(sel); };
  var ui = {state: el("[data-rec-state]"), elapsed: el("[data-rec-elapsed]"), level: el("[data-rec-level]"),
            error: el("[data-rec-error]"), start: el("[data-rec-start]"), pause: el("[data-rec-pause]"),
            resume: el("[data-rec-resume]"), stop: el("[data-rec-stop]")};
  var msg = function (name) { return box.getAttribute("data-msg-" + name) || ""; };
  var csrf = box.getAttribute("data-csrf");
  var chunkUrl = box.getAttribute("data-chunk-url").replace(/\/0$/, "/");
  var chunkSamples = Math.round(parseFloat(box.getAttribute("data-chunk-seconds") || "2.5") * RATE);

  var seq = parseInt(box.getAttribute("data-next-seq"), 10) || 0;  // numbering goes on after a reload
  var recorded = Math.round(parseFloat(box.getAttribute("data-seconds") || "0") * RATE);
  var mode = "idle";  // idle, recording, paused, stopping, stopped
  var pieces = [], pieceLen = 0;  // the chunk being filled (Int16Arrays)
  var queue = [], sending = false, retryMs = 1000, failed = 0;
  var ctx = null, stream = null, node = null, source = null;
  var resampleAcc = 0, resampleSum = 0, resampleN = 0;

  function show(btn, on) { btn.hidden = !on; }
  function setMode(m) {
    mode = m;
    show(ui.start, m === "idle");
    show(ui.pause, m === "recording");
    show(ui.resume, m === "paused");
    show(ui.stop, m === "recording" || m === "paused");
    if (m === "recording") { ui.state.textContent = msg("recording"); }
    if (m === "paused") { ui.state.textContent = msg("paused"); }
    if (m === "stopping") { ui.state.textContent = msg("stopping"); }
    if (m === "stopped") { ui.state.textContent = msg("stopped"); }
    var form = document.querySelector("[data-live-stop-form]");
    if (form) { form.hidden = m !== "idle"; }
  }
  function error(text) { ui.error.textContent = text; ui.error.hidden = !text; }
  function clock(samples) {
    var s = Math.floor(samples / RATE), m = Math.floor(s / 60), h = Math.floor(m / 60);
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    return h ? h + ":" + two(m % 60) + ":" + two(s % 60) : two(m) + ":" + two(s % 60);
  }

  /* Downsampling by averaging the input samples that fall into each 16 kHz sample period: a simple
     low-pass that is enough for speech recognition at 16 kHz. */
  function take(input, inRate) {
    var step = inRate / RATE, out = new Int16Array(Math.ceil(input.length / step) + 1), n = 0, peak = 0;
    for (var i = 0; i < input.length; i++) {
      var v = input[i];
      if (Math.abs(v) > peak) { peak = Math.abs(v); }
      resampleSum += v; resampleN += 1; resampleAcc += 1;
      if (resampleAcc >= step) {
        var s = Math.max(-1, Math.min(1, resampleSum / resampleN));
        out[n++] = s < 0 ? s * 32768 : s * 32767;
        resampleAcc -= step; resampleSum = 0; resampleN = 0;
      }
    }
    ui.level.value = Math.min(1, peak);
    if (mode !== "recording") { return; }
    var samples = out.subarray(0, n);
    pieces.push(samples); pieceLen += samples.length; recorded += samples.length;
    ui.elapsed.textContent = clock(recorded);
    if (pieceLen >= chunkSamples) { flush(); }
  }

  function flush() {
    if (!pieceLen) { return; }
    var pcm = new Int16Array(pieceLen), at = 0;
    pieces.forEach(function (p) { pcm.set(p, at); at += p.length; });
    pieces = []; pieceLen = 0;
    queue.push({seq: seq++, body: pcm.buffer});
    send();
  }

  /* One queue, sent in order, each item retried until the box answers: audio pieces and the pause, resume
     and stop requests, so a mark always lands between the right pieces even across a network outage. */
  function request(item) {
    if (item.seq !== undefined) {
      return fetch(chunkUrl + item.seq, {method: "POST", body: item.body, credentials: "same-origin",
                                         headers: {"Content-Type": "application/octet-stream", "X-CSRFToken": csrf,
                                                   "Accept": "application/json"}});
    }
    var body = new URLSearchParams(item.fields);
    body.set("csrf_token", csrf);
    return fetch(item.url, {method: "POST", body: body, credentials: "same-origin",
                            headers: {"Accept": "application/json", "X-CSRFToken": csrf}});
  }

  function send() {
    if (sending || !queue.length) { return; }
    sending = true;
    var item = queue[0];
    request(item)
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) { return {r: r, data: data}; });
      })
      .then(function (res) {
        sending = false;
        if (res.r.ok) {
          queue.shift(); retryMs = 1000; error("");
          if (item.done) { item.done(); }
          if (res.data.state === "stopped" && item.seq !== undefined) { stoppedElsewhere(res.data.stop_reason); }
          send();
        } else if (res.r.status === 409 || res.r.status === 404 || res.r.status === 400 || res.r.status === 413) {
          queue.shift();  // the box refuses it for good (stopped, or bad data): do not retry
          if (item.seq !== undefined) { failed += 1; }
          error(res.data.error || msg("lost"));
          if (res.r.status === 409) { stoppedElsewhere(null); }
          if (item.done) { item.done(); }
          send();
        } else {
          retry(res.data.error);
        }
      })
      .catch(function () { sending = false; retry(null); });
  }
  function retry(text) {
    error(text || msg("retry"));
    window.setTimeout(send, retryMs);
    retryMs = Math.min(retryMs * 2, 10000);
  }
  function control(name, fields, done) {
    queue.push({url: box.getAttribute("data-" + name + "-url"), fields: fields, done: done});
    send();
  }

  function release() {
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); }
    if (ctx) { ctx.close(); }
    stream = ctx = node = source = null;
    ui.level.value = 0;
  }

  function stoppedElsewhere(reason) {
    if (mode === "stopped" || mode === "stopping") { return; }
    release();
    setMode("stopped");
    if (reason === "max_length") {
      var note = document.querySelector("[data-live-max]");
      if (note) { note.hidden = false; }
    }
    document.dispatchEvent(new CustomEvent("samtalsstod:stopped"));
  }

  function startCapture() {
    error("");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.AudioContext) {
      error(msg("unsupported")); return;
    }
    ui.start.disabled = true;
    navigator.mediaDevices.getUserMedia({audio: {channelCount: 1, echoCancellation: true, noiseSuppression: true}})
      .then(function (s) {
        stream = s;
        ctx = new AudioContext();
        source = ctx.createMediaStreamSource(stream);
        var rate = ctx.sampleRate;
        if (ctx.audioWorklet) {
          return ctx.audioWorklet.addModule(box.getAttribute("data-worklet-url")).then(function () {
            node = new AudioWorkletNode(ctx, "samtalsstod-capture");
            node.port.onmessage = function (e) { take(e.data, rate); };
            source.connect(node);
          });
        }
        // Older browsers: ScriptProcessor (deprecated, but the same samples).
        node = ctx.createScriptProcessor(4096, 1, 1);
        node.onaudioprocess = function (e) { take(e.inputBuffer.getChannelData(0), rate); };
        source.connect(node); node.connect(ctx.destination);
      })
      .then(function () {
        ui.start.disabled = false;
        if (box.getAttribute("data-state") === "paused") { control("resume", {at_seq: seq}); }
        box.setAttribute("data-state", "recording");
        setMode("recording");
      })
      .catch(function () { ui.start.disabled = false; release(); error(msg("nomic")); });
  }

  ui.start.addEventListener("click", startCapture);
  ui.pause.addEventListener("click", function () {
    flush();  // what was said before the pause goes out first; the mark comes before the next piece
    setMode("paused");
    control("pause", {at_seq: seq});
  });
  ui.resume.addEventListener("click", function () {
    control("resume", {at_seq: seq});
    setMode("recording");
  });
  ui.stop.addEventListener("click", function () {
    flush();
    setMode("stopping");
    release();
    control("stop", {chunks: seq}, function () {
      setMode("stopped");
      if (failed) { error(msg("lost")); }
      document.dispatchEvent(new CustomEvent("samtalsstod:stopped"));
    });
  });
  window.addEventListener("beforeunload", function (e) {
    if (mode === "recording" || mode === "paused" || mode === "stopping" || queue.length) {
      e.preventDefault();
      e.returnValue = msg("leave");
      return msg("leave");
    }
  });

  // Capture starts on a click on this page: browsers only let audio run after a gesture on the page itself.
  setMode("idle");
})();
