/* The live transcript on a recording's page: polls /recordings/<id>/live for new lines and the pause marks
   while the recording runs and while its tail is transcribed (showing that finalisation's progress), then reloads
   for the final transcript. */
(function () {
  "use strict";
  var section = document.getElementById("live");
  var list = document.getElementById("live-transcript");
  if (!section || !list) { return; }
  var feed = section.getAttribute("data-live-feed");
  var status = section.getAttribute("data-live-status");
  var after = parseInt(section.getAttribute("data-live-after"), 10);
  var segments = [], marks = null, fast = false;
  var progressBox = section.querySelector("[data-live-progress]");

  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds)), m = Math.floor(s / 60), h = Math.floor(m / 60);
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    return h ? h + ":" + two(m % 60) + ":" + two(s % 60) : two(m) + ":" + two(s % 60);
  }
  function item(cls, time, text) {
    var li = document.createElement("li"), t = document.createElement("span"), x = document.createElement("span");
    li.className = cls; t.className = "seg-time"; t.textContent = clock(time);
    x.className = cls.indexOf("live-mark") === 0 ? "live-mark-text" : "seg-text"; x.textContent = text;
    li.appendChild(t); li.appendChild(document.createTextNode(" ")); li.appendChild(x);
    return li;
  }
  function render() {
    var shown = (marks || []).filter(function (m) { return list.getAttribute("data-msg-" + m.kind); });
    var out = document.createDocumentFragment(), i = 0;
    segments.forEach(function (s) {
      while (i < shown.length && shown[i].at <= s.start + 0.05) {
        var m = shown[i++], li = item("live-mark live-mark-" + m.kind, m.at, list.getAttribute("data-msg-" + m.kind));
        li.setAttribute("data-mark", m.kind); out.appendChild(li);
      }
      var seg = item("seg live-seg", s.start, s.text); seg.setAttribute("data-idx", s.idx);
      if (s.speaker) {  // provisional while recording: settled when the final transcript is shown
        var who = document.createElement("span");
        who.className = "seg-speaker speaker-" + (s.speaker % 8); who.setAttribute("data-speaker", s.speaker);
        who.textContent = s.speaker_name;
        seg.insertBefore(document.createTextNode(" "), seg.lastChild); seg.insertBefore(who, seg.lastChild.previousSibling);
      }
      out.appendChild(seg);
    });
    for (; i < shown.length; i++) {
      var mk = item("live-mark live-mark-" + shown[i].kind, shown[i].at, list.getAttribute("data-msg-" + shown[i].kind));
      mk.setAttribute("data-mark", shown[i].kind); out.appendChild(mk);
    }
    list.textContent = "";
    list.appendChild(out);
  }
  function poll() {
    // The first poll fetches everything (the page rendered it already, but the list is rebuilt from data).
    var url = feed + "?after=" + (segments.length ? segments[segments.length - 1].idx : -1);
    fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin", cache: "no-store"})
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
        if (!r.ok) { throw new Error("status " + r.status); }
        return r.json();
      })
      .then(function (data) {
        if (data.status !== status && (data.status === "ready" || data.status === "failed")) {
          window.location.reload(); return;
        }
        var changed = data.segments.length > 0 || JSON.stringify(data.marks) !== JSON.stringify(marks);
        segments = segments.concat(data.segments); marks = data.marks;
        if (changed) { render(); }
        if (data.state === "stopped" && status === "recording") { fast = true; }
        if (data.state === "stopped" || data.status === "transcribing") {
          progressBox.hidden = false;
          window.SamtalProgress.update(progressBox, data.progress || 0, progressBox.querySelector("[data-progress-text]").textContent);
        }
        window.setTimeout(poll, fast ? 1000 : 2500);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  document.addEventListener("samtalsstod:stopped", function () { fast = true; progressBox.hidden = false; });
  if (after >= -1) { window.setTimeout(poll, 500); }
})();
