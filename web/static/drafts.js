/* A case draft being written (web/case_drafts.py): poll its status (no content), show the progress, reload
   when it is done or failed (the server renders the draft, or the error with a retry button). Every poll is a
   short request with its own timeout, so the page never hangs; a draft that stays queued long says so.
   Copying the reviewed text is summaries.js's "Kopiera texten" button. */
(function () {
  "use strict";
  var POLL_MS = 2000, SLOW_MS = 60000, REQUEST_MS = 10000;
  var section = document.getElementById("draft");
  var url = section && section.getAttribute("data-poll");
  if (!url || !window.fetch) { return; }
  var started = Date.now();

  function poll() {
    var controller = window.AbortController ? new AbortController() : null;
    var timer = controller ? window.setTimeout(function () { controller.abort(); }, REQUEST_MS) : null;
    fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin", cache: "no-store",
                signal: controller ? controller.signal : undefined})
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
        if (!r.ok) { throw new Error("status " + r.status); }
        return r.json();
      })
      .then(function (d) {
        if (d.status === "done" || d.status === "failed") { window.location.reload(); return; }
        var pct = Math.round(d.progress * 100);
        var bar = section.querySelector("progress"), label = section.querySelector("[data-percent]");
        var text = section.querySelector("[data-summary-text]"), slow = section.querySelector(".draft-slow");
        if (bar) { bar.value = pct; bar.textContent = pct + " %"; }
        if (label) { label.textContent = pct + " %"; }
        if (text) { text.textContent = d.status_text; }
        if (slow) { slow.hidden = !(d.status === "queued" && Date.now() - started > SLOW_MS); }
        window.setTimeout(poll, POLL_MS);
      })
      .catch(function () { window.setTimeout(poll, POLL_MS * 2); })
      .then(function () { if (timer) { window.clearTimeout(timer); } });
  }
  window.setTimeout(poll, POLL_MS);
})();
