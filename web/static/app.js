/* Samtalsstöd: small progressive enhancements. The pages work without JavaScript. */
(function () {
  "use strict";

  /* Status polling: rows/blocks with data-recording-id and a pending data-status (the list, a recording's page
     while it is transcribed); the page reloads when a status changes. */
  var POLL_MS = 2000;
  function pending() {
    return document.querySelector('[data-recording-id][data-status="queued"], ' +
                                  '[data-recording-id][data-status="transcribing"]');
  }
  function poll() {
    fetch("/recordings/status", {headers: {"Accept": "application/json"}, credentials: "same-origin",
                                 cache: "no-store"})
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
        if (!r.ok) { throw new Error("status " + r.status); }
        return r.json();
      })
      .then(function (data) {
        var reload = false;
        (data.recordings || []).forEach(function (rec) {
          var els = document.querySelectorAll('[data-recording-id="' + String(rec.id).replace(/[^0-9a-f]/g, "") + '"]');
          Array.prototype.forEach.call(els, function (el) {
            if (el.getAttribute("data-status") !== rec.status) { reload = true; return; }
            // progress.js: the bar, the percentage, an estimate of the time left, news for screen readers
            window.SamtalProgress.update(el, rec.progress, el.getAttribute("data-text-" + rec.status));
          });
        });
        if (reload) { window.location.reload(); } else if (pending()) { window.setTimeout(poll, POLL_MS); }
      })
      .catch(function () { if (pending()) { window.setTimeout(poll, POLL_MS * 3); } });
  }
  if (pending()) { window.setTimeout(poll, POLL_MS); }

  /* Upload: refuse an oversize file before sending it, and show that the upload is running. */
  var form = document.querySelector("[data-upload-form]");
  if (form) {
    var input = form.querySelector("input[type=file]");
    var errorBox = document.getElementById("upload-error");
    form.addEventListener("submit", function (e) {
      var max = parseInt(input.getAttribute("data-max-bytes"), 10);
      if (input.files && input.files[0] && max && input.files[0].size > max) {
        e.preventDefault();
        errorBox.textContent = input.getAttribute("data-too-large");
        errorBox.hidden = false;
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return;
      }
      var button = form.querySelector("button[type=submit]");
      if (button) {
        button.disabled = true;
        button.textContent = button.getAttribute("data-busy-text") || button.textContent;
      }
    });
  }
})();
