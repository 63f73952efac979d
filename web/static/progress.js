/* Progress of long tasks (transcription, live finalisation, summaries, case drafts, topic lists): one helper that
   shows how far a task has come, estimates the time left from how fast it has moved so far on this page, and tells
   screen readers (the box's aria-live [data-announce] element) when the step changes and at every quarter — not at
   every poll, which would drown everything else they say.

   SamtalProgress.update(box, fraction, text): box holds any of progress, [data-percent], [data-eta],
   [data-progress-text] / [data-summary-text], [data-announce]. SamtalProgress.eta(key, fraction) gives the estimate
   alone ("cirka 2 minuter kvar", or "" while it cannot be told) for a caller with its own status line. */
(function () {
  "use strict";
  var MIN_SPAN_MS = 4000, KEEP_MS = 120000;
  var states = typeof WeakMap === "function" ? new WeakMap() : null;
  var byKey = {};

  function remaining(seconds) {
    if (!isFinite(seconds) || seconds < 0) { return ""; }
    if (seconds < 10) { return "strax klart"; }
    if (seconds < 60) { return "cirka " + Math.max(10, Math.round(seconds / 10) * 10) + " sekunder kvar"; }
    var m = Math.round(seconds / 60);
    return m <= 1 ? "cirka 1 minut kvar" : "cirka " + m + " minuter kvar";
  }

  /* Time left from the samples seen on this page (fraction done over time), or "" while too few. */
  function estimate(state, fraction) {
    var now = Date.now();
    state.samples.push([now, fraction]);
    while (state.samples.length > 2 && now - state.samples[0][0] > KEEP_MS) { state.samples.shift(); }
    var first = state.samples[0];
    var span = now - first[0], moved = fraction - first[1];
    if (fraction <= 0 || fraction >= 1 || span < MIN_SPAN_MS || moved <= 0) { return ""; }
    return remaining((1 - fraction) / (moved / span) / 1000);
  }

  function stateOf(box) {
    var s = states ? states.get(box) : box.samtalProgress;
    if (!s) {
      s = {samples: [], quarter: null, text: null};
      if (states) { states.set(box, s); } else { box.samtalProgress = s; }
    }
    return s;
  }

  function update(box, fraction, text) {
    if (!box) { return; }
    var f = Math.max(0, Math.min(1, Number(fraction) || 0)), pct = Math.round(f * 100);
    var s = stateOf(box), eta = estimate(s, f);
    var bar = box.querySelector("progress"), label = box.querySelector("[data-percent]");
    var etaEl = box.querySelector("[data-eta]"), live = box.querySelector("[data-announce]");
    var textEl = box.querySelector("[data-progress-text], [data-summary-text]");
    if (bar) { bar.max = 100; bar.value = pct; bar.textContent = pct + " %"; }
    if (label) { label.textContent = pct + " %"; }
    if (etaEl) { etaEl.textContent = eta ? "(" + eta + ")" : ""; }
    if (textEl && text) { textEl.textContent = text; }
    var quarter = Math.floor(f * 4);
    if (live && s.text !== null && (text !== s.text || quarter > s.quarter)) {
      live.textContent = (text || "") + " " + pct + " %" + (eta ? ", " + eta : "") + ".";
    }
    s.text = text || s.text || "";
    s.quarter = s.quarter === null ? quarter : Math.max(s.quarter, quarter);
  }

  function eta(key, fraction) {
    var s = byKey[key] || (byKey[key] = {samples: []});
    return estimate(s, Math.max(0, Math.min(1, Number(fraction) || 0)));
  }

  window.SamtalProgress = {update: update, eta: eta, remaining: remaining};
})();
