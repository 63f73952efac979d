/* Desk microphone on the recording page: keep the capture's state and recorded time current while it runs,
   and reload the page when the state changes (the buttons and the transcript follow). Works without JS:
   the buttons are plain forms. */
(function () {
  "use strict";
  var box = document.querySelector("[data-desk-status]");
  if (!box || box.getAttribute("data-desk-active") !== "1") { return; }
  var url = box.getAttribute("data-desk-status");
  var label = box.querySelector("[data-desk-label]");
  var seconds = box.querySelector("[data-desk-seconds]");
  var error = box.querySelector("[data-desk-error]");
  var shown = null;

  function clock(s) {
    s = Math.floor(s);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var mm = String(m).padStart(2, "0"), ss = String(sec).padStart(2, "0");
    return (h ? h + ":" : "") + mm + ":" + ss;
  }

  function poll() {
    fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin", cache: "no-store"})
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
        if (!r.ok) { throw new Error("status " + r.status); }
        return r.json();
      })
      .then(function (data) {
        var d = data.desk;
        if (!d) { return; }
        var key = d.desired + "/" + d.state + "/" + d.recorder_alive;
        if (shown !== null && key !== shown) { window.location.reload(); return; }
        shown = key;
        label.textContent = d.label;
        seconds.textContent = clock(d.seconds);
        if (d.error) { error.textContent = d.error; error.hidden = false; }
        if (d.active) { window.setTimeout(poll, 2000); } else { window.location.reload(); }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 2000);
})();
