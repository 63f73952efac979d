/* Reviewed drafts (summaries on the recording page, a case draft on its page; web/templates/_draft.html):
   - while a draft is queued or being written, poll the status URL of its container ([data-draft-poll], which
     answers {"drafts": [...]}, no content) and show the progress; reload the page when one is done or failed
     (the server renders the result, or the error with a retry button);
   - a draft that stays queued long shows a notice that the assistant may be busy or down (the page keeps
     waiting, it never hangs: every poll is a short request with its own timeout);
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
    function fallback() {
      var details = field.closest("details");
      if (details) { details.open = true; }
      field.focus();
      field.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
      done(ok);
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(field.value).then(function () { done(true); }, fallback);
    } else {
      fallback();
    }
  });

  if (!window.fetch) { return; }
  var started = Date.now();

  /* Shows one draft's progress; returns true when it has finished (the page must reload). */
  function update(container, item) {
    var card = container.querySelector('[data-draft-id="' + item.id + '"]') ||
      (container.getAttribute("data-draft-id") === String(item.id) ? container : null);
    if (!card) { return false; }
    if (card.getAttribute("data-status") !== item.status && (item.status === "done" || item.status === "failed")) {
      return true;
    }
    // progress.js: the bar, the percentage, an estimate of the time left, news for screen readers
    window.SamtalProgress.update(card.querySelector("[data-progress]"), item.progress, item.status_text);
    var slow = card.querySelector(".draft-slow");
    if (slow) { slow.hidden = !(item.status === "queued" && Date.now() - started > SLOW_MS); }
    return false;
  }

  function watch(container) {
    var url = container.getAttribute("data-draft-poll");
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
        .then(function (data) {
          var finished = false;
          (data.drafts || []).forEach(function (item) { finished = update(container, item) || finished; });
          if (finished) { window.location.reload(); return; }
          window.setTimeout(poll, POLL_MS);
        })
        .catch(function () { window.setTimeout(poll, POLL_MS * 2); })
        .then(function () { if (timer) { window.clearTimeout(timer); } });
    }
    window.setTimeout(poll, POLL_MS);
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-draft-poll]"), watch);
})();
