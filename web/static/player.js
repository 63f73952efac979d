/* Transcript beside the audio: click a line to play from there, space toggles play/pause,
   the line being played is marked with aria-current; ?t=<seconds> starts there. */
(function () {
  "use strict";
  var player = document.getElementById("player");
  var list = document.getElementById("transcript");
  if (!player || !list) { return; }
  var segments = Array.prototype.slice.call(list.querySelectorAll("[data-start]")).map(function (el) {
    return {el: el, start: parseFloat(el.getAttribute("data-start")), end: parseFloat(el.getAttribute("data-end"))};
  });

  function play() {
    var p = player.play();
    if (p && p.catch) { p.catch(function () { /* blocked or interrupted: the controls still work */ }); }
  }

  list.addEventListener("click", function (e) {
    var el = e.target.closest("[data-start]");
    if (!el || e.target.closest(".seg-edit, a")) { return; } // editing a line or following a link
    var selection = window.getSelection && window.getSelection();
    if (selection && !selection.isCollapsed && !e.target.closest("button")) { return; } // selecting text
    player.currentTime = parseFloat(el.getAttribute("data-start"));
    play();
  });

  document.addEventListener("keydown", function (e) {
    if (e.key !== " " || e.altKey || e.ctrlKey || e.metaKey || e.defaultPrevented) { return; }
    var t = e.target;
    if (t && t.closest && t.closest("input, textarea, select, button, a, audio, [contenteditable], [role=button]")) {
      return; // text fields type a space; buttons and links keep their own space behaviour
    }
    e.preventDefault();
    if (player.paused) { play(); } else { player.pause(); }
  });

  var current = null;
  function mark() {
    var t = player.currentTime, found = null;
    for (var i = 0; i < segments.length; i++) {
      if (t >= segments[i].start && t < segments[i].end) { found = segments[i].el; break; }
    }
    if (found === current) { return; }
    if (current) { current.removeAttribute("aria-current"); }
    if (found) { found.setAttribute("aria-current", "true"); }
    current = found;
  }
  // A search hit links here as ?t=12.3#seg-4: start at that time (playback waits for the user).
  var wanted = parseFloat(new URLSearchParams(window.location.search).get("t"));
  if (isFinite(wanted) && wanted >= 0) {
    var seek = function () { player.currentTime = wanted; mark(); };
    if (player.readyState >= 1) { seek(); } else { player.addEventListener("loadedmetadata", seek, {once: true}); }
  }

  player.addEventListener("timeupdate", mark);
  player.addEventListener("seeked", mark);
})();
