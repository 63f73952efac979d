/* Summaries on the recording page:
   - while a summary is queued or being written, poll its status and show the progress; reload the page when it
     is done or failed (the server renders the result, or the error with a retry button);
   - a summary that stays queued long shows a notice that the assistant may be down (the page keeps waiting,
     it never hangs: every poll is a short request with its own timeout);
   - "Kopiera texten" copies the reviewed plain text (headings kept) to the clipboard. */
(function () {
  "use strict";
  var POLL_MS = 2000, SLOW_MS = 60000, REQUEST_MS = 10000;

  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("button.copy-summary");
    if (!button) { return; }
    var field = document.getElementById(button.getAttribute("data-copy"));
    var status = button.parentNode.querySelector(".copy-status");
    if (!field) { return; }
    function done(ok) {
      if (status) { status.textContent = ok ? "Texten är kopierad." : "Kopieringen misslyckades: markera texten och kopiera själv."; }
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () { fallback(); });
    } else {
      fallback();
    }
    function fallback() {
      var details = field.closest("details");
      if (details) { details.open = true; }
      field.focus();
      field.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
      done(ok);
    }
  });

  var section = document.getElementById("summaries");
  var url = section && section.getAttribute("data-poll");
  if (!url || !window.fetch) { return; }
  var started = Date.now();

  function update(item) {
    var card = document.getElementById("summary-" + item.id);
    if (!card) { return false; }
    if (item.status === "done" || item.status === "failed") { return true; }
    var pct = Math.round(item.progress * 100);
    var bar = card.querySelector("progress"), label = card.querySelector("[data-percent]");
    var text = card.querySelector("[data-summary-text]");
    if (bar) { bar.value = pct; bar.textContent = pct + " %"; }
    if (label) { label.textContent = pct + " %"; }
    if (text) { text.textContent = item.status_text; }
    var slow = card.querySelector(".summary-slow");
    if (slow) { slow.hidden = !(item.status === "queued" && Date.now() - started > SLOW_MS); }
    return false;
  }

  function poll() {
    var controller = window.AbortController ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, REQUEST_MS) : null;
    fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin",
                signal: controller ? controller.signal : undefined})
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (data) {
        var finished = false;
        (data.summaries || []).forEach(function (item) {
          var card = document.getElementById("summary-" + item.id);
          if (card && card.getAttribute("data-status") !== item.status && update(item)) { finished = true; }
          else { update(item); }
        });
        if (finished) { window.location.reload(); return; }
        setTimeout(poll, POLL_MS);
      })
      .catch(function () { setTimeout(poll, POLL_MS * 2); })
      .then(function () { if (timer) { clearTimeout(timer); } });
  }
  setTimeout(poll, POLL_MS);
})();
